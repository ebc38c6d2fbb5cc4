// Knowledge suggestions in the call view: #kb-suggestions lists the articles of the latest
// assist.suggestion (title, score, the caller's words that matched); opening one shows it in
// #kb-article, where the agent marks it helpful or not (POST /api/agent/feedback); the mark
// comes back as assist.feedback and shows on the article's row. Loaded before console.js,
// whose callView() merges these handlers.
"use strict";

function knowledgeView(has) {
  let callId = "";
  let articles = {};
  let marks = {};
  let open = null;

  const inline = (text) => {  // **bold** and *emphasis* only; everything else stays text
    const span = document.createElement("span");
    for (const part of text.split(/(\*\*[^*]+\*\*|\*[^*]+\*)/)) {
      if (!part) continue;
      const bold = part.startsWith("**") && part.length > 4;
      const em = !bold && part.startsWith("*") && part.endsWith("*") && part.length > 2;
      if (bold || em) {
        const node = document.createElement(bold ? "strong" : "em");
        node.textContent = bold ? part.slice(2, -2) : part.slice(1, -1);
        span.append(node);
      } else {
        span.append(document.createTextNode(part));
      }
    }
    return span;
  };

  // Paragraphs and lists of a short Markdown article, built as DOM nodes (never as HTML): an
  // indented line continues the list item above it; a blank line ends a paragraph.
  const renderBody = (md) => {
    const box = document.createElement("div");
    let list = null;
    let item = null;
    let para = null;
    for (const raw of (md || "").split("\n")) {
      const line = raw.trim();
      const bullet = line.match(/^([-*]|\d+\.)\s+(.*)$/);
      if (!line) {
        para = null;
        item = null;
      } else if (bullet) {
        const ordered = /\d/.test(bullet[1]);
        if (!list || (list.tagName === "OL") !== ordered) {
          list = document.createElement(ordered ? "ol" : "ul");
          box.append(list);
        }
        item = document.createElement("li");
        item.append(inline(bullet[2]));
        list.append(item);
        para = null;
      } else if (item && /^\s/.test(raw)) {
        item.append(" ", inline(line));
      } else if (para) {
        para.append(" ", inline(line));
      } else {
        list = null;
        item = null;
        para = document.createElement("p");
        para.append(inline(line));
        box.append(para);
      }
    }
    return box;
  };

  const markText = (id) => id in marks ? (marks[id] ? "✓ helpful" : "✗ not helpful") : "";

  const showArticle = (id) => {
    const a = articles[id];
    if (!a || !has("#kb-article")) return;
    open = id;
    $("#kb-article").hidden = false;
    $("#kb-article").dataset.article = id;
    $("#kb-article-title").textContent = a.title;
    $("#kb-article-body").replaceChildren(renderBody(a.body));
    $("#kb-msg").textContent = markText(id);
  };

  const renderList = (list) => {
    if (!has("#kb-suggestions")) return;
    const ol = $("#kb-suggestions");
    ol.replaceChildren();
    for (const a of list) {
      const li = el("li", "kb-item");
      li.dataset.article = a.id;
      const btn = el("button", "kb-open link", a.title);
      btn.type = "button";
      btn.addEventListener("click", () => showArticle(a.id));
      const words = el("span", "kb-matched muted", (a.matched || []).join(", "));
      li.append(btn, el("span", "kb-score muted", " " + Number(a.score).toFixed(1) + " "), words,
        el("span", "kb-mark", markText(a.id)));
      ol.append(li);
    }
    if (has("#kb-empty")) $("#kb-empty").hidden = list.length > 0;
  };

  const send = async (helpful) => {
    const a = articles[open];
    if (!a) return;
    $("#kb-msg").textContent = "saving…";
    const r = await fetch("/api/agent/feedback", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ call_id: callId, article_id: a.id, title: a.title, helpful }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) $("#kb-msg").textContent = body.detail || "refused";
  };
  if (has("#kb-helpful")) {
    $("#kb-helpful").addEventListener("click", () => send(true));
    $("#kb-not-helpful").addEventListener("click", () => send(false));
  }

  const reset = () => {
    callId = ""; articles = {}; marks = {}; open = null;
    renderList([]);
    if (has("#kb-article")) $("#kb-article").hidden = true;
  };

  const handlers = {
    "assist.suggestion": (e) => {
      callId = e.call_id;
      for (const a of e.articles || []) articles[a.id] = a;
      renderList(e.articles || []);
    },
    "assist.feedback": (e) => {
      callId = e.call_id;
      marks[e.article_id] = e.helpful;
      const row = document.querySelector('#kb-suggestions li[data-article="' + CSS.escape(e.article_id) + '"] .kb-mark');
      if (row) row.textContent = markText(e.article_id);
      if (open === e.article_id && has("#kb-msg")) $("#kb-msg").textContent = markText(e.article_id);
    },
  };
  return { reset, handlers };
}
