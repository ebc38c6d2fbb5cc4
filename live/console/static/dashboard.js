// KPI dashboard: tiles from /api/kpis?by=..., one plotly.js chart per /api/kpis/<table> endpoint.
// Every figure on the page comes from an endpoint that also answers ?format=csv (the CSV links).
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const PLOT_CONFIG = { displayModeBar: false, responsive: true };
  const BASE_LAYOUT = { margin: { l: 60, r: 50, t: 10, b: 60 }, height: 280, bargap: 0.15,
    font: { size: 11 }, legend: { orientation: "h", y: -0.25 } };

  const secs = (v) => (v == null ? "–" : `${Math.floor(v / 60)}:${String(Math.round(v % 60)).padStart(2, "0")}`);
  const pct = (v) => (v == null ? "–" : `${(100 * v).toFixed(1)} %`);
  const num = (v, digits = 1) => (v == null ? "–" : Number(v).toFixed(digits));
  const TILE = [
    ["calls", "Calls", (v) => String(v)],
    ["aht_s", "AHT", secs],
    ["asa_s", "ASA", secs],
    ["abandon_rate", "Abandoned", pct],
    ["fcr_rate", "FCR", pct],
    ["csat", "Predicted CSAT", (v) => num(v)],
    ["quality", "Quality", (v) => (v == null ? "–" : `${num(v)} %`)],
    ["transfers", "Transfers", (v) => String(v)],
    ["dead_air_share", "Dead air", pct],
  ];

  function query(extra) {
    const form = new FormData($("#period"));
    const params = new URLSearchParams(extra || {});
    for (const key of ["from", "to"]) if (form.get(key)) params.set(key, form.get(key));
    return params;
  }

  async function table(name, extra) {
    const url = (name === "kpis" ? "/api/kpis?" : `/api/kpis/${name}?`) + query(extra);
    const r = await fetch(url, { credentials: "same-origin" });
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.json();
  }

  function label(by, key) {
    if (key) return key;
    return { agent: "no agent", queue: "no queue" }[by] || key;
  }

  function renderTiles(by, data) {
    const box = $(`#tiles-${by}`);
    box.replaceChildren();
    for (const row of data.rows) {
      const tile = el("div", "tile");
      tile.dataset.key = row.key;
      tile.append(el("h3", "", label(by, row.key)));
      const dl = el("dl");
      for (const [key, name, fmt] of TILE) {
        const dd = el("dd", "", fmt(row[key]));
        dd.dataset.kpi = key;
        dd.dataset.value = row[key] == null ? "" : String(row[key]);
        dl.append(el("dt", "", name), dd);
      }
      tile.append(dl);
      box.append(tile);
    }
    if (!data.rows.length) box.append(el("p", "muted", "No calls in this period."));
  }

  function plot(name, traces, layout) {
    const node = $(`#chart-${name}`);
    const empty = traces.every((t) => !(t.x || []).length);
    const annotations = empty ? [{ text: "no data", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }] : [];
    window.Plotly.react(node, traces, { ...BASE_LAYOUT, annotations, ...layout }, PLOT_CONFIG);
    node.dataset.rendered = String(traces.reduce((n, t) => n + (t.x || []).length, 0));
  }

  function renderTrend(data) {
    const days = data.rows.map((r) => r.day);
    plot("trend", [
      { name: "calls", type: "scatter", mode: "lines+markers", x: days, y: data.rows.map((r) => r.calls) },
      { name: "AHT (s)", type: "scatter", mode: "lines+markers", x: days, y: data.rows.map((r) => r.aht_s), yaxis: "y2" },
      { name: "predicted CSAT", type: "scatter", mode: "lines+markers", x: days, y: data.rows.map((r) => r.csat), yaxis: "y2" },
    ], { xaxis: { type: "category" }, yaxis: { title: { text: "calls" }, rangemode: "tozero" },
      yaxis2: { overlaying: "y", side: "right", rangemode: "tozero", title: { text: "s / score" } } });
  }

  function renderHandleTime(data) {
    plot("handle_time", [{ name: "calls", type: "bar",
      x: data.rows.map((r) => `${secs(r.start_s)}–${secs(r.end_s)}`), y: data.rows.map((r) => r.calls) }],
    { xaxis: { type: "category", title: { text: "handle time (m:ss)" } }, yaxis: { title: { text: "calls" } } });
  }

  function renderReasons(data) {
    const rows = [...data.rows].reverse();
    plot("reasons", [{ name: "calls", type: "bar", orientation: "h",
      x: rows.map((r) => r.calls), y: rows.map((r) => r.reason) }],
    { margin: { ...BASE_LAYOUT.margin, l: 130 }, yaxis: { type: "category" }, xaxis: { title: { text: "calls" } } });
  }

  function renderRising(data) {
    const rows = [...data.rows].reverse();
    $("#rising-period").textContent = data.current && data.previous
      ? `${data.current[0]} – ${data.current[1]} against ${data.previous[0]} – ${data.previous[1]}` : "";
    plot("rising", [{ name: "share points gained", type: "bar", orientation: "h",
      x: rows.map((r) => Math.round(1000 * r.change) / 10), y: rows.map((r) => `${r.kind}: ${r.topic}`),
      text: rows.map((r) => `${r.previous_calls} → ${r.current_calls} calls`) }],
    { margin: { ...BASE_LAYOUT.margin, l: 170 }, yaxis: { type: "category" },
      xaxis: { title: { text: "share of calls gained (points)" } } });
  }

  function renderDeadAir(data) {
    plot("dead_air", [{ name: "dead air (s)", type: "bar", x: data.rows.map((r) => r.call_id),
      y: data.rows.map((r) => r.dead_air_s), customdata: data.rows.map((r) => r.url) }],
    { xaxis: { type: "category" }, yaxis: { title: { text: "dead air (s)" } } });
    const node = $("#chart-dead_air");
    if (!node.dataset.clicks) {
      node.dataset.clicks = "1";
      node.on("plotly_click", (ev) => { if (ev.points.length) window.location.href = ev.points[0].customdata; });
    }
    const list = $("#dead-air-calls");
    list.replaceChildren();
    for (const r of data.rows) {
      const a = el("a", "", r.call_id);
      a.href = r.url;
      const li = el("li");
      li.append(a, ` ${num(r.dead_air_s)} s of ${num(r.duration)} s (${pct(r.dead_air_share)})`);
      list.append(li);
    }
  }

  function renderFormula(data) {
    const w = data.csat.weights;
    $("#csat-formula").textContent = `${data.csat.formula}; base ${w.csat_base}; caller's last tone calm `
      + `${w.csat_tone_calm}, neutral ${w.csat_tone_neutral}, tense ${w.csat_tone_tense}, angry ${w.csat_tone_angry}; `
      + `resolved ${w.csat_resolved}, partly ${w.csat_partly}, not ${w.csat_not_resolved}; `
      + `wait ${w.csat_wait_per_min} per minute (at most ${w.csat_wait_cap_min} min); `
      + `repeat contact ${w.csat_repeat_contact}; dead air ${w.csat_dead_air_per_pct} per % of the call.`;
  }

  function updateCsvLinks() {
    for (const a of document.querySelectorAll("a.csv")) {
      const name = a.dataset.table;
      const extra = { format: "csv" };
      if (a.dataset.by) extra.by = a.dataset.by;
      a.href = (name === "kpis" ? "/api/kpis?" : `/api/kpis/${name}?`) + query(extra);
    }
  }

  async function load() {
    const status = $("#status");
    status.textContent = "loading…";
    document.body.dataset.ready = "";
    updateCsvLinks();
    try {
      const [all, queues, agents, trend, handle, reasons, rising, dead] = await Promise.all([
        table("kpis", { by: "all" }), table("kpis", { by: "queue" }), table("kpis", { by: "agent" }),
        table("trend"), table("handle_time"), table("reasons"), table("rising"), table("dead_air")]);
      renderTiles("all", all);
      renderTiles("queue", queues);
      renderTiles("agent", agents);
      renderFormula(all);
      renderTrend(trend);
      renderHandleTime(handle);
      renderReasons(reasons);
      renderRising(rising);
      renderDeadAir(dead);
      status.textContent = "";
      document.body.dataset.ready = "1";
    } catch (err) {
      status.textContent = String(err.message || err);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#period").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    load();
  });
})();
