"""``callcenter rules test RULES.yaml FILES...``: what a rules file fires on recorded calls.

Recordings (WAV/FLAC, folders of them) are replayed through the full pipeline with the rules
file in place of ``rules.file`` and its webhooks off; event logs (``.jsonl`` from ``replay
--json`` or the MQTT ``events`` stream) are evaluated directly, without audio. Either way the
same engine decides on event call times, so the output matches what the live call fired.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from assist.files import AssistFileError
from assist.rules import RulesEngine
from assist.rules_model import RulesFile, load_rules
from assist.rules_stage import RulesSettings
from callcenter.call_inputs import events_of, is_event_log
from callcenter.replay import expand_inputs
from callcenter.settings import Settings
from speech.events import CallEnded, Event, RuleMatched


def evaluate_events(rules: RulesFile, events: Iterable[Event], *, settle_s: float = 3.0) -> list[RuleMatched]:
    """Run a rules file over a stored call: the clock follows the events' call times."""
    engine = RulesEngine(rules, settle_s=settle_s)
    fired: list[Event] = []
    clock = 0.0
    end: float | None = None
    for event in events:
        if isinstance(event, RuleMatched):
            continue  # what the call fired then, not what this file fires now
        clock = max(clock, event.t)
        fired += engine.advance(clock)
        fired += engine.on_event(event)
        if isinstance(event, CallEnded):
            end = event.duration or event.t
    fired += engine.finish(end if end is not None else clock)
    return [e for e in fired if isinstance(e, RuleMatched)]


async def run_rules_test(files: list[str], rules_path: Path, settings: Settings, out: TextIO, *,
                         as_json: bool = False) -> int:
    """Print each file's matches; 0 when every file was read, 2 when the rules file or a call was bad."""
    try:
        rules = load_rules(rules_path)
    except AssistFileError as exc:
        out.write(f"error: {exc}\n")
        return 2
    paths = expand_inputs(files)
    replay_settings = settings.model_copy(update={"rules": RulesSettings(
        file=rules_path, settle_s=settings.rules.settle_s, webhooks=False)})
    events = await events_of(paths, replay_settings)
    status = 0
    for path in paths:
        got = events[path]
        if isinstance(got, str):
            out.write(f"error: {got}\n")
            status = 2
            continue
        if is_event_log(path):
            matches = evaluate_events(rules, got, settle_s=settings.rules.settle_s)
        else:  # replayed with this rules file in place: what it fired
            matches = [e for e in got if isinstance(e, RuleMatched)]
        _print(path, matches, out, as_json)
    return status


def _print(path: Path, matches: list[RuleMatched], out: TextIO, as_json: bool) -> None:
    matches = sorted(matches, key=lambda e: (e.t, e.rule))
    if as_json:
        for m in matches:
            data: dict[str, Any] = {"file": str(path), **m.to_dict()}
            out.write(json.dumps(data, ensure_ascii=False) + "\n")
        return
    out.write(f"== {path}\n")
    for m in matches:
        tags = f" [{', '.join(m.categories)}]" if m.categories else ""
        alert = f" alert {', '.join(m.notify) or 'nobody'}: {m.message}" if m.message else ""
        out.write(f"  {m.t:7.2f} s  {m.rule}{tags}{alert}\n")
        for why in m.because:
            out.write(f"             {why}\n")
    cats = sorted({c for m in matches for c in m.categories})
    out.write(f"  categories: {', '.join(cats) or '-'}; {len(matches)} rule(s) fired\n")
