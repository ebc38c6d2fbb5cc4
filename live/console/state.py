"""What the console knows about live calls, and the fan-out of their events to browsers.

The MQTT subscriber feeds :meth:`LiveCalls.ingest`; each browser stream holds a bounded queue.
A browser too slow to keep up is cut off (its queue overflows) rather than slowing the others:
EventSource reconnects and gets a fresh replay, so nothing is silently lost.

Agents: a call's ``party.joined`` with an ``agent_id`` makes it that agent's current call (until
they join another one: a call that ended stays theirs for its wrap-up and summary). An agent's
stream follows it: when the agent joins a new call, the stream gets a ``reset`` naming it and the
call's events so far, then its live events, without the browser asking.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

Frame = tuple[str, Any]
"""One server-sent event: its name (``event``, ``reset``, ``agent``...) and its data."""
Frames = list[Frame]

STREAM_QUEUE_MAX = 1000
"""Events buffered per browser stream before it is cut off."""
MAX_CALLS = 500
"""Calls remembered; the oldest ended ones are forgotten first."""
MAX_EVENTS_PER_CALL = 5000
MAX_AGENTS = 5000
HIDDEN_FROM_AGENTS = frozenset({"supervision"})
"""Event types an agent's own stream never gets: monitoring is silent (the agent hears a
supervisor who whispers or barges, and is not told of one who listens)."""
"""Agent states remembered (ids come from the broker, so they are bounded here too)."""


@dataclass
class LiveCall:
    call_id: str
    info: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False
    summary: dict[str, Any] | None = None
    agent_id: str = ""
    """The agent who joined last ("" before any did)."""

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
    """One browser's queue: batches of frames (a batch is sent as a whole), None to end."""

    def __init__(self, call_id: str | None, agent_id: str | None = None) -> None:
        self.call_id = call_id
        self.agent_id = agent_id
        self.queue: asyncio.Queue[list[Frame] | None] = asyncio.Queue(STREAM_QUEUE_MAX)
        self.overflowed = False


class LiveCalls:
    """Calls seen on the broker, their events in order, and the browser streams watching."""

    def __init__(self) -> None:
        self.calls: OrderedDict[str, LiveCall] = OrderedDict()
        self._streams: set[_Stream] = set()
        self.ingested = 0
        self.agent_calls: dict[str, str] = {}
        """Agent id → their current (or last) call id."""
        self.agent_states: dict[str, dict[str, Any]] = {}
        """Agent id → their last ``agent.state`` event (from ``{prefix}/agents/+/state``)."""

    def get(self, call_id: str) -> LiveCall | None:
        return self.calls.get(call_id)

    def call_of(self, agent_id: str) -> LiveCall | None:
        """The agent's current call, or the last one they were on."""
        call_id = self.agent_calls.get(agent_id)
        return self.calls.get(call_id) if call_id else None

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
        joined = str(event.get("agent_id") or "") if kind == "party.joined" else ""
        if joined:
            call.agent_id = joined
            self.agent_calls[joined] = call_id
        self.ingested += 1
        for stream in list(self._streams):
            if stream.agent_id is not None:
                if joined and stream.agent_id == joined and stream.call_id != call_id:
                    stream.call_id = call_id
                    self._put(stream, self.opening(call, agent=True))
                    continue
                if stream.call_id != call_id or kind in HIDDEN_FROM_AGENTS:
                    continue
            elif stream.call_id not in (None, call_id):
                continue
            elif stream.call_id is None and kind not in _LIST_TYPES:
                continue
            self._put(stream, [("event", event)])

    def ingest_agent_state(self, event: dict[str, Any]) -> None:
        """Record an agent's state (an ``agent.state`` event from ``{prefix}/agents/+/state``)
        and tell that agent's streams."""
        agent_id = str(event.get("agent_id") or "")
        if not agent_id or event.get("type") != "agent.state":
            return
        if self.agent_states.get(agent_id) == event:
            return
        self.agent_states.pop(agent_id, None)
        self.agent_states[agent_id] = event
        while len(self.agent_states) > MAX_AGENTS:
            del self.agent_states[next(iter(self.agent_states))]
        for stream in list(self._streams):
            if stream.agent_id == agent_id:
                self._put(stream, [("agent", event)])

    @staticmethod
    def opening(call: LiveCall | None, *, agent: bool = False) -> Frames:
        """What a stream starts with for ``call``: ``reset`` naming it, then its events so far
        (``reset`` with a null call id when there is none); ``agent``: the agent's own stream,
        without what is hidden from agents."""
        if call is None:
            return [("reset", {"call_id": None})]
        return [("reset", {"call_id": call.call_id})] + [
            ("event", e) for e in call.events if not (agent and e.get("type") in HIDDEN_FROM_AGENTS)]

    def _put(self, stream: _Stream, frames: Frames) -> None:
        try:
            stream.queue.put_nowait(frames)
        except asyncio.QueueFull:
            stream.overflowed = True
            self._streams.discard(stream)

    def open_stream(self, call_id: str | None) -> _Stream:
        """A queue of future events of ``call_id`` (or list-changing events of all calls)."""
        stream = _Stream(call_id)
        self._streams.add(stream)
        return stream

    def open_agent_stream(self, agent_id: str) -> tuple[_Stream, Frames]:
        """A queue that follows ``agent_id``'s current call, and what to send first (their
        current call so far). Taken together, with no await in between, so nothing falls in
        the gap."""
        call = self.call_of(agent_id)
        stream = _Stream(call.call_id if call is not None else None, agent_id)
        self._streams.add(stream)
        first = self.opening(call, agent=True)
        state = self.agent_states.get(agent_id)
        if state is not None:
            first.insert(0, ("agent", state))
        return stream, first

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
            for agent_id in [a for a, c in self.agent_calls.items() if c == victim]:
                del self.agent_calls[agent_id]


_LIST_TYPES = frozenset({"call.started", "call.ended", "tone.alert", "tone.update", "summary"})
"""Event types that change the active-call list page."""
