// The fleet dashboard: polls /dashboard/api/state every second and redraws. Plain DOM and
// SVG; text from the server is only ever set as textContent (never parsed as HTML).
"use strict";
(function () {
  const POLL_MS = 1000, W = 360, H = 110, PAD = 30, SVGNS = "http://www.w3.org/2000/svg";
  const $ = (sel) => document.querySelector(sel);

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : String(c ?? "-"));
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  }
  function fill(tbody, rows) { tbody.replaceChildren(...rows); }
  function age(s) { return s < 60 ? s.toFixed(1) + " s ago" : Math.round(s / 60) + " min ago"; }
  function num(v, unit) { return v == null ? "–" : (v >= 100 ? v.toFixed(0) : v.toPrecision(3)) + unit; }

  function chart(series, keys, label) {
    const t = series.t, n = t.length;
    let max = 0;
    for (const k of keys) for (const v of series[k]) if (v != null && v > max) max = v;
    max = max > 0 ? max * 1.1 : 1;
    const box = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label });
    const x = (i) => PAD + (i * (W - PAD - 4)) / Math.max(1, n - 1);
    const y = (v) => H - 14 - (v * (H - 24)) / max;
    for (const f of [0, 0.5, 1]) {
      box.append(svg("line", { class: "grid", x1: PAD, x2: W - 4, y1: y(max * f), y2: y(max * f) }));
      const tx = svg("text", { x: 2, y: y(max * f) + 3 });
      tx.textContent = num(max * f, "");
      box.append(tx);
    }
    const minutes = svg("text", { x: PAD, y: H - 2 });
    minutes.textContent = "−15 min";
    const nowText = svg("text", { x: W - 30, y: H - 2 });
    nowText.textContent = "now";
    box.append(minutes, nowText);
    for (const k of keys) {
      let d = "", pen = false;
      series[k].forEach((v, i) => {
        if (v == null) { pen = false; return; }
        d += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1);
        pen = true;
      });
      if (d) box.append(svg("path", { class: k.split("_")[0], d }));
    }
    return box;
  }

  function renderModels(state) {
    fill($("#models tbody"), state.models.map((m) => el("tr", { "data-model": m.name },
      el("td", {}, m.name),
      el("td", {}, m.apps.join(", ") || "-"),
      el("td", { class: "current" }, m.current_version ?? "none"),
      el("td", {}, ...m.versions.map((v) => el("span", {
        class: "chip " + v.status, "data-version": v.version,
        title: v.status === "current" ? "serving" :
          "registered, not current: kept for a rollback (its containers may be stopped or pruned)",
      }, `${v.version} · ${v.status} · ${v.connected_replicas} up`))),
      el("td", {}, m.input_type))));
  }

  function renderCharts(state) {
    const cards = Object.entries(state.metrics.models).map(([name, s]) => {
      const w = s.window;
      return el("div", { class: "card", "data-model": name },
        el("h3", {}, name),
        el("div", { class: "muted" },
          `${w.queries} queries in 15 min · p50 ${num(w.p50_ms, " ms")} · p99 ${num(w.p99_ms, " ms")} · ${w.defaults} default outputs · ${w.errors} errors`),
        el("div", { class: "legend" }, el("span", { class: "a" }, "queries/s")),
        chart(s, ["qps"], name + " queries per second"),
        el("div", { class: "legend" }, el("span", { class: "a" }, "p50 ms"), el("span", { class: "b" }, "p99 ms")),
        chart(s, ["p50_ms", "p99_ms"], name + " latency"));
    });
    if (!cards.length) cards.push(el("p", { class: "muted" }, "No queries in the last 15 minutes."));
    $("#charts").replaceChildren(...cards);
  }

  function renderHosts(state) {
    const rows = [];
    for (const h of state.hosts) h.replicas.forEach((r, i) => rows.push(el("tr", {
      "data-replica": r.replica_id, "data-version": r.model_version, "data-state": r.state,
    },
      el("td", {}, i ? "" : h.host),
      el("td", {}, r.replica_id),
      el("td", {}, `${r.model_name}:${r.model_version}${r.is_current_version ? " (current)" : ""}`),
      el("td", { class: r.state, title: r.drop_reason || "" }, r.state),
      el("td", {}, age(r.heartbeat_age_s)),
      el("td", {}, r.queries_served))));
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No replica connected.")));
    fill($("#hosts tbody"), rows);
  }

  function renderAudit(state) {
    const a = state.audit;
    $("#audit-note").textContent = a.error || `last ${a.events.length} events of ${a.path}`;
    fill($("#audit tbody"), a.events.map((e) => el("tr", {},
      el("td", {}, (e.time || "-").replace("T", " ").replace("Z", "")),
      el("td", {}, e.user), el("td", {}, e.action), el("td", {}, e.model),
      el("td", {}, e.version), el("td", {}, (e.hosts || []).join(", ") || "-"),
      el("td", { class: e.result, title: e.detail || "" }, e.result))));
  }

  function renderOperations(state) {
    const ops = state.operations;
    $("#operations-section").hidden = !ops.length;
    $("#operations").replaceChildren(...ops.map((o) => el("div", {
      class: "op", "data-model": o.model, "data-version": o.version ?? "",
      "data-done": o.done, "data-total": o.total, "data-switched": o.switched,
    },
      el("strong", {}, `${o.action || "operation"} of ${o.model}${o.version ? " to version " + o.version : ""}`),
      ` by ${o.user || "?"}, ${o.elapsed_s == null ? "" : age(o.elapsed_s).replace(" ago", "")} so far · `,
      el("progress", { max: Math.max(1, o.total), value: o.done }),
      ` ${o.done}/${o.total} hosts on the new version · `,
      o.switched ? "switched: it is the current version" : `current version still ${o.current_version ?? "none"}`,
      el("div", { class: "muted" }, o.hosts.map((h) => `${h.host}: ${h.state} (serving ${h.versions.map((v) => "v" + v).join(", ")})`).join(" · ") || o.unreadable || ""))));
  }

  function render(state) {
    $("#frontend").textContent = `frontend ${state.frontend.version}, up ${Math.round(state.frontend.uptime_s)} s`;
    renderOperations(state); renderModels(state); renderCharts(state); renderHosts(state); renderAudit(state);
    const u = $("#updated");
    u.textContent = "updated " + new Date(state.time * 1000).toLocaleTimeString();
    u.dataset.time = state.time;
  }

  async function poll() {
    try {
      const resp = await fetch("/dashboard/api/state", { credentials: "same-origin", cache: "no-store" });
      if (resp.status === 401) { location.reload(); return; }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      render(await resp.json());
    } catch (err) {
      $("#updated").textContent = "cannot reach the frontend: " + err.message;
    }
    setTimeout(poll, POLL_MS);
  }
  document.addEventListener("DOMContentLoaded", poll);
})();
