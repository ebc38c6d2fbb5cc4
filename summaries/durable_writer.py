"""Writes calls to the CRM store without losing any while the database is down.

Every call is first spooled to disk (one JSON file, written atomically: temp file, fsync,
rename), then written to the store; the file is removed only after the transaction commits.
When the database is unreachable or locked the file stays, and a background thread retries with
exponential backoff; ``flush()`` retries now. A crash at any point leaves either the spool file or
the committed call (or both: ``save_call`` is idempotent on the call id, so a replay is harmless).
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from speech.events import Event
from summaries.store import CrmStore
from summaries.summary import CallSummary

log = logging.getLogger(__name__)

SPOOL_SUFFIX = ".call.json"
BAD_SUFFIX = ".bad"


class DurableWriter:
    """Spool-then-write front of a ``CrmStore``; start/stop a retry thread around it."""

    def __init__(self, store: CrmStore, spool_dir: str | Path, *,
                 backoff_base_s: float = 0.5, backoff_max_s: float = 60.0) -> None:
        self.store = store
        self.spool_dir = Path(spool_dir)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Create the spool, start the retry thread and write anything left from last time."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._retry_loop, name="crm-durable-writer", daemon=True)
        self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Stop retrying (spooled calls stay on disk for next time); idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join()

    # -- writing ------------------------------------------------------------------------------

    def write(self, events: Iterable[Event], summary: CallSummary | None, *,
              originals: Mapping[int, dict[str, Any]] | None = None, recording: str | None = None) -> str:
        """Spool the call, then try the store; returns the call id whether or not it is stored yet.

        The call is redacted as the store redacts it before it touches the disk, so the spool
        never holds PII the store would not."""
        red = self.store.redact(events, summary, originals)
        evs, summary, originals = red.events, red.summary, red.originals
        call_id = (summary.call_id if summary else "") or next((e.call_id for e in evs if e.call_id), "")
        call_id = call_id or uuid.uuid4().hex
        if summary is not None and not summary.call_id:
            summary = dataclasses.replace(summary, call_id=call_id)
        path = self._spool(call_id, {
            "call_id": call_id,
            "events": [e.to_dict() for e in evs],
            "summary": summary.to_dict() if summary else None,
            "originals": {str(k): v for k, v in (originals or {}).items()},
            "recording": recording,
        })
        if not self._try_write(path):
            self._wake.set()
        return call_id

    def save_call(self, events: Iterable[Event], summary: CallSummary | None, *,
                  originals: Mapping[int, dict[str, Any]] | None = None, recording: str | None = None) -> str:
        """Same as ``write`` (the ``CrmStore.save_call`` signature, so the two are interchangeable)."""
        return self.write(events, summary, originals=originals, recording=recording)

    async def awrite(self, events: Iterable[Event], summary: CallSummary | None, *,
                     originals: Mapping[int, dict[str, Any]] | None = None, recording: str | None = None) -> str:
        """``write`` off the event loop."""
        return await asyncio.to_thread(self.write, list(events), summary, originals=originals, recording=recording)

    def flush(self) -> int:
        """Try every spooled call now; returns how many are still waiting for the database
        (not counting calls another process sharing the spool is writing at this moment)."""
        paths = self.spooled()
        for i, path in enumerate(paths):
            if not self._try_write(path):
                return sum(1 for p in paths[i:] if p.exists())
        return 0

    def spooled(self) -> list[Path]:
        """Spool files not yet in the store, oldest first."""
        if not self.spool_dir.exists():
            return []
        return sorted(self.spool_dir.glob(f"*{SPOOL_SUFFIX}"), key=lambda p: (p.stat().st_mtime_ns, p.name))

    # -- internals ----------------------------------------------------------------------------

    def _spool(self, call_id: str, payload: dict[str, Any]) -> Path:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in call_id)[:100]
        path = self.spool_dir / f"{safe}{SPOOL_SUFFIX}"
        tmp = self.spool_dir / f".{safe}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self.spool_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return path

    def _try_write(self, path: Path) -> bool:
        """True when the call is in the store (or another process is writing it right now).

        Processes sharing one spool (a service's workers, a replay's) each write their own calls
        and retry any they find: an exclusive ``flock`` on the spool file makes one of them the
        writer of each call, so two never save one call at once (both would insert it)."""
        with self._lock:
            try:
                fh = open(path, "rb")  # noqa: SIM115 - held across the write, closed below
            except FileNotFoundError:
                return True  # written by a concurrent flush
            with fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True  # another process is writing it now
                if os.fstat(fh.fileno()).st_nlink == 0:
                    return True  # written and removed before we had it
                return self._write_locked(path, fh.read())

    def _write_locked(self, path: Path, data: bytes) -> bool:
        """Store one spooled call read under its lock; an unreadable file is set aside."""
        try:
            payload = json.loads(data.decode("utf-8"))
            events = [Event.from_dict(e) for e in payload["events"]]
            summary = CallSummary.from_dict(payload["summary"]) if payload.get("summary") else None
            originals = {int(k): v for k, v in (payload.get("originals") or {}).items()}
            recording = payload.get("recording")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Never retried forever, never lost: set aside for a person to look at.
            bad = path.with_name(path.name + BAD_SUFFIX)
            os.replace(path, bad)
            log.warning("unreadable spool file set aside as %s (%s)", bad.name, type(exc).__name__)
            return True
        try:
            if not self.store.started:
                self.store.start()
            self.store.save_call(events, summary, originals=originals,
                                 recording=recording if isinstance(recording, str) else None)
        except Exception as exc:  # database down, locked, refused: keep the spool file
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            log.warning("CRM store unavailable (%s); call kept in spool", type(exc).__name__)
            return False
        path.unlink(missing_ok=True)
        self.last_error = None
        return True

    def _retry_loop(self) -> None:
        delay = self.backoff_base_s
        waiting = False
        while not self._stopping.is_set():
            self._wake.wait(timeout=delay if waiting else None)
            self._wake.clear()
            if self._stopping.is_set():
                return
            remaining = self.flush()
            if remaining:
                delay = delay * 2 if waiting else self.backoff_base_s
                delay = min(delay, self.backoff_max_s)
                waiting = True
            else:
                delay, waiting = self.backoff_base_s, False
