// Call review (the call page): the summary as readable sections, the recording in an <audio>
// element with the transcript line under the playhead highlighted and a playhead on the
// timeline. Anything may move the playhead: document.dispatchEvent(new CustomEvent("cc:seek",
// {detail: {t: seconds}})) (call-clock seconds, the recording's clock too); a click on an element
// with data-t (transcript lines, alerts, evidence times) in the page does it here. Loaded before
// console.js, which calls reviewSummary() when the call's summary arrives.
"use strict";

const review = (() => {
  const q = (sel) => document.querySelector(sel);
  const make = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  };
  const num = (v) => (typeof v === "number" && isFinite(v) ? v : 0);
  const clock = (t) => {
    t = Math.max(0, num(t));
    const m = Math.floor(t / 60);
    const s = t - 60 * m;
    return m + ":" + (s < 10 ? "0" : "") + s.toFixed(1);
  };
  const secs = (t) => num(t).toFixed(1) + " s";
  const pct = (x) => Math.round(100 * num(x)) + " %";
  const words = (id) => String(id || "").replace(/_/g, " ");
  const known = (v) => v !== undefined && v !== null && v !== "" && v !== "unknown";

  // A clickable call time: <button class="seek" data-t="12.3">0:12.3</button>.
  const timeLink = (t, title) => {
    const b = make("button", "seek", clock(t));
    b.type = "button";
    b.dataset.t = String(num(t));
    if (title) b.title = title;
    return b;
  };

  // ---- the summary as sections ---------------------------------------------------------
  const FIELD_SECTION = {  // summary.evidence keys -> the section showing them
    reason: "reason", reason_phrase: "reason", actions_taken: "done", resolution: "outcome",
    next_steps: "promises", follow_ups: "promises", entities: "entities", key_phrases: "entities",
    tone_start: "tone", tone_end: "tone", tone_peak: "tone", tone_arc: "tone", tone_alerts: "tone",
    dead_air_total_s: "deadair", talk_ratio: "talk", talk_over_count: "talk", hold: "hold",
    queue: "queue", cues: "cues", rules: "rules", categories: "rules", checklist: "checklist",
    articles: "articles",
  };

  function renderSummary(root, s) {
    root.replaceChildren();
    const sections = {};
    const section = (id, title) => {
      const box = make("section", "rs");
      box.dataset.section = id;
      box.append(make("h4", "", title));
      root.append(box);
      sections[id] = box;
      return box;
    };
    const para = (box, text, cls) => { box.append(make("p", cls || "", text)); };
    const list = (box, items, render) => {
      if (!items || !items.length) return false;
      const ul = make("ul", "rs-list");
      for (const item of items) { const li = make("li"); render(li, item); ul.append(li); }
      box.append(ul);
      return true;
    };

    let box = section("reason", "Reason for the call");
    para(box, s.reason + (s.reason_phrase ? " – “" + s.reason_phrase + "”" : "") + (known(s.reason) ? "" : " (not recognized)"));

    box = section("done", "What was done");
    if (!list(box, s.actions_taken, (li, a) => { li.textContent = words(a); })) para(box, "nothing recorded", "muted");

    box = section("promises", "Promises and follow-ups");
    const promises = [...(s.follow_ups || []), ...(s.next_steps || [])];
    if (!list(box, promises, (li, f) => {
      li.append(timeLink(f.t, "when it was said"), " ", make("span", "", f.text),
        make("span", "muted", " – " + (f.owner || "agent") + (known(f.due) ? ", due " + f.due : ", no due date heard")));
    })) para(box, "none heard", "muted");

    box = section("outcome", "Outcome");
    para(box, s.resolution + (known(s.resolution) ? "" : " (not recognized)") + " · ended: " + s.end_reason +
      " · " + secs(s.duration) + " long, handle time " + secs(s.handle_time));

    if ((s.entities || []).length || (s.key_phrases || []).length) {
      box = section("entities", "Entities and key phrases");
      list(box, s.entities, (li, e) => {
        li.append(timeLink(e.t), " ", make("strong", "", words(e.kind) + ": "), make("span", "", e.value));
      });
      if ((s.key_phrases || []).length) para(box, "Key phrases: " + s.key_phrases.join(", "));
    }

    box = section("tone", "Tone");
    para(box, "start " + s.tone_start + " → end " + s.tone_end + " (peak " + s.tone_peak + ")");
    const parties = Object.entries(s.tone_by_party || {});
    if (parties.length) {
      para(box, parties.map(([p, t]) => p + ": " + words(t.start) + " → " + words(t.end) + " (worst " + words(t.worst) + ")").join("; "), "muted");
    }
    if ((s.tone_arc || []).length) {
      const arc = make("p", "arc");
      arc.append("Arc: ");
      for (const m of s.tone_arc) {
        const b = timeLink(m.t, m.label + " " + num(m.score).toFixed(2));
        b.textContent = clock(m.t) + " " + m.label;
        arc.append(b, " ");
      }
      box.append(arc);
    }
    list(box, s.tone_alerts, (li, a) => {
      li.append(timeLink(a.t), " ", make("span", "", words(a.kind) + ((a.reasons || []).length ? ": " + a.reasons.join("; ") : "")));
    });

    box = section("deadair", "Dead air");
    para(box, num(s.dead_air_count) ? secs(s.dead_air_total_s) + " in " + s.dead_air_count + " gap(s)" : "none");

    box = section("talk", "Talk");
    const ratio = Object.entries(s.talk_ratio || {}).map(([p, r]) => p + " " + pct(r)).join(", ");
    para(box, (ratio ? "Share of talk: " + ratio + ". " : "") + "Talk-over: " + num(s.talk_over_count) +
      Object.entries(s.talk_over_by || {}).filter(([, n]) => n).map(([p, n]) => ", " + n + " by the " + p).join(""));
    const gap = s.agent_response_gap_s || {};
    if (num(gap.count)) para(box, "Agent answered in " + secs(gap.mean_s) + " on average (longest " + secs(gap.max_s) + ")", "muted");

    const hold = s.hold || {};
    box = section("hold", "Hold");
    para(box, num(hold.count) ? hold.count + " hold(s), " + secs(hold.total_s) + " in all" : "none");

    const queue = s.queue || {};
    if (queue.name || (queue.agent_ids || []).length || (s.ivr_path || []).length || s.dtmf) {
      box = section("queue", "Queue and IVR");
      if (queue.name) para(box, "Queue " + queue.name + ", waited " + secs(queue.wait_s) +
        ((queue.agent_ids || []).length ? ", agent " + queue.agent_ids.join(", ") : "") +
        (num(queue.transfers) ? ", " + queue.transfers + " transfer(s)" : ""));
      if ((s.ivr_path || []).length) para(box, "IVR path: " + s.ivr_path.join(" → "));
      if (s.dtmf) para(box, "Keys: " + s.dtmf);
    }

    if ((s.cues || []).length) {
      box = section("cues", "De-escalation cues");
      list(box, s.cues, (li, c) => {
        const ack = c.acknowledged === null || c.acknowledged === undefined ? "no agent on the call"
          : c.acknowledged ? "acknowledged" : "not acknowledged";
        li.append(timeLink(c.t), " ", make("span", "", "caller " + (c.trigger === "phrase" ? "escalated" : "upset") + ": " + ack +
          (known(c.tension) ? ", tension " + c.tension : "")));
        if (c.ack_t !== null && c.ack_t !== undefined) li.append(" ", timeLink(c.ack_t, "acknowledged here"));
      });
    }

    if ((s.rules || []).length || (s.categories || []).length) {
      box = section("rules", "Rules and categories");
      list(box, s.rules, (li, r) => {
        li.append(timeLink(r.t), " ", make("strong", "", r.rule), make("span", "", (r.message ? ": " + r.message : "") +
          ((r.categories || []).length ? " (" + r.categories.join(", ") + ")" : "")));
      });
      if ((s.categories || []).length) para(box, "Categories: " + s.categories.join(", "));
    }

    const check = s.checklist;
    if (check && Object.keys(check.items || {}).length) {
      box = section("checklist", "Checklist" + (check.queue ? " (" + check.queue + ")" : ""));
      list(box, Object.entries(check.items), (li, [id, t]) => {
        const label = (check.labels || {})[id] || words(id);
        li.className = t === null ? "todo" : "done";
        li.append(make("span", "", (t === null ? "○ " : "✓ ") + label));
        if (t !== null) li.append(" ", timeLink(t));
        else li.append(make("span", "muted", " – not said"));
      });
    }

    if ((s.articles || []).length) {
      box = section("articles", "Knowledge articles");
      list(box, s.articles, (li, a) => {
        li.append(timeLink(a.t), " ", make("span", "", (a.title ? a.title + " (" + a.article_id + ")" : a.article_id) +
          (a.helpful ? " – helpful" : " – not helpful")));
      });
    }

    if ((s.supervision || []).length) {
      box = section("supervision", "Supervision");
      list(box, s.supervision, (li, v) => {
        li.append(timeLink(v.t), " ", make("span", "", v.supervisor_id + ": " + (v.requested ? v.requested + " refused" : v.mode) +
          (v.reason ? " (" + v.reason + ")" : "")));
      });
    }

    // Who, when, where from: the summary's other plain fields (ids, parties, source file...).
    const shown = new Set(["reason", "reason_phrase", "resolution", "end_reason", "tone_start", "tone_end", "tone_peak", "dtmf"]);
    const rest = Object.entries(s).filter(([k, v]) => !shown.has(k) && typeof v === "string" && v);
    if (rest.length) {
      box = section("details", "Call details");
      const dl = make("dl", "rs-details");
      for (const [k, v] of rest) dl.append(make("dt", "", words(k)), make("dd", "", v));
      box.append(dl);
    }

    // Each field's evidence: the transcript times it rests on, under its section.
    for (const [field, items] of Object.entries(s.evidence || {})) {
      if (!items || !items.length) continue;
      const target = sections[FIELD_SECTION[field]] || sections.evidence || section("evidence", "Other evidence");
      const p = make("p", "evidence");
      p.dataset.field = field;
      p.append(make("span", "muted", "Heard (" + words(field) + "): "));
      for (const ev of items) {
        const b = timeLink(ev.t_start, ev.party + ": “" + ev.text + "”");
        b.dataset.end = String(num(ev.t_end));
        p.append(b, " ");
      }
      target.append(p);
    }
  }

  // ---- the player ------------------------------------------------------------------------
  const state = { callId: "", party: "both", pending: null, geometry: null, probing: false };
  const audio = () => q("#player");
  const recordingUrl = () => "/api/calls/" + encodeURIComponent(state.callId) + "/recording?party=" + state.party;

  function seek(t) {
    const player = audio();
    t = Math.max(0, num(t));
    if (!player || !player.src || player.readyState < 1) { state.pending = t; return; }
    player.currentTime = t;
    follow(t);
  }

  function follow(t) {
    let current = null;
    for (const line of document.querySelectorAll("#transcript .line[data-t]")) {
      const on = t >= num(parseFloat(line.dataset.t)) && t <= num(parseFloat(line.dataset.end));
      line.classList.toggle("playing", on);
      if (on) current = line;
    }
    if (current && !current.dataset.shown) {
      document.querySelectorAll("#transcript .line[data-shown]").forEach((n) => delete n.dataset.shown);
      current.dataset.shown = "1";
      const box = q("#transcript");
      box.scrollTop = Math.max(0, current.offsetTop - box.offsetTop - box.clientHeight / 3);
    }
    const head = q("#playhead");
    const img = q("#timeline");
    const g = state.geometry;
    if (head && img && g && g.length > 0 && img.clientWidth) {
      const x = (g.left + g.plotWidth * Math.min(t, g.length) / g.length) * img.clientWidth / g.width;
      head.style.left = x.toFixed(1) + "px";
      head.hidden = false;
    }
  }

  async function probe(retries) {
    // Ask for one byte first: a missing recording shows its reason instead of a dead player.
    if (state.probing) return;
    state.probing = true;
    const msg = q("#player-msg");
    try {
      const r = await fetch(recordingUrl(), { headers: { Range: "bytes=0-0" } });
      if (r.ok) {
        msg.textContent = "";
        q("#player-card").dataset.recording = "yes";
        load();
        return;
      }
      const detail = await r.json().then((b) => b.detail).catch(() => "");
      msg.textContent = "No recording to play" + (detail ? ": " + detail : "") + ".";
      q("#player-card").dataset.recording = "no";
      if (r.status === 404 && retries > 0) setTimeout(() => { state.probing = false; probe(retries - 1); }, 1000);
    } finally {
      state.probing = false;
    }
  }

  function load() {
    const player = audio();
    const at = player.src ? player.currentTime : state.pending;
    const playing = player.src && !player.paused;
    player.hidden = false;
    player.src = recordingUrl();
    player.addEventListener("loadedmetadata", () => {
      if (at !== null && at !== undefined) { player.currentTime = at; follow(at); }
      state.pending = null;
      if (playing) player.play().catch(() => {});
    }, { once: true });
  }

  async function measureTimeline() {
    const img = q("#timeline");
    if (!img || !img.src) return;
    const r = await fetch(img.src);
    if (!r.ok) return;
    const svg = new DOMParser().parseFromString(await r.text(), "image/svg+xml").documentElement;
    state.geometry = {
      left: parseFloat(svg.getAttribute("data-left")), plotWidth: parseFloat(svg.getAttribute("data-plot-width")),
      length: parseFloat(svg.getAttribute("data-length")), width: parseFloat(svg.getAttribute("width")),
    };
    if (audio() && audio().src) follow(audio().currentTime);
  }

  function init() {
    if (document.body.dataset.page !== "call") return;
    state.callId = decodeURIComponent(location.pathname.split("/")[2]);
    const card = q("#scorecard");
    if (card) card.dataset.callId = state.callId;  // scorecard.js (loaded after this) renders there
    const raw = q("#raw-link");
    if (raw) { raw.href = "/api/calls/" + encodeURIComponent(state.callId); raw.download = state.callId + ".json"; }

    const player = audio();
    let frame = 0;
    const tick = () => { follow(player.currentTime); frame = player.paused ? 0 : requestAnimationFrame(tick); };
    player.addEventListener("play", () => { if (!frame) frame = requestAnimationFrame(tick); });
    player.addEventListener("timeupdate", () => follow(player.currentTime));
    player.addEventListener("seeked", () => follow(player.currentTime));
    player.addEventListener("loadedmetadata", () => {
      if (state.pending !== null) { player.currentTime = state.pending; follow(state.pending); state.pending = null; }
    });
    for (const radio of document.querySelectorAll("input[name=party]")) {
      radio.addEventListener("change", () => { if (radio.checked) { state.party = radio.value; if (player.src) load(); } });
    }

    document.addEventListener("cc:seek", (ev) => seek(ev.detail && ev.detail.t));
    document.addEventListener("click", (ev) => {
      const hit = ev.target.closest("[data-t]");
      if (!hit || hit.closest("#scorecard")) return;  // the scorecard dispatches cc:seek itself
      if (!hit.closest("#transcript, #alerts, #summary, #cues, #review-times")) return;
      document.dispatchEvent(new CustomEvent("cc:seek", { detail: { t: parseFloat(hit.dataset.t) } }));
    });

    const img = q("#timeline");
    img.addEventListener("load", measureTimeline);
    img.addEventListener("click", (ev) => {
      const g = state.geometry;
      if (!g || !img.clientWidth) return;
      const x = ev.offsetX * g.width / img.clientWidth;
      if (x < g.left || x > g.left + g.plotWidth) return;
      document.dispatchEvent(new CustomEvent("cc:seek", { detail: { t: (x - g.left) / g.plotWidth * g.length } }));
    });
    probe(0);
  }

  init();  // deferred: the page is parsed, console.js and scorecard.js run after this
  return {
    renderSummary,
    summaryArrived() { if (q("#player-card") && q("#player-card").dataset.recording !== "yes") probe(20); },
  };
})();

// console.js calls this after each (re)connect's reset: a past call's stream has its events but
// not its summary (the store keeps that apart), so the stored one is fetched and shown.
async function reviewStored(callId) {
  const r = await fetch("/api/calls/" + encodeURIComponent(callId));
  if (!r.ok) return;
  const record = await r.json();
  const root = document.querySelector("#summary");
  if (record.live || !record.summary || !root || root.childElementCount) return;
  reviewSummary(root, record.summary);
  document.querySelector("#summary-card").hidden = false;
}

// console.js hands the call's summary here (the call page's readable sections).
function reviewSummary(root, summary) {
  review.renderSummary(root, summary);
  review.summaryArrived();
}
