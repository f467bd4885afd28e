// What labctl's pages share (the lab's page and the class's): the read
// token of the URL, building elements, the clock, and the live connection
// (server-sent events, each the whole view, drawn by `render`).
"use strict";
window.labctl = (function () {
  // the read token (off loopback) is in the query
  const token = new URLSearchParams(location.search).get("token") || "";
  const withToken = (path) => path + (token ? "?token=" + encodeURIComponent(token) : "");

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else if (k === "onclick") e.addEventListener("click", v);
      else e[k] = v;
    }
    for (const c of kids) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function clock(ms) {
    const d = new Date(ms);
    const p = (n, w) => String(n).padStart(w || 2, "0");
    return p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds()) + "." + p(d.getMilliseconds(), 3);
  }

  function connect(render) {
    const es = new EventSource(withToken("events"));
    const conn = document.querySelector("#conn");
    es.onopen = () => { conn.textContent = "live"; conn.className = "conn on"; };
    es.onerror = () => { conn.textContent = "reconnecting…"; conn.className = "conn off"; };
    es.onmessage = (m) => { try { render(JSON.parse(m.data)); } catch (e) { console.error(e); } };
  }

  return { token, withToken, el, clock, connect };
})();
