"""What the console knows about live calls, and the fan-out of their events to browsers.

The MQTT subscriber feeds :meth:`LiveCalls.ingest`; each browser stream holds a bounded queue.
A browser too slow to keep up is cut off (its queue overflows) rather than slowing the others:
EventSource reconnects and gets a fresh replay, so nothing is silently lost.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

STREAM_QUEUE_MAX = 1000
"""Events buffered per browser stream before it is cut off."""
MAX_CALLS = 500
"""Calls remembered; the oldest ended ones are forgotten first."""
MAX_EVENTS_PER_CALL = 5000


@dataclass
class LiveCall:
    call_id: str
    info: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False
    summary: dict[str, Any] | None = None

    def brief(self) -> dict[str, Any]:
        tone = next((e for e in reversed(self.events) if e["type"] == "tone.update"), None)
        alerts = sum(1 for e in self.events if e["type"] == "tone.alert")
        return {
            "call_id": self.call_id,
            "caller": self.info.get("caller", ""),
            "callee": self.info.get("callee", ""),
            "started_at": self.info.get("started_at", ""),
            "source": self.info.get("source", ""),
            "ended": self.ended,
            "tone": tone["label"] if tone else None,
            "alerts": alerts,
        }


class _Stream:
    def __init__(self, call_id: str | None) -> None:
        self.call_id = call_id
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(STREAM_QUEUE_MAX)
        self.overflowed = False


class LiveCalls:
    """Calls seen on the broker, their events in order, and the browser streams watching."""

    def __init__(self) -> None:
        self.calls: OrderedDict[str, LiveCall] = OrderedDict()
        self._streams: set[_Stream] = set()
        self.ingested = 0

    def get(self, call_id: str) -> LiveCall | None:
        return self.calls.get(call_id)

    def list(self) -> list[dict[str, Any]]:
        """Active calls first, then recently ended; newest first within each."""
        calls = list(reversed(self.calls.values()))
        return [c.brief() for c in calls if not c.ended] + [c.brief() for c in calls if c.ended]

    def ingest(self, event: dict[str, Any], *, retained_state: bool = False) -> None:
        """Record one event (a ``to_dict()``) and fan it out.

        ``retained_state``: a retained ``state`` message met on subscribing; it names a call
        but its events before now are unknown, so it is recorded without being replayed twice.
        """
        call_id = str(event.get("call_id", ""))
        if not call_id:
            return
        call = self.calls.get(call_id)
        if call is None:
            call = self.calls[call_id] = LiveCall(call_id)
            self._forget_old()
        elif retained_state:
            return
        if call.events and call.events[-1] == event:
            return  # at-least-once delivery: an adjacent duplicate
        kind = event.get("type")
        if kind == "call.started":
            call.info = {k: event.get(k) for k in ("caller", "callee", "started_at", "source")}
        elif kind == "call.ended":
            call.ended = True
        elif kind == "summary":
            call.summary = event.get("summary")
        if not retained_state:
            call.events.append(event)
            del call.events[:-MAX_EVENTS_PER_CALL]
        self.ingested += 1
        for stream in list(self._streams):
            if stream.call_id not in (None, call_id):
                continue
            if stream.call_id is None and kind not in _LIST_TYPES:
                continue
            try:
                stream.queue.put_nowait(event)
            except asyncio.QueueFull:
                stream.overflowed = True
                self._streams.discard(stream)

    def open_stream(self, call_id: str | None) -> _Stream:
        """A queue of future events of ``call_id`` (or list-changing events of all calls)."""
        stream = _Stream(call_id)
        self._streams.add(stream)
        return stream

    def close_stream(self, stream: _Stream) -> None:
        self._streams.discard(stream)

    def shutdown(self) -> None:
        """Tell every open stream to end (server shutdown)."""
        for stream in list(self._streams):
            try:
                stream.queue.put_nowait(None)
            except asyncio.QueueFull:
                pass
        self._streams.clear()

    def _forget_old(self) -> None:
        while len(self.calls) > MAX_CALLS:
            victim = next((k for k, c in self.calls.items() if c.ended), None)
            if victim is None:
                victim = next(iter(self.calls))
            del self.calls[victim]


_LIST_TYPES = frozenset({"call.started", "call.ended", "tone.alert", "tone.update", "summary"})
"""Event types that change the active-call list page."""
