"""The ACD's shared state on MQTT: retained queue snapshots and agents' current states.

Calls publish their own queue steps and agent changes as they happen, but some of the ACD's state
changes with no call to tell: a wrap-up runs out, an agent sets themself ready in the console, a
queue's longest wait grows. :class:`AcdFeed` reads the shared store every ``interval_s`` and
publishes what changed since its last read: ``{prefix}/queues/{queue}/snapshot`` (retained) and an
``AgentStateChanged`` per agent whose state moved (on ``{prefix}/agents/{id}/state``, retained,
with no call id: the call's own stream already had it, if a call caused it). Its first read
publishes everything, so the retained topics hold the truth after a restart.

The store is reached through injected callables (the composition root binds them to
``telephony.acd.store.AcdStore``): ``live`` does not import ``telephony``. They block, so they run
in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from live.topics import Message, Topics, queue_snapshot_message
from speech.events import AgentStateChanged, AgentStatus, Event
from speech.frames import Party

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 1.0


class AgentLike(Protocol):
    """What the feed reads of an agent (``AcdStore.agents()`` rows fit)."""

    @property
    def agent_id(self) -> str: ...
    @property
    def state(self) -> AgentStatus: ...
    @property
    def reason(self) -> str: ...


class FeedSink(Protocol):
    """Where the feed publishes (``live.publisher.MqttPublisher`` fits)."""

    @property
    def topics(self) -> Topics: ...
    def publish(self, event: Event) -> None: ...
    def publish_messages(self, messages: list[Message]) -> None: ...


QueuesFn = Callable[[], Sequence[Mapping[str, Any]]]
"""Every queue's snapshot as a JSON-ready mapping with at least ``queue`` (blocking)."""
AgentsFn = Callable[[], Sequence[AgentLike]]
"""Every agent's current state (blocking)."""


class AcdFeed:
    """Polls the ACD store and publishes what changed. ``start()``/``stop()`` run it as a task;
    ``poll()`` is one round (tests drive it directly)."""

    def __init__(self, *, queues_fn: QueuesFn, agents_fn: AgentsFn, publisher: FeedSink,
                 interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.queues_fn = queues_fn
        self.agents_fn = agents_fn
        self.publisher = publisher
        self.interval_s = interval_s
        self._snapshots: dict[str, bytes] = {}
        self._agents: dict[str, tuple[AgentStatus, str]] = {}
        self._task: asyncio.Task[None] | None = None
        self.polls = 0
        self.failures = 0

    async def poll(self) -> int:
        """Read the store once and publish the changes; returns how many publications."""
        queues, agents = await asyncio.to_thread(self._read)
        self.polls += 1
        return self._publish_queues(queues) + self._publish_agents(agents)

    def _read(self) -> tuple[list[Mapping[str, Any]], list[AgentLike]]:
        return list(self.queues_fn()), list(self.agents_fn())

    def _publish_queues(self, queues: list[Mapping[str, Any]]) -> int:
        messages = []
        for snapshot in queues:
            data = _rounded(dict(snapshot))
            message = queue_snapshot_message(data, self.publisher.topics)
            name = str(data["queue"])
            if self._snapshots.get(name) != message.payload:
                self._snapshots[name] = message.payload
                messages.append(message)
        self.publisher.publish_messages(messages)
        return len(messages)

    def _publish_agents(self, agents: list[AgentLike]) -> int:
        sent = 0
        for agent in agents:
            now = (agent.state, agent.reason)
            before = self._agents.get(agent.agent_id)
            if before == now:
                continue
            self._agents[agent.agent_id] = now
            previous = before[0] if before is not None else agent.state
            self.publisher.publish(AgentStateChanged(
                party=Party.AGENT, agent_id=agent.agent_id, state=agent.state, previous=previous,
                reason=agent.reason))
            sent += 1
        return sent

    async def run(self) -> None:
        """Poll forever; a failing read is logged and retried at the next interval."""
        while True:
            try:
                await self.poll()
            except Exception as exc:  # the store may be locked or restarting: try again
                self.failures += 1
                log.warning("ACD feed could not read the store (%s); retrying", type(exc).__name__)
            await asyncio.sleep(self.interval_s)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="acd-feed")

    async def stop(self) -> None:
        """Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _rounded(data: dict[str, Any]) -> dict[str, Any]:
    """Waits to 0.1 s: the payload compares equal when nothing moved."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, float):
            out[key] = round(value, 1)
        elif isinstance(value, list):
            out[key] = [_rounded(v) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    return out
