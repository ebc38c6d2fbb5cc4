"""One caller's way through a queue: wait with music and announcements, ring agents, connect.

The policy lives in the shared ``AcdStore`` (who is next, who is free); this module does the
waiting and the ringing for one call on its worker. Ringing is ``place_call`` to the agent
(through the front's registrar, or their static contact) with the ring timeout as the answer
timeout; an agent who does not answer (or declines) is set not ready and the next one rings.
Every step is an event (``QueueUpdate``, ``AgentStateChanged``) the call's pipeline carries to
the console, MQTT and the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from speech.events import AgentStateChanged, Event, QueueAction, QueueUpdate
from speech.frames import Party
from telephony.acd.store import AcdStore, Claim, StateChange
from telephony.items import CallFailed, EndpointFull
from telephony.leg import CallLeg
from telephony.settings import AcdSettings

log = logging.getLogger(__name__)

Dial = Callable[[str, float, Callable[[CallLeg], None]], Coroutine[Any, Any, CallLeg]]
"""Place a call to a URI with an answer timeout; the callback gets the leg while it rings."""
Announce = Callable[[int, float], Coroutine[Any, Any, None]]
"""Tell the caller their position and expected wait (seconds)."""
Music = Callable[[], Coroutine[Any, Any, None]]
"""Play hold music to the caller until cancelled."""


@dataclass(frozen=True, slots=True)
class QueueOptions:
    queue: str
    max_wait_s: float = 0.0
    """0: wait until an agent answers or the caller hangs up."""
    overflow: str | None = None
    callback: bool = False


@dataclass(frozen=True, slots=True)
class Connected:
    """An agent answered: bridge ``leg`` to the caller."""

    leg: CallLeg
    agent_id: str
    queue: str
    wait_s: float
    ring_s: float


@dataclass(frozen=True, slots=True)
class LeftQueue:
    """The call left the queue without an agent: ``abandoned``, ``callback`` or ``no_agent``."""

    outcome: str
    queue: str
    wait_s: float


class QueueCall:
    """The ACD side of one call on one worker."""

    def __init__(
        self,
        *,
        call_id: str,
        caller: CallLeg,
        store: AcdStore,
        settings: AcdSettings,
        dial: Dial,
        worker: str,
        emit: Callable[[Event], None],
        now: Callable[[], float],
        music: Music | None = None,
        announce: Announce | None = None,
        front: str | None = None,
        static_agents: frozenset[str] = frozenset(),
    ) -> None:
        self.call_id = call_id
        self.caller = caller
        self.store = store
        self.settings = settings
        self._dial = dial
        self.worker = worker
        self._emit = emit
        self._now = now
        self._music = music
        self._announce = announce
        self.front = front
        """``host:port`` of the SIP front whose registrar knows the agents' phones; None: ring
        the contact in the store (static contacts)."""
        self.static_agents = static_agents
        """Agents rung at their configured contact, not through the registrar."""
        self._queue = ""

    # ---- the queue ---------------------------------------------------------------------------
    async def wait_for_agent(self, options: QueueOptions, *, enqueued_at: float | None = None) -> Connected | LeftQueue:
        """Wait in ``options.queue`` until an agent answers, the caller hangs up or the maximum
        wait moves the call on (overflow keeps the original time in line)."""
        queue = self._queue = options.queue
        started = time.time() if enqueued_at is None else enqueued_at
        position = await asyncio.to_thread(self.store.enqueue, self.call_id, queue, self.worker,
                                           enqueued_at=started)
        expected = await asyncio.to_thread(self.store.expected_wait_s, queue, position,
                                           self.settings.default_handle_s)
        self._queue_event(queue, QueueAction.ENTERED, position=position, wait_s=time.time() - started,
                          expected_wait_s=expected)
        max_wait = options.max_wait_s or self.settings.max_wait_s
        music = asyncio.create_task(self._hold(position, expected)) if self._music else None
        try:
            while True:
                if self.caller.ended is not None:
                    wait = await asyncio.to_thread(self.store.leave, self.call_id, "abandoned")
                    self._queue_event(queue, QueueAction.ABANDONED, wait_s=wait)
                    return LeftQueue("abandoned", queue, wait)
                claims = await asyncio.to_thread(
                    self.store.claim, self.call_id, queue,
                    all_ready=self.settings.strategy == "ring_all")
                if claims:
                    connected = await self._ring(claims, queue, started)
                    if connected is not None:
                        return connected
                    await asyncio.to_thread(self.store.requeue, self.call_id)
                    continue
                if max_wait and time.time() - started >= max_wait:
                    return await self._max_wait(options, started)
                await self._sleep(self.settings.poll_s)
        finally:
            if music is not None:
                await cancel_task(music)
                self.caller.stop_playback()

    async def took_transfer(self, agent_id: str) -> None:
        """A transfer target this endpoint rang on an agent's REFER answered: if they are an
        agent of the directory and free, they are now on this call."""
        claim = await asyncio.to_thread(self.store.claim_agent, self.call_id, agent_id)
        if claim is not None:
            change = await asyncio.to_thread(self.store.answered, agent_id, self.call_id)
            if change is not None:
                self._agent_event(change)

    # ---- ringing -----------------------------------------------------------------------------
    async def _ring(self, claims: list[Claim], queue: str, started: float) -> Connected | None:
        for claim in claims:
            self._agent_event(claim.change)
            self._queue_event(queue, QueueAction.RINGING, agent_id=claim.agent_id, wait_s=time.time() - started)
        ring_start = time.time()
        ringing: dict[str, CallLeg] = {}

        def placed(agent_id: str) -> Callable[[CallLeg], None]:
            return lambda leg: ringing.__setitem__(agent_id, leg)

        tasks: dict[asyncio.Task[Any], Claim] = {
            asyncio.create_task(self._dial(self._uri(c), self.settings.ring_timeout_s, placed(c.agent_id))): c
            for c in claims}
        caller_gone: asyncio.Task[Any] = asyncio.create_task(self.caller.wait_ended())
        winner: tuple[Claim, CallLeg] | None = None
        failed: list[tuple[Claim, int]] = []
        pending: set[asyncio.Task[Any]] = set(tasks)
        try:
            while pending and winner is None:
                done, pending = await asyncio.wait(pending | {caller_gone}, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(caller_gone)
                if caller_gone in done:
                    break
                for task in done:
                    claim = tasks[task]
                    exc = task.exception()
                    if exc is None and winner is None:
                        winner = (claim, task.result())
                    elif exc is None:
                        await task.result().hangup()  # a second answer under ring-all
                        failed.append((claim, 0))
                    elif isinstance(exc, EndpointFull):
                        failed.append((claim, -1))  # our slots, not the agent's doing
                    else:
                        failed.append((claim, exc.status if isinstance(exc, CallFailed) else 0))
        finally:
            caller_gone.cancel()
            for task in pending:
                claim = tasks[task]
                leg = ringing.get(claim.agent_id)
                if leg is not None and leg.ended is None:
                    with contextlib.suppress(Exception):
                        await leg.hangup()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                failed.append((claim, -1))  # cancelled: not the agent's fault
        for claim, status in failed:
            no_answer = status not in (-1, 0)
            change = await asyncio.to_thread(self.store.unring, claim.agent_id, self.call_id, no_answer=no_answer)
            if change is not None:
                self._agent_event(change)
            if no_answer:
                self._queue_event(queue, QueueAction.NO_ANSWER, agent_id=claim.agent_id,
                                  wait_s=time.time() - started)
        if winner is None:
            return None
        claim, leg = winner
        if self.caller.ended is not None:
            await leg.hangup()
            change = await asyncio.to_thread(self.store.call_ended, claim.agent_id, self.call_id, 0.0)
            if change is not None:
                self._agent_event(change)
            return None
        change = await asyncio.to_thread(self.store.answered, claim.agent_id, self.call_id)
        if change is not None:
            self._agent_event(change)
        wait = await asyncio.to_thread(self.store.leave, self.call_id, "connected", claim.agent_id) if queue else 0.0
        ring_s = time.time() - ring_start
        self._queue_event(queue, QueueAction.CONNECTED, agent_id=claim.agent_id, wait_s=wait)
        return Connected(leg=leg, agent_id=claim.agent_id, queue=queue, wait_s=wait, ring_s=ring_s)

    def _uri(self, claim: Claim) -> str:
        if self.front and claim.agent_id not in self.static_agents:
            return f"sip:{claim.agent_id}@{self.front}"
        return claim.contact

    async def finished(self, agent_id: str) -> None:
        """The agent's part of the call is over: wrap-up."""
        change = await asyncio.to_thread(self.store.call_ended, agent_id, self.call_id, self.settings.wrap_up_s)
        if change is not None:
            self._agent_event(change)

    # ---- waiting -----------------------------------------------------------------------------
    async def _max_wait(self, options: QueueOptions, started: float) -> Connected | LeftQueue:
        queue = options.queue
        if options.overflow:
            await asyncio.to_thread(self.store.leave, self.call_id, "overflow")
            self._queue_event(queue, QueueAction.OVERFLOW, target=options.overflow, wait_s=time.time() - started)
            return await self.wait_for_agent(QueueOptions(options.overflow), enqueued_at=started)
        outcome = "callback" if options.callback else "no_agent"
        wait = await asyncio.to_thread(self.store.leave, self.call_id, outcome)
        if options.callback:
            await asyncio.to_thread(self.store.add_callback, self.call_id, queue, self.caller.remote_uri)
            self._queue_event(queue, QueueAction.CALLBACK, wait_s=wait)
        return LeftQueue(outcome, queue, wait)

    async def _hold(self, position: int, expected: float) -> None:
        """Music, interrupted by the position and expected wait after ``announce_first_s`` and
        then every ``announce_every_s``."""
        assert self._music is not None
        pause = self.settings.announce_first_s
        while self.caller.ended is None:
            music = asyncio.create_task(self.loop_music())
            try:
                await asyncio.wait_for(asyncio.shield(music), pause)
            except TimeoutError:
                pass
            finally:
                await cancel_task(music)
                self.caller.stop_playback()
            pause = self.settings.announce_every_s
            position = await asyncio.to_thread(self.store.position, self.call_id)
            if position and self.caller.ended is None:
                expected = await asyncio.to_thread(self.store.expected_wait_s, self._queue, position,
                                                   self.settings.default_handle_s)
                self._queue_event(self._queue, QueueAction.POSITION, position=position,
                                  expected_wait_s=expected)
                if self._announce is not None:
                    await self._announce(position, expected)

    async def loop_music(self) -> None:
        """Hold music to the caller until cancelled or the call ends (nothing without music)."""
        if self._music is None:
            return
        while self.caller.ended is None:
            await self._music()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.caller.wait_ended(), seconds)

    # ---- events ------------------------------------------------------------------------------
    def _queue_event(self, queue: str, action: QueueAction, **kw: object) -> None:
        self._emit(QueueUpdate(call_id=self.call_id, t=self._now(), queue=queue, action=action, **kw))  # type: ignore[arg-type]

    def _agent_event(self, change: StateChange) -> None:
        self._emit(AgentStateChanged(call_id=self.call_id, t=self._now(), party=Party.AGENT,
                                     agent_id=change.agent_id, state=change.state,
                                     previous=change.previous, reason=change.reason))


async def cancel_task(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has stopped, whatever it raised."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
