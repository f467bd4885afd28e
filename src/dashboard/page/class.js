// labctl class dashboard: every student's lab at once, from the view the
// server pushes (server-sent events); read-only.
"use strict";
(function () {
  const { withToken, el, clock } = window.labctl;
  const q = (s) => document.querySelector(s);

  function ago(t) {
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    return s < 90 ? s + " s ago" : Math.round(s / 60) + " min ago";
  }

  function card(l) {
    const v = l.verify;
    const passed = v ? String(v.passed) : "none";
    const up = l.nodes.filter((n) => n.state === "running").length;
    const box = el("section", { class: "lab", "data-student": l.student, "data-passed": passed },
      el("h2", {}, l.student, el("small", {}, l.lab),
        el("a", { href: withToken("lab/" + encodeURIComponent(l.student) + "/"), "data-role": "drill" }, "lab dashboard →")));
    box.append(el("div", { class: "meta" },
      l.subnet + " · " + (l.scenario || "no scenario configured") +
      (l.nodes.length ? " · " + up + "/" + l.nodes.length + " up" : "") +
      (l.vip_holder ? " · VIP on " + l.vip_holder : "")));
    const nodes = el("div", { class: "nodes" });
    for (const n of l.nodes) nodes.append(el("span", { class: "pill", "data-node": n.name, "data-state": n.state }, n.name));
    box.append(nodes);
    if (l.error) box.append(el("div", { class: "error", "data-role": "error" }, "dashboard: " + l.error));
    const f = l.failovers[l.failovers.length - 1];
    if (f) box.append(el("div", { class: "meta", "data-role": "failover" }, "last failover seen " + clock(f.t).slice(0, 8) + ": " + (f.ms === null ? "?" : f.ms + " ms")));
    if (!v) {
      box.append(el("div", { class: "meta", "data-role": "verify" }, "not verified yet (labctl class verify)"));
      return box;
    }
    const ok = v.checks.filter((c) => c.passed).length;
    box.append(el("div", { class: "meta", "data-role": "verify", "data-t": String(v.t) },
      "verify " + ok + "/" + v.checks.length + " at " + clock(v.t).slice(0, 8) + " (" + ago(v.t) + ")" +
      (v.failover_ms !== null && v.failover_ms !== undefined ? " · failover " + v.failover_ms + " ms" : "")));
    const list = el("ul", { class: "checks" });
    for (const c of v.checks) {
      list.append(el("li", { class: "check", "data-check": c.name, "data-passed": String(c.passed) },
        c.name + (c.ms !== null && c.ms !== undefined ? " (" + c.ms + " ms)" : ""),
        el("span", { class: "detail" }, c.detail)));
    }
    box.append(list);
    return box;
  }

  let last = null;
  function render(c) {
    last = c;
    q("#class").textContent = c.class;
    const verified = c.labs.filter((l) => l.verify);
    const passing = verified.filter((l) => l.verify.passed).length;
    q("#summary").textContent = "· " + c.labs.length + " labs · " + passing + "/" + verified.length + " verified passing";
    q("#labs").replaceChildren(...c.labs.map(card));
  }

  // the "… ago" texts move with the clock
  setInterval(() => { if (last) render(last); }, 5000);
  window.labctl.connect(render);
})();
