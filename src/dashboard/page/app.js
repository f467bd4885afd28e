// labctl dashboard: renders the view the server pushes (server-sent events)
// and posts the actions, each confirmed first.
"use strict";
(function () {
  // the action token, only in the operator's URL, in the fragment: kept for this tab and taken out
  // of the address bar, so a projected page never shows it
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("act");
  if (fromHash) {
    sessionStorage.setItem("labctl-act", fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  const actToken = sessionStorage.getItem("labctl-act") || "";
  const { withToken, el, clock } = window.labctl;
  const q = (s) => document.querySelector(s);
  const PALETTE = ["#2563eb", "#f97316", "#16a34a", "#9333ea", "#db2777", "#0891b2", "#ca8a04", "#4b5563"];
  let view = null;
  let colours = {};
  // what each part was last drawn from: a part is drawn again only when it
  // changed, so a button is never replaced under the pointer
  const drawn = {};
  function changed(part, data) {
    const key = JSON.stringify(data);
    if (drawn[part] === key) return false;
    drawn[part] = key;
    return true;
  }



  function colour(name) {
    return colours[name] || null;
  }



  function renderNodes(v) {
    const box = q("#nodes");
    box.replaceChildren();
    for (const n of v.nodes) {
      const down = n.state !== "running" && n.state !== "unknown";
      const card = el("div", { class: "node" + (down ? " down" : ""), "data-node": n.name, "data-state": n.state });
      card.style.borderLeftColor = colour(n.name) || "#999";
      card.append(
        el("div", {}, el("span", { class: "name" }, n.name), el("span", { class: "badge " + n.state, "data-role": "state" }, n.state)),
        el("div", { class: "meta" }, n.address + (n.groups.length ? " · " + n.groups.join(", ") : ""))
      );
      const svcs = el("div", {});
      for (const s of n.services) {
        const known = s.active === true || s.active === false;
        const cls = s.active === true ? "active" : s.active === false ? "inactive" : "unknown";
        svcs.append(el("span", {
          class: "svc " + cls, "data-service": s.name, "data-active": known ? String(s.active) : "unknown",
          title: known ? (s.active ? "active" : "not active") : "unknown: not measured yet",
        }, s.name + (known ? "" : " ?")));
      }
      card.append(svcs);
      const acts = el("div", { class: "actions" });
      // only what makes sense in the state measured: power cut a running
      // node, boot a stopped one; stop an active service, start an inactive
      // one; nothing while a state is not measured; nothing without the
      // action token (a watching page)
      const svc = (name) => n.services.find((s) => s.name === name) || { active: null };
      const useful = (a) => {
        if (a.action === "power_cut") return n.state === "running";
        if (a.action === "boot") return n.state === "stopped" || n.state === "absent";
        if (a.action === "stop_service") return svc(a.service).active === true;
        if (a.action === "start_service") return svc(a.service).active === false;
        return false;
      };
      const mine = actToken ? v.actions : [];
      for (const a of mine.filter((a) => a.node === n.name && useful(a))) {
        acts.append(el("button", {
          type: "button",
          class: a.action === "power_cut" ? "danger" : "",
          "data-action": a.action, "data-node": a.node, "data-service": a.service,
          onclick: () => ask(a),
        }, a.label));
      }
      card.append(acts);
      box.append(card);
    }
  }

  function renderCluster(v) {
    const c = v.cluster;
    q("#cluster-box").classList.toggle("hidden", !c);
    q("main").classList.toggle("nocluster", !c);
    if (!c) return;
    const box = q("#cluster");
    box.replaceChildren();
    if (c.vip) {
      const holder = c.vip_holder;
      const b = el("b", { "data-role": "vip-holder" }, holder || "nobody");
      b.style.background = holder ? colour(holder) || "#555" : "#b91c1c";
      box.append(el("div", { class: "vip" }, "VIP " + c.vip + " on ", b));
    }
    if (c.error) box.append(el("div", { class: "meta" }, "crm_mon: " + c.error));
    if (c.members.length) {
      const t = el("table", {}, el("tr", {}, el("th", {}, "member"), el("th", {}, "state")));
      for (const m of c.members) {
        t.append(el("tr", { "data-member": m.name, "data-online": String(m.online) }, el("td", {}, m.name), el("td", {}, m.online ? "online" : "offline")));
      }
      box.append(t);
    }
    if (c.resources.length) {
      const t = el("table", {}, el("tr", {}, el("th", {}, "resource"), el("th", {}, "role"), el("th", {}, "on")));
      for (const r of c.resources) {
        t.append(el("tr", { "data-resource": r.id }, el("td", {}, r.id), el("td", {}, r.role), el("td", {}, r.nodes.join(", ") || "—")));
      }
      box.append(t);
    }
    if (c.asked) box.append(el("div", { class: "meta" }, "as crm_mon on " + c.asked + " sees it"));
  }

  function cell(kind, who, t, now, title) {
    const left = 100 - ((now - t) / 60000) * 100;
    const c = el("div", { class: "cell " + kind, "data-node": who || "", title: title });
    c.style.left = left.toFixed(2) + "%";
    if (kind === "hit") c.style.background = colour(who);
    return c;
  }

  function renderStrip(v) {
    q("#strip-box").classList.toggle("hidden", !v.probing);
    if (!v.probing) return;
    q("#probing").textContent = v.probing;
    const now = v.samples.length ? Math.max(Date.now(), v.samples[v.samples.length - 1].t) : Date.now();
    const dns = q("#strip-dns");
    const http = q("#strip-http");
    const d = [];
    const h = [];
    for (const s of v.samples) {
      if (s.dns) {
        const first = s.dns[0];
        const order = s.dns.join(", ") || "no answer";
        if (!first) d.push(cell("err", "", s.t, now, clock(s.t) + " " + (s.error || order)));
        else d.push(cell(colour(first) ? "hit" : "other", first, s.t, now, clock(s.t) + " " + order));
      }
      if (s.http !== null && s.http !== undefined) {
        if (!s.http) h.push(cell("err", "", s.t, now, clock(s.t) + " " + (s.error || "no answer")));
        else h.push(cell(colour(s.http) ? "hit" : "other", s.http, s.t, now, clock(s.t) + " " + s.http));
      }
    }
    dns.parentElement.classList.toggle("hidden", !v.samples.some((s) => s.dns));
    http.parentElement.classList.toggle("hidden", !v.samples.some((s) => s.http !== null && s.http !== undefined));
    dns.replaceChildren(...d);
    http.replaceChildren(...h);
    const legend = q("#legend");
    legend.replaceChildren();
    for (const n of v.nodes) {
      const i = el("i", {});
      i.style.background = colour(n.name);
      legend.append(el("span", {}, i, n.name));
    }
    const e = el("i", { class: "cell err" });
    e.style.position = "static";
    legend.append(el("span", {}, e, "no answer"));
  }

  function renderEvents(v) {
    const box = q("#events");
    box.replaceChildren();
    for (const e of [...v.events].reverse()) {
      box.append(el("li", { class: e.kind, "data-kind": e.kind, "data-node": e.node, "data-ms": e.ms }, el("time", {}, clock(e.t)), e.text));
    }
  }

  function render(v) {
    view = v;
    colours = {};
    v.nodes.forEach((n, i) => { colours[n.name] = PALETTE[i % PALETTE.length]; });
    q("#lab").textContent = v.lab;
    q("#scenario").textContent = v.scenario ? "· " + v.scenario : "";
    const www = q("#www");
    www.classList.toggle("hidden", !v.www);
    www.href = withToken("www/");
    const mode = q("#mode");
    const acting = actToken && v.actions.length;
    mode.textContent = acting ? "operator" : "watching";
    mode.className = "conn " + (acting ? "on" : "off");
    if (changed("nodes", [v.nodes, v.actions])) renderNodes(v);
    if (changed("cluster", v.cluster)) renderCluster(v);
    renderStrip(v);
    if (changed("events", v.events)) renderEvents(v);
    document.body.setAttribute("data-version", String(v.version));
  }

  function ask(a) {
    const dlg = q("#confirm");
    q("#confirm-text").textContent = "Really " + a.label + " on " + a.node + "?";
    const yes = q("#confirm-yes");
    const no = q("#confirm-no");
    const close = () => { yes.onclick = null; no.onclick = null; dlg.close(); };
    yes.onclick = () => { close(); post(a); };
    no.onclick = close;
    dlg.showModal();
  }

  function post(a) {
    fetch("action", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Labctl-Action": actToken },
      body: JSON.stringify({ action: a.action, node: a.node, service: a.service }),
    }).then((r) => r.ok ? null : r.json().then((j) => alertBox(j.error || ("error " + r.status))))
      .catch((e) => alertBox(String(e)));
  }

  function alertBox(msg) {
    const box = q("#events");
    box.prepend(el("li", { class: "action_failed", "data-kind": "action_failed" }, el("time", {}, clock(Date.now())), msg));
  }



  // the strip moves with the clock between updates too
  setInterval(() => { if (view) renderStrip(view); }, 1000);
  window.labctl.connect(render);
})();
