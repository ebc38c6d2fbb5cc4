// QA scorecard of one call (issue 16): renders into <section id="scorecard" data-call-id="…">.
// Answers with their evidence (a time link dispatches "cc:seek" for the recording's player),
// live updates from the call's event stream (qa.scorecard), and a reviewer's override form.
"use strict";

(() => {
  const ANSWERS = ["yes", "no", "na"];
  const make = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const clock = (t) => {
    const s = Math.max(0, Number(t) || 0);
    return Math.floor(s / 60) + ":" + String(Math.floor(s % 60)).padStart(2, "0");
  };
  const pct = (v) => (v === null || v === undefined ? "n/a" : Math.round(v) + "%");

  function seekLink(ev) {
    const a = make("button", "link sc-seek", clock(ev.t_start));
    a.type = "button";
    a.dataset.t = String(ev.t_start);
    a.title = "play from " + clock(ev.t_start);
    a.addEventListener("click", () => {
      document.dispatchEvent(new CustomEvent("cc:seek", { detail: { t: Number(ev.t_start) } }));
    });
    return a;
  }

  function renderCard(root, card, state) {
    const box = make("div", "sc-form");
    box.dataset.formId = card.form_id;
    const head = make("div", "sc-head");
    const score = make("span", "sc-score", pct(card.score));
    score.dataset.score = card.score === null ? "" : String(card.score);
    const verdict = card.passed === null ? "–" : card.passed ? "pass" : "fail";
    head.append(make("strong", "", card.title || card.form_id), score,
      make("span", "badge sc-" + verdict, verdict), make("span", "muted", card.final ? "final" : "live"));
    box.append(head);
    const list = make("ol", "sc-answers");
    for (const a of card.answers || []) {
      const li = make("li", "sc-answer sc-" + a.answer);
      li.dataset.question = a.question_id;
      const line = make("div", "sc-line");
      line.append(make("span", "sc-mark", a.answer.toUpperCase()), make("span", "sc-text", a.text),
        make("span", "muted", " (" + a.weight + ")"));
      if (a.overridden) line.append(make("span", "badge sc-over", "overridden (auto: " + a.auto_answer + ")"));
      li.append(line, make("div", "sc-why muted", a.why || ""));
      const evs = make("div", "sc-evidence");
      for (const ev of a.evidence || []) {
        const item = make("span", "sc-ev");
        item.append(seekLink(ev), make("span", "", " " + (ev.party || "") + (ev.text ? ": “" + ev.text + "”" : "")));
        evs.append(item);
      }
      li.append(evs);
      if (state.canOverride) li.append(overrideForm(root, card, a, state));
      list.append(li);
    }
    box.append(list);
    if ((card.history || []).length) {
      box.append(make("h4", "", "Review history"));
      const hist = make("ul", "sc-history");
      for (const h of card.history) {
        hist.append(make("li", "", `${h.created_at || ""} ${h.reviewer}: ${h.question_id} ${h.previous} → ${h.answer} — ${h.reason}`));
      }
      box.append(hist);
    }
    return box;
  }

  function overrideForm(root, card, a, state) {
    const form = make("form", "sc-override");
    const sel = make("select");
    sel.name = "answer";
    for (const v of ANSWERS) {
      const o = make("option", "", v);
      o.value = v;
      if (v === a.answer) o.selected = true;
      sel.append(o);
    }
    const reason = make("input");
    reason.name = "reason";
    reason.placeholder = "reason (required)";
    reason.setAttribute("aria-required", "true");
    const btn = make("button", "", "Override");
    btn.type = "submit";
    const msg = make("span", "muted sc-msg");
    form.append(sel, reason, btn, msg);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (!reason.value.trim()) { msg.textContent = "a reason is required"; return; }
      const r = await fetch(`/api/calls/${encodeURIComponent(state.callId)}/scorecard/overrides`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ form_id: card.form_id, question_id: a.question_id, answer: sel.value,
          reason: reason.value.trim() }),
      });
      if (!r.ok) { msg.textContent = "failed: " + r.status; return; }
      await load(root, state);
    });
    return form;
  }

  function render(root, state) {
    const body = root.querySelector(".sc-body") || root.appendChild(make("div", "sc-body"));
    body.replaceChildren();
    if (!state.cards.length) { body.append(make("p", "muted", "no scorecard yet")); return; }
    for (const card of state.cards) body.append(renderCard(root, card, state));
  }

  async function load(root, state) {
    const r = await fetch(`/api/calls/${encodeURIComponent(state.callId)}/scorecard`);
    if (!r.ok) return;
    const data = await r.json();
    state.cards = data.scorecards || [];
    state.canOverride = !data.live && state.cards.some((c) => c.final);
    render(root, state);
  }

  function followLive(root, state) {
    const src = new EventSource(`/api/calls/${encodeURIComponent(state.callId)}/stream`);
    src.addEventListener("event", (msg) => {
      const e = JSON.parse(msg.data);
      if (e.type === "qa.scorecard" && e.scorecard) {
        if (e.final) { load(root, state); return; }  // stored: overrides now possible
        if (state.cards.some((c) => c.final)) return;
        state.cards = state.cards.filter((c) => c.form_id !== e.form_id).concat([e.scorecard]);
        render(root, state);
      }
    });
    return src;
  }

  async function init() {
    const root = document.getElementById("scorecard");
    if (!root) return;
    const callId = root.dataset.callId || decodeURIComponent(location.pathname.split("/").pop() || "");
    if (!root.querySelector("h3")) root.prepend(make("h3", "", "Quality scorecard"));
    const state = { callId, cards: [], canOverride: false };
    await load(root, state);
    followLive(root, state);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
