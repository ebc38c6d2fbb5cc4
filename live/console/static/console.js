// callcenter agent console: vanilla JS, one file, one init per page (body[data-page]).
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, cls, text) => {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
};

function follow(url, handlers) {
  // EventSource reconnects by itself; the server replays on every (re)connect.
  const src = new EventSource(url);
  const conn = $("#conn");
  src.onopen = () => { if (conn) { conn.textContent = "live"; conn.classList.add("ok"); } };
  src.onerror = () => { if (conn) { conn.textContent = "reconnecting…"; conn.classList.remove("ok"); } };
  for (const [name, fn] of Object.entries(handlers)) {
    src.addEventListener(name, (msg) => fn(JSON.parse(msg.data)));
  }
  return src;
}

// ---- active calls -------------------------------------------------------------------------
function initIndex() {
  const body = $("#calls tbody");
  const render = (calls) => {
    body.replaceChildren();
    $("#empty").hidden = calls.length > 0;
    for (const c of calls) {
      const tr = el("tr");
      const link = el("a", "", c.call_id);
      link.href = "/calls/" + encodeURIComponent(c.call_id);
      const cell = el("td"); cell.append(link); tr.append(cell);
      tr.append(el("td", "", c.caller || ""), el("td", "", c.started_at || ""),
        el("td", "", c.ended ? "ended" : "active"), el("td", "", c.tone || "–"),
        el("td", c.alerts ? "warn" : "", String(c.alerts)));
      body.append(tr);
    }
  };
  let pending = null;
  const refresh = () => {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      const r = await fetch("/api/calls");
      if (r.ok) render(await r.json());
    }, 200);
  };
  follow("/api/stream", { calls: render, event: refresh });
}

// ---- one call -----------------------------------------------------------------------------
function initCall() {
  const callId = decodeURIComponent(location.pathname.split("/")[2]);
  $("#title").textContent = "Call " + callId;
  const timeline = $("#timeline");
  const timelineUrl = "/calls/" + encodeURIComponent(callId) + "/timeline.svg";
  let partials = {};
  let dead = null;
  let timelineDirty = false;

  const reset = () => {
    partials = {};
    dead = null;
    for (const id of ["#transcript", "#alerts", "#path", "#summary"]) $(id).replaceChildren();
    $("#deadair").hidden = true;
    $("#summary-card").hidden = true;
    $("#tone-fill").style.width = "0";
    $("#tone-label").textContent = "no reading yet";
    timeline.src = timelineUrl + "?t=" + Date.now();
  };

  const line = (party, text, partial) => {
    const box = $("#transcript");
    let node = partials[party];
    if (!node) {
      node = el("div", "line " + party);
      node.append(el("span", "who", party), el("span", "text"));
      box.append(node);
    }
    node.querySelector(".text").textContent = text;
    node.classList.toggle("partial", partial);
    partials[party] = partial ? node : undefined;
    box.scrollTop = box.scrollHeight;
  };

  const alert = (title, reasons, cls) => {
    const li = el("li", cls || "");
    li.append(el("strong", "", title));
    if (reasons && reasons.length) {
      const ul = el("ul");
      for (const r of reasons) ul.append(el("li", "", r));
      li.append(ul);
    }
    $("#alerts").prepend(li);
  };

  const step = (text) => $("#path").append(el("li", "", text));

  const setStatus = (ended) => {
    const badge = $("#status");
    badge.textContent = ended ? "ended" : "live";
    badge.classList.toggle("ended", ended);
  };

  const handlers = {
    "call.started": (e) => { $("#who").textContent = [e.caller, e.callee].filter(Boolean).join(" → "); setStatus(false); },
    "call.ended": (e) => { setStatus(true); $("#deadair").hidden = true; dead = null; timelineDirty = true; },
    "transcript.partial": (e) => line(e.party || "caller", e.text, true),
    "transcript.final": (e) => line(e.party || "caller", e.text, false),
    "tone.update": (e) => {
      const fill = $("#tone-fill");
      fill.style.width = Math.round(100 * e.score) + "%";
      fill.className = "fill " + e.label;
      $("#tone-label").textContent = e.label + " (" + e.score.toFixed(2) + ")";
    },
    "tone.alert": (e) => {
      const kind = (e.kind || "alert").replace("_", " ");
      alert(kind + (e.label && e.label !== e.kind ? " – " + e.label : "") + " (" + e.score.toFixed(2) + ")", e.reasons);
    },
    "talk_over": (e) => alert("talk-over: " + e.started_by + " over " + e.interrupted + " (" + e.duration.toFixed(1) + " s)", [], "talk_over"),
    "dead_air.started": (e) => {
      dead = { base: e.t - e.start, since: performance.now() };
      $("#deadair").hidden = false;
    },
    "dead_air.ended": (e) => {
      dead = null;
      $("#deadair").hidden = true;
      alert("dead air " + e.duration.toFixed(1) + " s", [], "dead_air");
    },
    "dtmf": (e) => step("key " + e.digit),
    "ivr.step": (e) => step(e.node + ": " + e.action + (e.detail && Object.keys(e.detail).length ? " " + JSON.stringify(e.detail) : "")),
    "playback.started": (e) => step("▶ " + e.kind + " " + e.name),
    "summary": (e) => {
      const dl = $("#summary");
      dl.replaceChildren();
      for (const [k, v] of Object.entries(e.summary || {})) {
        dl.append(el("dt", "", k), el("dd", "", typeof v === "string" ? v : JSON.stringify(v)));
      }
      $("#summary-card").hidden = false;
      timelineDirty = true;
    },
  };

  setInterval(() => {
    if (dead) $("#deadair-timer").textContent = Math.floor(dead.base + (performance.now() - dead.since) / 1000);
  }, 250);
  setInterval(() => {
    if (timelineDirty) { timelineDirty = false; timeline.src = timelineUrl + "?t=" + Date.now(); }
  }, 2000);

  follow("/api/calls/" + encodeURIComponent(callId) + "/stream", {
    reset: reset,
    event: (e) => {
      const fn = handlers[e.type];
      if (fn) fn(e);
      if (e.type === "transcript.final" || e.type === "dead_air.ended" || e.type === "tone.update") timelineDirty = true;
    },
  });
}

// ---- history ------------------------------------------------------------------------------
function initHistory() {
  const form = $("#search");
  const body = $("#results tbody");
  const run = async () => {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) params.set(k, v);
    const r = await fetch("/api/history?" + params.toString());
    body.replaceChildren();
    if (!r.ok) { $("#note").textContent = r.status === 503 ? "No call history configured." : "Search failed."; return; }
    const rows = await r.json();
    $("#note").textContent = rows.length ? "" : "No matching calls.";
    for (const c of rows) {
      const s = c.summary || {};
      const tr = el("tr");
      const link = el("a", "", c.call_id);
      link.href = "/calls/" + encodeURIComponent(c.call_id);
      const cell = el("td"); cell.append(link); tr.append(cell);
      tr.append(el("td", "", c.caller || ""), el("td", "", c.started_at || ""),
        el("td", "", s.tone || c.tone || ""), el("td", "", s.reason || ""), el("td", "", s.outcome || ""));
      body.append(tr);
    }
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); run(); });
  run();
}

const page = document.body.dataset.page;
if (page === "index") initIndex();
else if (page === "call") initCall();
else if (page === "history") initHistory();
