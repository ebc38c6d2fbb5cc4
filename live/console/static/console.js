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

// ---- one call: the rendering the call page and the agent page share -------------------------
// Elements it fills when the page has them: #transcript (lines with data-party, data-final),
// #tone-fill/#tone-label (last reading) and #tone-caller/#tone-agent (per party), #alerts,
// #deadair + #deadair-timer, #hold + #hold-timer, #path, #collected, #queue-info, #summary(-card),
// #status, #who.
function callView() {
  let partials = {};
  let dead = null;
  let held = null;
  const has = (id) => document.querySelector(id) !== null;

  const reset = () => {
    partials = {};
    dead = null;
    held = null;
    for (const id of ["#transcript", "#alerts", "#path", "#summary", "#collected"]) if (has(id)) $(id).replaceChildren();
    assist.reset();
    knowledge.reset();
    $("#deadair").hidden = true;
    if (has("#hold")) $("#hold").hidden = true;
    if (has("#queue-info")) $("#queue-info").textContent = "";
    $("#summary-card").hidden = true;
    if (has("#tone-fill")) { $("#tone-fill").style.width = "0"; $("#tone-label").textContent = "no reading yet"; }
    for (const node of document.querySelectorAll(".tone-party")) {
      node.querySelector(".fill").style.width = "0";
      node.querySelector(".fill").className = "fill";
      node.querySelector(".label").textContent = "no reading yet";
      delete node.dataset.label;
    }
  };

  const line = (party, text, partial) => {
    const box = $("#transcript");
    let node = partials[party];
    if (!node) {
      node = el("div", "line " + party);
      node.dataset.party = party;
      node.append(el("span", "who", party), el("span", "text"));
      box.append(node);
    }
    node.querySelector(".text").textContent = text;
    node.classList.toggle("partial", partial);
    node.dataset.final = partial ? "false" : "true";
    partials[party] = partial ? node : undefined;
    box.scrollTop = box.scrollHeight;
    return node;
  };

  const alert = (title, reasons, cls, t) => {
    const li = el("li", cls || "");
    if (t !== undefined) li.dataset.t = t;  // call time: the review page seeks there on a click
    li.append(el("strong", "", title));
    if (reasons && reasons.length) {
      const ul = el("ul");
      for (const r of reasons) ul.append(el("li", "", r));
      li.append(ul);
    }
    $("#alerts").prepend(li);
  };

  const step = (text) => $("#path").append(el("li", "", text));

  const collected = (detail) => {
    if (!has("#collected") || !detail || !detail.store_as) return;
    const shown = detail.digits !== undefined ? String(detail.digits)
      : (detail.secure ? "•".repeat(detail.length || 0) + " (secure)" : (detail.length || 0) + " digits");
    const dd = el("dd", "", shown);
    dd.dataset.field = detail.store_as;
    $("#collected").append(el("dt", "", detail.store_as), dd);
  };

  const queueInfo = (text) => { if (has("#queue-info")) $("#queue-info").textContent = text; };

  const setStatus = (ended) => {
    const badge = $("#status");
    badge.textContent = ended ? "ended" : "live";
    badge.classList.toggle("ended", ended);
  };

  const tone = (e) => {
    if (has("#tone-fill")) {
      const fill = $("#tone-fill");
      fill.style.width = Math.round(100 * e.score) + "%";
      fill.className = "fill " + e.label;
      $("#tone-label").textContent = e.label + " (" + e.score.toFixed(2) + ")";
    }
    const per = document.querySelector("#tone-" + (e.party || "caller"));
    if (per) {
      per.querySelector(".fill").style.width = Math.round(100 * e.score) + "%";
      per.querySelector(".fill").className = "fill " + e.label;
      per.querySelector(".label").textContent = e.label + " (" + e.score.toFixed(2) + ")";
      per.dataset.label = e.label;
    }
  };

  const handlers = {
    "call.started": (e) => { $("#who").textContent = [e.caller, e.callee].filter(Boolean).join(" → "); setStatus(false); },
    "call.ended": (e) => {
      setStatus(true); $("#deadair").hidden = true; dead = null;
      if (has("#hold")) $("#hold").hidden = true;
      held = null;
    },
    "transcript.partial": (e) => line(e.party || "caller", e.text, true),
    "transcript.final": (e) => {
      const node = line(e.party || "caller", e.text, false);
      node.dataset.t = e.start; node.dataset.end = e.end;  // the review page's playback follows these
    },
    "tone.update": tone,
    "tone.alert": (e) => {
      const kind = (e.kind || "alert").replace("_", " ");
      alert(kind + (e.label && e.label !== e.kind ? " – " + e.label : "") + " (" + e.score.toFixed(2) + ")", e.reasons, "", e.t);
    },
    "talk_over": (e) => alert("talk-over: " + e.started_by + " over " + e.interrupted + " (" + e.duration.toFixed(1) + " s)", [], "talk_over", e.t),
    "dead_air.started": (e) => {
      dead = { base: e.t - e.start, since: performance.now() };
      $("#deadair").hidden = false;
    },
    "dead_air.ended": (e) => {
      dead = null;
      $("#deadair").hidden = true;
      alert("dead air " + e.duration.toFixed(1) + " s", [], "dead_air", e.start);
    },
    "dtmf": (e) => step("key " + e.digit),
    "ivr.step": (e) => {
      step(e.node + ": " + e.action + (e.detail && Object.keys(e.detail).length ? " " + JSON.stringify(e.detail) : ""));
      if (e.action === "collect") collected(e.detail);
    },
    "playback.started": (e) => step("▶ " + e.kind + " " + e.name),
    "queue.update": (e) => {
      const where = e.queue ? "in " + e.queue : "";
      if (e.action === "entered" || e.action === "position") {
        queueInfo("waiting " + where + (e.position ? ", position " + e.position : "") + " (" + Math.round(e.wait_s) + " s)");
      } else if (e.action === "connected") {
        queueInfo("waited " + Math.round(e.wait_s) + " s " + where);
      } else if (e.action === "transferred") {
        step("transferred to " + e.target);
      }
    },
    "party.joined": (e) => {
      if (e.party !== "agent") return;
      queueInfo((e.queue ? "waited " + Math.round(e.wait_s) + " s in " + e.queue : "transferred") +
        (e.ring_s ? ", rang " + Math.round(e.ring_s) + " s" : ""));
      step("agent " + (e.agent_id || "") + " joined");
    },
    "party.left": (e) => step((e.party || "party") + " " + (e.agent_id || "") + " left (" + e.reason + ")"),
    "supervision": (e) => step("supervisor " + e.supervisor_id + ": " +
      (e.requested ? e.requested + " refused (" + e.reason + ")" : e.mode + (e.reason ? " (" + e.reason + ")" : ""))),
    "hold.started": (e) => {
      held = { since: performance.now() };
      if (has("#hold")) $("#hold").hidden = false;
    },
    "hold.ended": (e) => {
      held = null;
      if (has("#hold")) $("#hold").hidden = true;
      step("hold " + e.duration.toFixed(0) + " s");
    },
    "summary": (e) => {
      const dl = $("#summary");
      dl.replaceChildren();
      if (typeof reviewSummary === "function") {  // review.js: readable sections (the call page)
        reviewSummary(dl, e.summary || {});
        $("#summary-card").hidden = false;
        return;
      }
      for (const [k, v] of Object.entries(e.summary || {})) {
        dl.append(el("dt", "", k), el("dd", "", typeof v === "string" ? v : JSON.stringify(v)));
      }
      $("#summary-card").hidden = false;
    },
  };

  setInterval(() => {
    if (dead) $("#deadair-timer").textContent = Math.floor(dead.base + (performance.now() - dead.since) / 1000);
    if (held && has("#hold-timer")) $("#hold-timer").textContent = Math.floor((performance.now() - held.since) / 1000);
  }, 250);

  const assist = assistView(has, alert);
  Object.assign(handlers, assist.handlers);
  const knowledge = typeof knowledgeView === "function" ? knowledgeView(has) : { reset() {}, handlers: {} };  // knowledge.js
  Object.assign(handlers, knowledge.handlers);
  const handle = (e) => { const fn = handlers[e.type]; if (fn) fn(e); };
  return { reset, handle };
}

// De-escalation cues (#cues), live rule alerts (into #alerts) and categories (#categories), the
// script checklist (#checklist, #checklist-queue): filled when the page has those elements.
function assistView(has, alert) {
  const categories = new Set();
  const reset = () => {
    categories.clear();
    for (const id of ["#cues", "#checklist"]) if (has(id)) $(id).replaceChildren();
    if (has("#categories")) $("#categories").textContent = "none";
    if (has("#checklist-queue")) $("#checklist-queue").textContent = "";
  };
  const handlers = {
    "assist.cue": (e) => {
      if (!has("#cues")) return;
      const li = el("li", "cue");
      li.dataset.cue = e.cue;
      li.dataset.trigger = e.trigger;
      li.append(el("strong", "", "Cue " + e.cue + " – the caller " + (e.trigger === "phrase" ? "escalates" : "is upset")));
      const why = el("ul", "why");
      for (const r of e.reasons || []) why.append(el("li", "", r));
      li.append(why);
      const say = el("dl", "say");
      for (const [step, phrases] of Object.entries(e.phrases || {})) {
        say.append(el("dt", "", step.replace("_", " ")));
        for (const p of phrases) say.append(el("dd", "", p));
      }
      li.append(say, el("span", "outcome muted", "waiting for your acknowledgement…"));
      $("#cues").prepend(li);
    },
    "assist.cue_outcome": (e) => {
      const li = has("#cues") ? document.querySelector('#cues li[data-cue="' + e.cue + '"]') : null;
      if (!li) return;
      li.dataset.acknowledged = e.acknowledged === null ? "none" : (e.acknowledged ? "true" : "false");
      li.querySelector(".outcome").textContent =
        (e.acknowledged === null ? "no agent on the call" : e.acknowledged ? "acknowledged" : "not acknowledged") +
        "; caller tension " + e.tension;
    },
    "rule.matched": (e) => {
      for (const c of e.categories || []) categories.add(c);
      if (has("#categories")) $("#categories").textContent = categories.size ? [...categories].join(", ") : "none";
      // the agent's page shows what notifies the agent; the supervisors' call page the rest
      const who = document.body.dataset.page === "agent" ? "agent" : "supervisor";
      if (e.message && (e.notify || []).includes(who)) alert("rule " + e.rule + ": " + e.message, e.because, "rule", e.t);
    },
    "checklist.update": (e) => {
      if (!has("#checklist")) return;
      if (has("#checklist-queue")) $("#checklist-queue").textContent = e.queue;
      const ul = $("#checklist");
      ul.replaceChildren();
      (e.items || []).forEach((id, i) => {
        const done = e.done && e.done[id] !== undefined;
        const li = el("li", done ? "done" : "todo", (done ? "✓ " : "○ ") + ((e.labels || [])[i] || id));
        li.dataset.item = id;
        li.dataset.done = done ? "true" : "false";
        ul.append(li);
      });
    },
  };
  return { reset, handlers };
}

function initCall() {
  const callId = decodeURIComponent(location.pathname.split("/")[2]);
  $("#title").textContent = "Call " + callId;
  initCallSupervision(callId);
  const timeline = $("#timeline");
  const timelineUrl = "/calls/" + encodeURIComponent(callId) + "/timeline.svg";
  const view = callView();
  let timelineDirty = false;
  const redraw = ["transcript.final", "dead_air.ended", "tone.update", "call.ended", "summary"];

  setInterval(() => {
    if (timelineDirty) { timelineDirty = false; timeline.src = timelineUrl + "?t=" + Date.now(); }
  }, 2000);

  follow("/api/calls/" + encodeURIComponent(callId) + "/stream", {
    reset: () => {
      view.reset(); timeline.src = timelineUrl + "?t=" + Date.now();
      if (typeof reviewStored === "function") reviewStored(callId);  // review.js: a past call's summary
    },
    event: (e) => {
      view.handle(e);
      if (redraw.includes(e.type)) timelineDirty = true;
    },
  });
}

// A supervisor's session (or the token holder, when also signed in as one) gets the buttons.
async function initCallSupervision(callId) {
  const card = $("#supervise-card");
  if (!card) return;
  const me = await fetch("/api/agent/me");
  if (!me.ok || !(await me.json()).supervisor) return;
  card.hidden = false;
  card.querySelector("[data-supervise-call]").dataset.superviseCall = callId;
  const show = async () => {
    const r = await fetch("/api/supervision?call_id=" + encodeURIComponent(callId));
    if (!r.ok) return;
    const on = await r.json();
    const state = $("#supervision-state");
    state.textContent = on.length ? on.map((s) => s.supervisor_id + ": " + s.mode).join(", ") : "not supervised";
    state.dataset.mode = on.length ? on[0].mode : "";
  };
  wireSupervise(card, show);
  show();
  setInterval(show, 2000);
}

// ---- the agent's own page: their state, and their current call opening by itself -----------
function initAgent() {
  const view = callView();
  let me = null;

  const showState = (state, reason) => {
    const badge = $("#agent-state");
    badge.textContent = state.replace("_", " ") + (reason ? " (" + reason + ")" : "");
    badge.dataset.state = state;
    for (const b of document.querySelectorAll("[data-set-state]")) b.disabled = b.dataset.setState === state;
  };

  const load = async () => {
    const r = await fetch("/api/agent/me");
    if (r.status === 401) {  // the session is no longer valid: back to the login form
      await fetch("/api/agent/logout", { method: "POST" });
      location.href = "/agent";
      return;
    }
    me = await r.json();
    $("#agent-name").textContent = me.name ? me.name + " (" + me.agent_id + ")" : me.agent_id;
    document.body.dataset.agent = me.agent_id;
    $("#nav-queues").hidden = !me.supervisor;
    showState(me.state, me.reason);
  };

  for (const b of document.querySelectorAll("[data-set-state]")) {
    b.addEventListener("click", async () => {
      const state = b.dataset.setState;
      const reason = state === "not_ready" ? $("#not-ready-reason").value : "";
      const r = await fetch("/api/agent/state", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ state, reason }),
      });
      const body = await r.json();
      $("#agent-msg").textContent = r.ok ? "" : (body.detail || "refused");
      if (body.state) showState(body.state, body.reason);
    });
  }

  const openCall = (callId) => {
    view.reset();
    const call = $("#call");
    call.hidden = !callId;
    $("#no-call").hidden = !!callId;
    call.dataset.callId = callId || "";
    if (callId) $("#title").textContent = "Call " + callId;
  };

  load().then(() => follow("/api/agent/stream", {
    agent: (e) => showState(e.state, e.reason),
    reset: (d) => openCall(d.call_id),
    event: (e) => {
      view.handle(e);
      if (e.type === "agent.state" && me && e.agent_id === me.agent_id) showState(e.state, e.reason);
    },
  }));
}

// ---- supervision: listen, whisper, barge, leave (supervisors only) --------------------------
// A button with data-supervise=<mode> inside an element with data-supervise-call=<call id>.
// The request waits while the supervisor's phone rings; the outcome shows in #supervise-msg.
async function supervise(callId, mode, after) {
  const msg = $("#supervise-msg");
  if (msg) msg.textContent = mode === "leave" ? "leaving…" : "calling your phone…";
  const r = await fetch("/api/supervision", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ call_id: callId, mode }),
  });
  const body = await r.json().catch(() => ({}));
  if (msg) {
    const doing = { listen: "listening", whisper: "whispering to the agent", barge: "in the call (barge)" };
    msg.textContent = r.ok ? (mode === "leave" ? "left the call" : "now " + doing[mode]) : (body.detail || "refused");
    msg.dataset.outcome = r.ok ? "ok" : (body.reason || "error");
  }
  if (after) after();
}

function wireSupervise(root, after) {
  root.addEventListener("click", (ev) => {
    const b = ev.target.closest("[data-supervise]");
    const holder = b && b.closest("[data-supervise-call]");
    if (!b || !holder || !holder.dataset.superviseCall) return;
    supervise(holder.dataset.superviseCall, b.dataset.supervise, after);
  });
}

const SUPERVISE_MODES = [["listen", "Listen"], ["whisper", "Whisper"], ["barge", "Barge"], ["leave", "Leave"]];

// ---- queues (supervisors) -------------------------------------------------------------------
function initQueues() {
  const secs = (s) => Math.round(s || 0) + " s";
  const render = (queues, agents, supervision) => {
    const qbody = $("#queues tbody");
    qbody.replaceChildren();
    $("#no-queues").hidden = queues.length > 0;
    for (const q of queues) {
      const tr = el("tr");
      tr.dataset.queue = q.queue;
      const byState = Object.entries(q.agents || {}).map(([k, v]) => k.replace("_", " ") + ": " + v).join(", ");
      const callers = (q.callers || []).map((c) => c.call_id + " (" + secs(c.wait_s) + ", " + c.status + ")").join("; ");
      tr.append(el("td", "", q.queue), el("td", "waiting", String(q.waiting)), el("td", "", secs(q.longest_wait_s)),
        el("td", "", byState || "–"), el("td", "", callers || "–"));
      qbody.append(tr);
    }
    const abody = $("#agents tbody");
    abody.replaceChildren();
    for (const a of agents) {
      const tr = el("tr");
      tr.dataset.agent = a.agent_id;
      tr.dataset.state = a.state;
      const callId = a.live_call_id || (a.state === "on_call" ? a.call_id : "");
      const callCell = el("td");
      if (callId) {
        const link = el("a", "", callId);
        link.href = "/calls/" + encodeURIComponent(callId);
        callCell.append(link);
      }
      tr.append(el("td", "", a.agent_id), el("td", "", a.name || ""), el("td", "state " + a.state, a.state.replace("_", " ")),
        el("td", "", a.reason || ""), el("td", "", (a.skills || []).join(", ")), callCell, superviseCell(callId, supervision));
      abody.append(tr);
    }
  };
  const superviseCell = (callId, supervision) => {
    const td = el("td", "supervise");
    if (!callId || supervision === null) return td;
    const on = supervision.filter((s) => s.call_id === callId);
    const state = el("span", "supervision-state", on.map((s) => s.supervisor_id + ": " + s.mode).join(", "));
    state.dataset.mode = on.length ? on[0].mode : "";
    const box = el("span");
    box.dataset.superviseCall = callId;
    for (const [mode, label] of SUPERVISE_MODES) {
      const b = el("button", "", label);
      b.type = "button";
      b.dataset.supervise = mode;
      box.append(b);
    }
    td.append(state, box);
    return td;
  };
  const refresh = async () => {
    const [q, a, s] = await Promise.all([fetch("/api/queues"), fetch("/api/agents"), fetch("/api/supervision")]);
    const conn = $("#conn");
    if (q.ok && a.ok) {
      render(await q.json(), await a.json(), s.ok ? await s.json() : null);
      conn.textContent = "live"; conn.classList.add("ok");
    } else {
      conn.textContent = q.status === 403 ? "supervisors only" : "unavailable"; conn.classList.remove("ok");
    }
  };
  wireSupervise($("#agents"), refresh);
  refresh();
  setInterval(refresh, 2000);
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
else if (page === "agent") initAgent();
else if (page === "queues") initQueues();
