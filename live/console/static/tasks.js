// Follow-up tasks: promises heard in calls, overdue ones first and flagged.
// Renders into <section id="follow-ups" data-scope="mine|all">: "mine" on the agent page (the
// server keeps an agent session to its own tasks), "all" on /tasks with filters and a CSV link.
"use strict";

(function () {
  const root = document.getElementById("follow-ups");
  if (!root) return;
  const scope = root.dataset.scope || "mine";
  const list = root.querySelector(".task-list") || root.appendChild(document.createElement("ul"));
  list.classList.add("task-list");
  const msg = root.querySelector(".task-msg");
  const filters = document.getElementById("task-filters");
  const csv = document.getElementById("task-csv");

  function query() {
    const p = new URLSearchParams();
    if (filters) {
      const f = new FormData(filters);
      for (const key of ["agent", "status"]) if (f.get(key)) p.set(key, f.get(key));
      if (f.get("overdue")) p.set("overdue", "true");
    }
    return p;
  }

  function when(iso) {
    if (!iso) return "no date said";
    const d = new Date(iso);
    return d.toLocaleString([], { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  }

  function row(task) {
    const li = document.createElement("li");
    li.className = "task" + (task.overdue ? " overdue" : "") + (task.status === "done" ? " done" : "");
    li.dataset.taskId = task.id;
    const due = document.createElement("span");
    due.className = "task-due";
    due.textContent = when(task.due_at);
    due.title = task.due_hint ? `said: "${task.due_hint}"` : "";
    li.appendChild(due);
    if (task.overdue) {
      const flag = document.createElement("span");
      flag.className = "badge task-overdue";
      flag.textContent = "overdue";
      li.appendChild(flag);
    }
    const text = document.createElement("span");
    text.className = "task-text";
    text.textContent = task.text;
    li.appendChild(text);
    const meta = document.createElement("span");
    meta.className = "muted task-meta";
    if (scope === "all" && task.agent_id) meta.append(`${task.agent_id} · `);
    const call = document.createElement("a");
    call.href = `/calls/${encodeURIComponent(task.call_id)}`;
    call.textContent = "call";
    meta.appendChild(call);
    li.appendChild(meta);
    if (task.status === "open") {
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "secondary task-done";
      btn.textContent = "Done";
      btn.addEventListener("click", () => markDone(task.id, btn));
      li.appendChild(btn);
    }
    return li;
  }

  async function load() {
    const p = query();
    if (csv) {
      const c = new URLSearchParams(p);
      c.set("format", "csv");
      csv.href = `/api/tasks?${c}`;
    }
    let items;
    try {
      const r = await fetch(`/api/tasks?${p}`, { credentials: "same-origin" });
      if (r.status === 404) { root.hidden = true; return; } // no task store configured
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      items = (await r.json()).items;
    } catch (e) {
      if (msg) msg.textContent = `could not load tasks (${e.message})`;
      return;
    }
    list.replaceChildren(...items.map(row));
    const late = items.filter((t) => t.overdue).length;
    if (msg) msg.textContent = items.length ? `${items.length} task(s)${late ? `, ${late} overdue` : ""}` : "no follow-ups";
    root.dataset.loaded = "true";
  }

  async function markDone(id, btn) {
    btn.disabled = true;
    const r = await fetch(`/api/tasks/${id}/done`, { method: "POST", credentials: "same-origin" });
    if (!r.ok && msg) msg.textContent = `could not mark it done (HTTP ${r.status})`;
    await load();
  }

  if (filters) filters.addEventListener("submit", (e) => { e.preventDefault(); load(); });
  load();
  setInterval(load, 60000); // due dates pass while the page is open
})();
