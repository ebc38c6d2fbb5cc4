"""Plain-text views of stored calls for ``callcenter calls list`` / ``callcenter calls show ID``.

Rendered with rich into a string without colour codes, so the CLI can print it, pipe it or put
it in a test assertion. Accepts the store's dataclasses or the API's dicts.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

from summaries.assist_notes import assist_lines
from summaries.knowledge_notes import article_lines
from summaries.store import CallDetail, CallRow
from summaries.summary import CallSummary

WIDTH = 120


def _render(*items: Any) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=WIDTH, color_system=None, force_terminal=False, highlight=False)
    for item in items:
        console.print(item)
    return buf.getvalue()


def _d(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def format_call_list(rows: Iterable[CallRow | dict[str, Any]]) -> str:
    """A table of calls: id, start, caller, duration, reason, resolution, tone."""
    table = Table(title="Calls", show_lines=False)
    for col in ("call id", "started (UTC)", "caller", "dur s", "reason", "resolution", "tone end"):
        table.add_column(col, justify="right" if col == "dur s" else "left", overflow="fold")
    n = 0
    for r in map(_d, rows):
        n += 1
        started = (r.get("started_at") or "")[:19].replace("T", " ")
        table.add_row(r["call_id"], started, r.get("caller") or "", f"{r.get('duration', 0):.0f}",
                      r.get("reason", ""), r.get("resolution", ""), r.get("tone_end", ""))
    if n == 0:
        return "No calls.\n"
    return _render(table)


def format_call(call: CallDetail | dict[str, Any]) -> str:
    """One call: header, summary fields, follow-ups, tone arc and the transcript with times."""
    c = _d(call)
    s = c.get("summary") or {}
    lines = [
        f"Call {c['call_id']}  caller {c.get('caller') or '-'}  started {c.get('started_at') or '-'}"
        f"  duration {c.get('duration', 0):.0f}s  ({c.get('end_reason') or '-'})",
        f"Summary by: {c.get('producer') or '-'}",
        f"Reason:     {s.get('reason', 'unknown')}" + (f'  ("{s["reason_phrase"]}")' if s.get("reason_phrase") else ""),
        f"Resolution: {s.get('resolution', 'unknown')}",
    ]
    for a in s.get("actions_taken") or []:
        lines.append(f"Action:     {a}")
    for f in s.get("follow_ups") or []:
        lines.append(f"Follow-up:  {f['text']}  [due: {f['due']}]")
    for f in s.get("next_steps") or []:
        lines.append(f"Caller to:  {f['text']}  [due: {f['due']}]")
    for e in s.get("entities") or []:
        lines.append(f"Entity:     {e['kind']} = {e['value']} ({e['source']})")
    if s:
        arc = " -> ".join(f"{m['label']}@{m['t']:.0f}s" for m in s.get("tone_arc") or []) or "unknown"
        ratio = s.get("talk_ratio") or {}
        lines += [
            f"Tone:       {arc}" + (f"  ({len(s['tone_alerts'])} alert(s))" if s.get("tone_alerts") else ""),
            f"Dead air:   {s.get('dead_air_total_s', 0):.1f}s in {s.get('dead_air_count', 0)} gap(s);"
            f"  talk-over {s.get('talk_over_count', 0)}{_by_party(s.get('talk_over_by') or {})};"
            f"  talk ratio caller {ratio.get('caller', 0):.0%} / agent {ratio.get('agent', 0):.0%}",
            f"IVR path:   {' > '.join(s.get('ivr_path') or []) or '-'}",
            *_conversation_lines(s),
        ]
        if s.get("key_phrases"):
            lines.append(f"Key phrases: {', '.join(s['key_phrases'])}")
    transcript = Table(title="Transcript", show_header=True)
    transcript.add_column("t", justify="right")
    transcript.add_column("party")
    transcript.add_column("text", overflow="fold")
    for u in c.get("transcript") or []:
        transcript.add_row(f"{u['t_start']:.1f}", u["party"], u["text"])
    return "\n".join(lines) + "\n\n" + _render(transcript)


def _by_party(counts: dict[str, int]) -> str:
    """`` (caller 1, agent 0)``, or nothing when nobody did it."""
    if not any(counts.values()):
        return ""
    return " (" + ", ".join(f"{party} {n}" for party, n in counts.items()) + ")"


def _conversation_lines(s: dict[str, Any]) -> list[str]:
    """Queue, holds, response gaps and each party's tone: only what the call had."""
    lines: list[str] = []
    q = s.get("queue") or {}
    if q.get("name") or q.get("agent_ids"):
        lines.append(
            f"Queue:      {' > '.join(q.get('queues') or []) or q.get('name') or '-'}, waited {q.get('wait_s', 0):.0f}s;"
            f"  agent(s) {', '.join(q.get('agent_ids') or []) or '-'};  transfers {q.get('transfers', 0)}"
        )
    hold = s.get("hold") or {}
    if hold.get("count"):
        lines.append(f"Hold:       {hold['count']} time(s), {hold.get('total_s', 0):.1f}s")
    gaps = s.get("agent_response_gap_s") or {}
    if gaps.get("count"):
        lines.append(f"Agent gap:  {gaps.get('mean_s', 0):.1f}s mean, {gaps.get('max_s', 0):.1f}s max"
                     f" over {gaps['count']} answer(s)")
    for party, tone in (s.get("tone_by_party") or {}).items():
        lines.append(f"Tone {party + ':':<8}{tone.get('start')} -> {tone.get('end')} (worst {tone.get('worst')})")
    lines += [f"Knowledge:  {line}" for line in article_lines(s)]
    lines += assist_lines(s)
    return lines


def format_summary_brief(summary: CallSummary | dict[str, Any]) -> str:
    """A few lines for the terminal after a replay: reason, resolution, follow-ups, tone, dead air."""
    s = _d(summary)
    lines = [
        f"call {s.get('call_id') or '-'}: reason {s.get('reason', 'unknown')}, "
        f"resolution {s.get('resolution', 'unknown')}, tone {s.get('tone_start', 'unknown')} -> "
        f"{s.get('tone_end', 'unknown')}, dead air {s.get('dead_air_total_s', 0):.1f}s "
        f"({s.get('dead_air_count', 0)}), {s.get('duration', 0):.0f}s",
    ]
    if s.get("reason_phrase"):
        lines.append(f'  said: "{s["reason_phrase"]}"')
    for f in s.get("follow_ups") or []:
        lines.append(f"  follow-up: {f['text']} [due: {f['due']}]")
    for line in _conversation_lines(s):
        lines.append(f"  {line}")
    return "\n".join(lines) + "\n"
