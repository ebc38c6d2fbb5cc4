"""The assist parts of the after-call summary, read from the call's events: the live rules that
fired and their categories, each de-escalation cue with its outcome, the script checklist."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from speech.events import AssistCue, AssistCueOutcome, ChecklistUpdate, Event, RuleMatched
from summaries.summary import ChecklistNote, CueNote, RuleNote


def rule_notes(evs: Sequence[Event]) -> tuple[RuleNote, ...]:
    return tuple(RuleNote(round(e.t, 2), e.rule, tuple(e.categories), e.message)
                 for e in evs if isinstance(e, RuleMatched))


def categories(evs: Sequence[Event]) -> tuple[str, ...]:
    return tuple(sorted({c for e in evs if isinstance(e, RuleMatched) for c in e.categories}))


def cue_notes(evs: Sequence[Event]) -> tuple[CueNote, ...]:
    outcomes = {e.cue: e for e in evs if isinstance(e, AssistCueOutcome)}
    notes = []
    for cue in (e for e in evs if isinstance(e, AssistCue)):
        out = outcomes.get(cue.cue)
        notes.append(CueNote(
            t=round(cue.t, 2), trigger=cue.trigger, reasons=tuple(cue.reasons),
            acknowledged=out.acknowledged if out else None,  # None: no agent on the call, or undecided
            ack_t=round(out.ack_t, 2) if out and out.ack_t is not None else None,
            tension=out.tension if out else "unknown",
            scores=tuple(out.scores) if out else ()))
    return tuple(notes)


def checklist_note(evs: Sequence[Event]) -> ChecklistNote | None:
    last = next((e for e in reversed(evs) if isinstance(e, ChecklistUpdate)), None)
    if last is None:
        return None
    return ChecklistNote(queue=last.queue, items={i: last.done.get(i) for i in last.items},
                         labels=dict(zip(last.items, last.labels, strict=False)))


def assist_lines(s: dict[str, Any]) -> list[str]:
    """Report lines of a summary dict: categories, rules, cues with their outcome, checklist."""
    lines: list[str] = []
    if s.get("categories"):
        lines.append(f"Categories: {', '.join(s['categories'])}")
    for r in s.get("rules") or []:
        lines.append(f"Rule:       {r['rule']} at {r['t']:.1f}s" + (f": {r['message']}" if r.get("message") else ""))
    for c in s.get("cues") or []:
        ack = {True: f"acknowledged at {c.get('ack_t') or 0:.1f}s", False: "NOT acknowledged",
               None: "no agent to acknowledge"}[c.get("acknowledged")]
        lines.append(f"Cue:        {c['t']:.1f}s ({c['trigger']}: {'; '.join(c.get('reasons') or [])}) -> "
                     f"{ack}; caller tension {c.get('tension', 'unknown')}")
    check = s.get("checklist")
    if check:
        items = check.get("items") or {}
        said = [i for i, t in items.items() if t is not None]
        missing = [i for i, t in items.items() if t is None]
        lines.append(f"Checklist:  {check.get('queue')}: {len(said)}/{len(items)} said"
                     + (f"; missing {', '.join(missing)}" if missing else ""))
    return lines
