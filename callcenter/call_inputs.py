"""What the QA tools read a call from: a recording, replayed through the live pipeline, or an
event log (``replay --json``, the MQTT ``events`` stream) taken as it is. ``qa score`` and
``rules test`` both start from each file's events; this is where they get them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path

from callcenter.replay import replay_file
from callcenter.settings import Settings
from callcenter.wiring import load_asr_engine
from speech.events import Event

EVENT_LOG_SUFFIXES = (".jsonl", ".json")


def is_event_log(path: Path) -> bool:
    return path.suffix.lower() in EVENT_LOG_SUFFIXES


def read_event_log(path: Path) -> list[Event]:
    """Events of one JSON-lines log, in file order; lines that are no known event are skipped."""
    events: list[Event] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not JSON: {exc.msg}") from None
        try:
            events.append(Event.from_dict(data))
        except (ValueError, TypeError):
            continue  # a verdict line, or an event type this version does not know
    return events


async def events_of(files: Sequence[Path], settings: Settings, *, jobs: int = 1) -> dict[Path, list[Event] | str]:
    """Each file's events, or the message saying why it has none. Recordings replay with
    ``settings`` (nothing stored) in this process on one recognizer, closed at the end, or on
    ``jobs`` worker processes (the ``replay --jobs`` pool) when there are several."""
    recordings = [p for p in files if not is_event_log(p)]
    out: dict[Path, list[Event] | str] = {}
    if len(recordings) > 1 and jobs > 1:
        out.update(await _replay_pooled(recordings, settings, jobs))
    elif recordings:
        engine = load_asr_engine(settings)
        try:
            for path in recordings:
                res = await replay_file(path, settings, engine)
                out[path] = res.error or res.events
        finally:
            if engine is not None:
                engine.close()
    for path in files:
        if path not in out:
            try:
                out[path] = read_event_log(path)
            except (OSError, ValueError) as exc:
                out[path] = str(exc)
    return out


async def _replay_pooled(paths: list[Path], settings: Settings, jobs: int) -> dict[Path, list[Event] | str]:
    from callcenter.replay_pool import ProcessBackend
    from callcenter.replay_worker import ReplayJob, WorkerOptions

    backend = ProcessBackend(WorkerOptions(settings, store=False, as_json=True, collect_events=True),
                             min(jobs, len(paths)))
    out: dict[Path, list[Event] | str] = {}
    async with contextlib.aclosing(backend.outcomes([ReplayJob(i, p) for i, p in enumerate(paths)])) as done:
        async for outcome in done:
            out[paths[outcome.index]] = outcome.result.error or outcome.published
    return out
