"""What a worker has persisted of its live calls, so a call outlives the worker's death.

A worker appends every (live-redacted) event of a live call to ``active/worker<i>/<call>.jsonl``
as it happens, one JSON line each, and deletes the file once the call's record is written. If
the worker dies (``kill -9``, a pjlib assertion), the files of its unfinished calls are still
there: ``serve`` reads them with :func:`lost_calls` and stores each call with what it has,
ended with ``end_reason=worker_lost``. The OS keeps appended lines when a process is killed; only
a machine crash could lose the last ones (no fsync per event: events come many per second).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from speech.events import CallEnded, Event

log = logging.getLogger(__name__)

WORKER_LOST = "worker_lost"


def spool_dir(data_dir: Path, index: int) -> Path:
    return Path(data_dir) / "active" / f"worker{index}"


def _safe(call_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in call_id)[:100]


class CallSpool:
    """One worker's spool of live calls; used from the event loop only."""

    def __init__(self, data_dir: Path, index: int) -> None:
        self.dir = spool_dir(data_dir, index)
        self.index = index
        self._files: dict[str, IO[str]] = {}

    def open(self, call_id: str, **meta: Any) -> None:
        """Start a call's file with a ``meta`` line (worker, recording path)."""
        if call_id in self._files:
            return
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        # Owner-only whatever the umask: the spool holds a live call's events (personal data).
        fd = os.open(self.dir / f"{_safe(call_id)}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        fh = open(fd, "a", buffering=1)  # noqa: SIM115 - kept open for the call
        fh.write(json.dumps({"meta": {"call_id": call_id, "worker": self.index, **meta}}) + "\n")
        self._files[call_id] = fh

    def append(self, event: Event) -> None:
        """A pipeline sink: one line per event (line-buffered, so it reaches the OS at once)."""
        fh = self._files.get(event.call_id)
        if fh is None:
            return
        try:
            fh.write(json.dumps(event.to_dict()) + "\n")
        except (OSError, TypeError, ValueError):
            log.warning("could not spool an event of a live call", exc_info=True)

    def finish(self, call_id: str) -> None:
        """The call's record is written: its spool is no longer needed."""
        fh = self._files.pop(call_id, None)
        if fh is not None:
            fh.close()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{_safe(call_id)}.jsonl").unlink()

    def close(self) -> None:
        """Stop (files of calls that did not finish stay, for ``serve`` to recover)."""
        for fh in self._files.values():
            fh.close()
        self._files.clear()


@dataclass
class LostCall:
    """An unfinished call read back from a dead worker's spool."""

    call_id: str
    path: Path
    events: list[Event] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def ended_events(self) -> list[Event]:
        """The events, closed with ``CallEnded(reason=worker_lost)`` unless the call had ended."""
        if any(isinstance(e, CallEnded) for e in self.events):
            return list(self.events)
        last = max((e.t for e in self.events), default=0.0)
        return [*self.events, CallEnded(call_id=self.call_id, t=last, reason=WORKER_LOST, duration=last)]


def lost_calls(data_dir: Path, index: int) -> list[LostCall]:
    """Every call left in worker ``index``'s spool (a torn last line is skipped)."""
    out = []
    for path in sorted(spool_dir(data_dir, index).glob("*.jsonl")):
        lost = LostCall(call_id="", path=path)
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                try:
                    data = json.loads(line)
                    if "meta" in data:
                        lost.meta = data["meta"]
                        lost.call_id = str(data["meta"].get("call_id", ""))
                    else:
                        lost.events.append(Event.from_dict(data))
                except (ValueError, TypeError):
                    continue  # the line being written when the worker died
        if lost.call_id:
            out.append(lost)
    return out
