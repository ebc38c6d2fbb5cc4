"""Supervisors on a worker's live calls: listen, whisper, barge, switched without re-dialing.

The console (in ``serve``) cannot reach a worker's pjsua bridge, and workers may run on other
hosts: requests travel through the shared ACD store (``acd_supervision``). A worker's
``SupervisionDesk`` polls it, only while it holds supervisable calls, for requests about those
calls; it dials the supervisor's registered phone through the front (as ``QueueCall`` rings
agents), links it by mode (``telephony.supervision``), and reports every change, and every
failure with its reason, as a ``SupervisionChanged`` on the call and as the request's outcome.

The supervisor's own audio is never analyzed or recorded: their leg's frames are dropped, so
talk ratio, talk-over and transcripts stay the caller's and the agent's. Keys 1, 2, 3 on their
phone switch to listen, whisper, barge.

What a call must offer to be supervised is ``SupervisedCall``; ``BridgedCall`` is the one for
the worker's own bridged calls, ``ListenOnlyCall`` the one for a SIPREC recording session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from speech.events import DtmfDigit, Event, SupervisionChanged, SupervisorMode
from telephony.acd.store import AcdStore, SupervisionRequest
from telephony.items import CallFailed, EndpointFull, LegEnded
from telephony.leg import CallLeg
from telephony.supervision import DTMF_MODES, LISTEN_ONLY_MODES, Role, link_changes, mode_links

log = logging.getLogger(__name__)

POLL_S = 0.25
"""How often a worker holding supervisable calls looks for requests."""
NOT_REGISTERED_STATUS = (404, 480)
"""What the front answers for a user with no registered phone."""


class SupervisedCall(Protocol):
    """A live call a supervisor may join. The hook for other kinds of calls: implement this and
    ``desk.attach(call)`` while it is live, ``await desk.detach(call.call_id)`` when it ends."""

    @property
    def call_id(self) -> str: ...

    @property
    def agent_id(self) -> str:
        """The agent on the call now ("" for none)."""
        ...

    @property
    def listen_only(self) -> bool:
        """True when there is nobody to whisper to (a recording of someone else's call)."""
        ...

    async def link(self, supervisor: CallLeg, old: SupervisorMode, new: SupervisorMode) -> None:
        """Change the supervisor leg's audio links from mode ``old`` to ``new``."""
        ...

    def emit(self, event: Event) -> None:
        """Push an event into the call's pipeline (feed, console, record)."""
        ...

    def now(self) -> float:
        """The call's clock (the pipeline's time)."""
        ...


class Connector(Protocol):
    async def connect(self, src: CallLeg, dst: CallLeg, on: bool = True) -> None: ...


class Dialer(Protocol):
    @property
    def free_slots(self) -> int: ...

    async def place_call(self, uri: str, *, answer_timeout_s: float = 30.0, record: bool = True,
                         on_placed: Callable[[CallLeg], None] | None = None) -> CallLeg: ...


class BridgedCall:
    """A caller bridged to an agent on this worker's conference bridge."""

    def __init__(self, *, caller: CallLeg, endpoint: Connector, emit: Callable[[Event], None],
                 now: Callable[[], float]) -> None:
        self.caller = caller
        self.endpoint = endpoint
        self._emit = emit
        self._now = now
        self.agent: CallLeg | None = None
        self._agent_id = ""
        self._modes: dict[CallLeg, SupervisorMode] = {}

    @property
    def call_id(self) -> str:
        return self.caller.call_id

    @property
    def agent_id(self) -> str:
        return self._agent_id

    @property
    def listen_only(self) -> bool:
        return False

    def emit(self, event: Event) -> None:
        self._emit(event)

    def now(self) -> float:
        return self._now()

    async def link(self, supervisor: CallLeg, old: SupervisorMode, new: SupervisorMode) -> None:
        off, on = link_changes(old, new)
        for src, dst in off:
            await self._connect(src, dst, supervisor, False)
        for src, dst in on:
            await self._connect(src, dst, supervisor, True)
        if new is SupervisorMode.LEFT:
            self._modes.pop(supervisor, None)
        else:
            self._modes[supervisor] = new

    async def set_agent(self, agent: CallLeg | None, agent_id: str) -> None:
        """The agent changed (answered, transferred, gone): supervisors follow, same mode."""
        if agent is self.agent:
            self._agent_id = agent_id
            return
        for sup, mode in list(self._modes.items()):
            for src, dst in _agent_links(mode):
                await self._connect(src, dst, sup, False)
        self.agent, self._agent_id = agent, agent_id
        for sup, mode in list(self._modes.items()):
            for src, dst in _agent_links(mode):
                await self._connect(src, dst, sup, True)

    async def _connect(self, src: Role, dst: Role, supervisor: CallLeg, on: bool) -> None:
        legs = {Role.CALLER: self.caller, Role.AGENT: self.agent, Role.SUPERVISOR: supervisor}
        a, b = legs[src], legs[dst]
        if a is None or b is None:
            return
        if on and (a.ended is not None or b.ended is not None):
            return
        try:
            await self.endpoint.connect(a, b, on)
        except Exception:  # a leg ended meanwhile: its links went with it
            log.debug("supervision link failed", exc_info=True)


class ListenOnlyCall:
    """A call a supervisor may only hear: a SIPREC recording session (the PBX bridges the
    parties, we only receive their forked streams). ``SipEndpoint.connect`` sends every stream
    of ``leg`` to the supervisor; whisper and barge are refused (``listen_only``).

    For the SIPREC session: ``desk.attach(ListenOnlyCall(leg=..., endpoint=..., emit=
    pipeline.push_event, now=lambda: pipeline.now, agent_id=...))`` once the session runs,
    ``set_agent`` on a metadata update, ``await desk.detach(leg.call_id)`` when it ends."""

    listen_only = True

    def __init__(self, *, leg: CallLeg, endpoint: Connector, emit: Callable[[Event], None],
                 now: Callable[[], float], agent_id: str = "") -> None:
        self.leg = leg
        self.endpoint = endpoint
        self._emit = emit
        self._now = now
        self._agent_id = agent_id

    @property
    def call_id(self) -> str:
        return self.leg.call_id

    @property
    def agent_id(self) -> str:
        return self._agent_id

    def set_agent(self, agent_id: str) -> None:
        self._agent_id = agent_id

    def emit(self, event: Event) -> None:
        self._emit(event)

    def now(self) -> float:
        return self._now()

    async def link(self, supervisor: CallLeg, old: SupervisorMode, new: SupervisorMode) -> None:
        hears, heard = old is not SupervisorMode.LEFT, new is not SupervisorMode.LEFT
        if hears != heard and (not heard or (self.leg.ended is None and supervisor.ended is None)):
            with contextlib.suppress(Exception):  # a leg that ended took its links with it
                await self.endpoint.connect(self.leg, supervisor, heard)


def _agent_links(mode: SupervisorMode) -> list[tuple[Role, Role]]:
    return [link for link in mode_links(mode) if Role.AGENT in link]


@dataclass
class _Supervisor:
    leg: CallLeg
    mode: SupervisorMode
    watcher: asyncio.Task[None] | None = None


@dataclass
class _Call:
    target: SupervisedCall
    supervisors: dict[str, _Supervisor] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ended: bool = False


@dataclass(frozen=True)
class Outcome:
    ok: bool
    reason: str = ""


class SupervisionDesk:
    """One worker's supervision: requests from the store, supervisor legs, links, events."""

    def __init__(self, *, store: AcdStore, endpoint: Dialer, worker: str, front: str | None,
                 ring_timeout_s: float, static_contacts: dict[str, str] | None = None,
                 poll_s: float = POLL_S) -> None:
        self.store = store
        self.endpoint = endpoint
        self.worker = worker
        self.front = front
        """``host:port`` of the front whose registrar knows the supervisors' phones (None:
        ring the contact the store has)."""
        self.ring_timeout_s = ring_timeout_s
        self.static_contacts = static_contacts or {}
        self.poll_s = poll_s
        self._calls: dict[str, _Call] = {}
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- calls -------------------------------------------------------------------------------
    def attach(self, target: SupervisedCall) -> None:
        """``target`` may be supervised from now on (its requests are polled for)."""
        if target.call_id not in self._calls:
            self._calls[target.call_id] = _Call(target)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())

    async def detach(self, call_id: str) -> None:
        """The call is over: its supervisors are hung up (``left``, ``call_ended``)."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        async with call.lock:
            call.ended = True
            for sup_id in list(call.supervisors):
                await self._drop(call, sup_id, "call_ended", hang_up=True)

    @property
    def calls(self) -> list[str]:
        return list(self._calls)

    async def close(self) -> None:
        for call_id in list(self._calls):
            await self.detach(call_id)
        for task in [self._poller, *self._tasks]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # ---- requests ----------------------------------------------------------------------------
    async def _poll(self) -> None:
        while self._calls:
            try:
                requests = await asyncio.to_thread(self.store.take_supervision, list(self._calls), self.worker)
            except Exception:  # the database is briefly unavailable: try again
                log.warning("supervision poll failed", exc_info=True)
                requests = []
            for req in requests:
                task = asyncio.create_task(self._handle(req))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(self.poll_s)

    async def _handle(self, req: SupervisionRequest) -> None:
        call = self._calls.get(req.call_id)
        try:
            mode = SupervisorMode(req.mode)
        except ValueError:
            outcome = Outcome(False, "bad_mode")
        else:
            outcome = Outcome(False, "call_ended") if call is None else await self.apply(
                call.target.call_id, req.supervisor_id, mode, "console")
        await asyncio.to_thread(self.store.finish_supervision, req.id, ok=outcome.ok, reason=outcome.reason)

    async def apply(self, call_id: str, supervisor_id: str, mode: SupervisorMode, origin: str) -> Outcome:
        """Put ``supervisor_id`` on the call in ``mode`` (dialing them if they are not on it)."""
        call = self._calls.get(call_id)
        if call is None:
            return Outcome(False, "call_ended")
        async with call.lock:
            if call.ended:
                return Outcome(False, "call_ended")
            return await self._apply(call, supervisor_id, mode, origin)

    async def _apply(self, call: _Call, sup_id: str, mode: SupervisorMode, origin: str) -> Outcome:
        target = call.target
        sup = call.supervisors.get(sup_id)
        current = sup.mode if sup is not None else SupervisorMode.LEFT
        if mode is current:
            return Outcome(True, "unchanged")
        if target.listen_only and mode not in LISTEN_ONLY_MODES:
            return self._refused(call, sup_id, current, mode, "listen_only")
        if mode is SupervisorMode.LEFT:
            await self._drop(call, sup_id, origin, hang_up=True)
            return Outcome(True)
        if sup is None:
            leg_or_reason = await self._dial(sup_id)
            if isinstance(leg_or_reason, str):
                return self._refused(call, sup_id, current, mode, leg_or_reason)
            sup = _Supervisor(leg_or_reason, SupervisorMode.LEFT)
            call.supervisors[sup_id] = sup
            sup.watcher = asyncio.create_task(self._watch(call, sup_id, sup))
        await target.link(sup.leg, current, mode)
        sup.mode = mode
        self._event(call, sup_id, mode, current, origin)
        return Outcome(True)

    async def _dial(self, sup_id: str) -> CallLeg | str:
        """The supervisor's phone, answered; or why not."""
        row = await asyncio.to_thread(self.store.agent, sup_id)
        static = self.static_contacts.get(sup_id)
        if static is None and (row is None or not row.registered):
            return "not_registered"
        if self.endpoint.free_slots < 1:
            return "no_slot"
        uri = static or (f"sip:{sup_id}@{self.front}" if self.front else (row.contact if row else ""))
        try:
            return await self.endpoint.place_call(uri, answer_timeout_s=self.ring_timeout_s, record=False)
        except EndpointFull:
            return "no_slot"
        except CallFailed as exc:
            return "not_registered" if exc.status in NOT_REGISTERED_STATUS else "no_answer"

    async def _watch(self, call: _Call, sup_id: str, sup: _Supervisor) -> None:
        """The supervisor's leg: keypad switches, their hang-up; their audio is dropped."""
        leg = sup.leg
        while True:
            item = await leg.inbox.get()
            if isinstance(item, DtmfDigit) and item.digit in DTMF_MODES:
                mode = DTMF_MODES[item.digit]
                outcome = await self.apply(call.target.call_id, sup_id, mode, "dtmf")
                if outcome.ok and outcome.reason != "unchanged":
                    await asyncio.to_thread(self.store.note_supervision, call.target.call_id, sup_id,
                                            mode.value, "dtmf", self.worker)
            elif isinstance(item, LegEnded):
                async with call.lock:
                    if call.supervisors.get(sup_id) is sup:
                        await self._drop(call, sup_id, "hangup", hang_up=False)
                        await asyncio.to_thread(self.store.note_supervision, call.target.call_id, sup_id,
                                                SupervisorMode.LEFT.value, "hangup", self.worker)
                return

    async def _drop(self, call: _Call, sup_id: str, origin: str, *, hang_up: bool) -> None:
        sup = call.supervisors.pop(sup_id, None)
        if sup is None:
            return
        with contextlib.suppress(Exception):
            await call.target.link(sup.leg, sup.mode, SupervisorMode.LEFT)
        if hang_up and sup.leg.ended is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sup.leg.hangup(), 5.0)
        if sup.watcher is not None and sup.watcher is not asyncio.current_task():
            sup.watcher.cancel()
        self._event(call, sup_id, SupervisorMode.LEFT, sup.mode, origin)
        if origin == "call_ended":
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.store.note_supervision, call.target.call_id, sup_id,
                                        SupervisorMode.LEFT.value, origin, self.worker)

    def _refused(self, call: _Call, sup_id: str, current: SupervisorMode, asked: SupervisorMode,
                 reason: str) -> Outcome:
        self._event(call, sup_id, current, current, reason, requested=asked)
        return Outcome(False, reason)

    def _event(self, call: _Call, sup_id: str, mode: SupervisorMode, previous: SupervisorMode, reason: str,
               requested: SupervisorMode | None = None) -> None:
        target = call.target
        try:
            target.emit(SupervisionChanged(call_id=target.call_id, t=target.now(), supervisor_id=sup_id,
                                           mode=mode, previous=previous, agent_id=target.agent_id,
                                           reason=reason, requested=requested))
        except Exception:  # the call's pipeline is gone; the store still has the outcome
            log.debug("supervision event dropped", exc_info=True)
