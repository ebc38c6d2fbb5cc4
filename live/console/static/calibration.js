// QA calibration view (issue 16): per question, automatic vs reviewers' answers.
"use strict";

(() => {
  const make = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  async function init() {
    const r = await fetch("/api/qa/calibration");
    if (!r.ok) return;
    const data = await r.json();
    document.getElementById("overall").textContent = data.agreement === null ? "–" : data.agreement + "%";
    document.getElementById("reviewed").textContent = String(data.reviewed_calls);
    const body = document.querySelector("#calibration tbody");
    body.replaceChildren();
    document.getElementById("empty").hidden = data.questions.length > 0;
    for (const q of data.questions) {
      const tr = make("tr");
      tr.dataset.question = q.question_id;
      const pairs = [];
      for (const [auto, finals] of Object.entries(q.confusion)) {
        for (const [fin, n] of Object.entries(finals)) if (n && auto !== fin) pairs.push(`${auto}→${fin}: ${n}`);
      }
      const calls = make("td", "calls");
      for (const o of q.overridden) {
        const a = make("a", "", o.call_id);
        a.href = "/calls/" + encodeURIComponent(o.call_id);
        a.title = `${o.reviewer}: ${o.automatic} → ${o.final} (${o.reason})`;
        calls.append(a, document.createTextNode(" "));
      }
      tr.append(make("td", "", q.form_id), make("td", "", q.question_id), make("td", "", String(q.reviewed)),
        make("td", "agreement", q.agreement === null ? "–" : q.agreement + "%"), make("td", "", pairs.join(", ") || "–"), calls);
      body.append(tr);
    }
  }

  init();
})();
