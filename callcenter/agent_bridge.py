"""After the IVR: the caller waits in a queue, an agent answers, the worker bridges them.

The worker stays in the media path (B2BUA): the agent is a second outgoing leg on the same
endpoint, the two calls' audio is connected on pjsua's conference bridge, and each leg's port
still delivers its own party to the call's pipeline, so it hears caller and agent as two
parties on one call clock. Agent hold (re-INVITE sendonly) unbridges and plays music to the
caller; a REFER from the agent's phone rings the target from here and bridges it in; either
side hanging up ends the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from callcenter.supervision import BridgedCall, SupervisionDesk
from speech.events import (
    DtmfDigit,
    HoldEnded,
    HoldStarted,
    PartyJoined,
    PartyLeft,
    QueueAction,
    QueueUpdate,
)
from speech.frames import AudioFrame, Party
from speech.pipeline import CallPipeline
from telephony.acd.queue_call import Connected, LeftQueue, QueueCall, QueueOptions, cancel_task
from telephony.items import HoldChanged, LegEnded, TransferRequested
from telephony.leg import CallLeg, uri_user

log = logging.getLogger(__name__)

TRANSFER_ANSWER_S = 30.0
"""How long a transfer target may ring before the caller goes back to the queue."""


class Bridger(Protocol):
    """The endpoint's bridge operations (``telephony.endpoint.SipEndpoint``)."""

    async def bridge(self, a: CallLeg, b: CallLeg) -> None: ...
    async def unbridge(self, a: CallLeg, b: CallLeg) -> None: ...
    async def connect(self, src: CallLeg, dst: CallLeg, on: bool = True) -> None: ...


@dataclasses.dataclass
class AgentOutcome:
    """What the queue and the agents did with the call (the record's ``agent`` part)."""

    queue: str = ""
    outcome: str = ""
    """``connected``, ``abandoned``, ``callback``, ``no_agent``."""
    agents: list[str] = dataclasses.field(default_factory=list)
    wait_s: float = 0.0
    transfers: int = 0
    holds: int = 0


class AgentBridge:
    """Queue → agent → bridged conversation for one caller leg."""

    def __init__(self, *, caller: CallLeg, queue_call: QueueCall, endpoint: Bridger, pipeline: CallPipeline,
                 queues: frozenset[str] = frozenset(), supervision: SupervisionDesk | None = None) -> None:
        self.caller = caller
        self.acd = queue_call
        self.endpoint = endpoint
        self.pipeline = pipeline
        self._queues = queues
        self.outcome = AgentOutcome()
        self._desk = supervision
        self.supervised = BridgedCall(caller=caller, endpoint=endpoint, emit=self._push,
                                      now=lambda: self.pipeline.now)
        """What supervisors join (``callcenter.supervision``) while an agent is on the call."""

    async def run(self, options: QueueOptions) -> AgentOutcome:
        """Until the caller's call is over (or it left the queue without an agent)."""
        self.outcome.queue = options.queue
        try:
            result: Connected | LeftQueue | None = await self.acd.wait_for_agent(options)
            while isinstance(result, Connected):
                self.outcome.outcome = "connected"
                self.outcome.agents.append(result.agent_id)
                if len(self.outcome.agents) == 1:
                    self.outcome.wait_s = result.wait_s
                result = await self._talk(result)
        finally:
            if self._desk is not None:
                await self._desk.detach(self.caller.call_id)
        if isinstance(result, LeftQueue):
            if not self.outcome.agents:
                self.outcome.outcome = result.outcome
                self.outcome.wait_s = result.wait_s
            if result.outcome in ("callback", "no_agent") and self.caller.ended is None:
                await self.caller.hangup()
        return self.outcome

    async def _talk(self, conn: Connected) -> Connected | LeftQueue | None:
        """One agent on the call; returns the next agent (a transfer), or None when it ended."""
        agent, agent_id = conn.leg, conn.agent_id
        offset = self.caller.call_time - agent.call_time
        await self.endpoint.bridge(self.caller, agent)
        await self.supervised.set_agent(agent, agent_id)
        if self._desk is not None:
            self._desk.attach(self.supervised)
        self._push(PartyJoined(t=self.pipeline.now, party=Party.AGENT, agent_id=agent_id, queue=conn.queue,
                               wait_s=conn.wait_s, ring_s=conn.ring_s))
        caller_gone = asyncio.create_task(self.caller.wait_ended())
        hold_music: asyncio.Task[None] | None = None
        held_at = 0.0
        next_step: Connected | LeftQueue | None = None
        try:
            while True:
                item_task = asyncio.create_task(agent.inbox.get())
                done, _ = await asyncio.wait({item_task, caller_gone}, return_when=asyncio.FIRST_COMPLETED)
                if item_task not in done:
                    item_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await item_task
                    self._drain(agent, offset)
                    await agent.hangup()
                    self._drain(agent, offset)
                    self._push(PartyLeft(t=self.pipeline.now, party=Party.AGENT, agent_id=agent_id, reason="ended"))
                    break
                item = item_task.result()
                if isinstance(item, AudioFrame | DtmfDigit):
                    self._agent_item(item, offset)
                elif isinstance(item, HoldChanged):
                    if item.held and hold_music is None:
                        await self.endpoint.unbridge(self.caller, agent)
                        held_at = self.pipeline.now
                        self.outcome.holds += 1
                        self._push(HoldStarted(t=held_at, party=Party.AGENT, by=Party.AGENT))
                        hold_music = asyncio.create_task(self.acd.loop_music())
                    elif not item.held and hold_music is not None:
                        await cancel_task(hold_music)
                        self.caller.stop_playback()
                        hold_music = None
                        await self.endpoint.bridge(self.caller, agent)
                        self._hold_ended(held_at)
                elif isinstance(item, TransferRequested):
                    next_step = await self._transfer(item, conn)
                    if next_step is not None:
                        await agent.hangup()
                        self._push(PartyLeft(t=self.pipeline.now, party=Party.AGENT, agent_id=agent_id,
                                             reason="transfer"))
                        break
                elif isinstance(item, LegEnded):
                    self._push(PartyLeft(t=self.pipeline.now, party=Party.AGENT, agent_id=agent_id, reason="hangup"))
                    if self.caller.ended is None:
                        await self.caller.hangup()
                    break
        finally:
            caller_gone.cancel()
            await self.supervised.set_agent(None, "")
            if hold_music is not None:
                await cancel_task(hold_music)
                self._hold_ended(held_at)
            await self.acd.finished(agent_id)
        return next_step

    async def _transfer(self, item: TransferRequested, conn: Connected) -> Connected | LeftQueue | None:
        """The agent's phone REFERred the caller to ``item.uri``: the endpoint is already ringing
        it (``item.leg``). An agent target joins when it answers; a queue name (or a failed ring)
        puts the caller back in line, in that queue or the one they came from."""
        self.outcome.transfers += 1
        target = uri_user(item.uri) or item.uri
        self._push(QueueUpdate(t=self.pipeline.now, queue=conn.queue, action=QueueAction.TRANSFERRED,
                               target=target, agent_id=conn.agent_id))
        leg = item.leg if isinstance(item.leg, CallLeg) else None
        if leg is not None and target not in self._queues:
            try:
                ok = await asyncio.wait_for(asyncio.shield(leg._confirmed), TRANSFER_ANSWER_S)
            except TimeoutError:
                ok = False
            if ok:
                await self.acd.took_transfer(target)
                return Connected(leg=leg, agent_id=target, queue=conn.queue, wait_s=0.0, ring_s=0.0)
        if leg is not None and leg.ended is None:
            await leg.hangup()
        queue = target if target in self._queues else conn.queue
        # The caller waits again, with music, while the first agent's leg is ended by our caller.
        return await self.acd.wait_for_agent(QueueOptions(queue))

    # ---- helpers -----------------------------------------------------------------------------
    def _agent_item(self, item: AudioFrame | DtmfDigit, offset: float) -> None:
        if isinstance(item, AudioFrame):
            self.pipeline.push_frame(dataclasses.replace(item, timestamp=item.timestamp + offset, party=Party.AGENT))
        else:
            self._push(dataclasses.replace(item, call_id=self.caller.call_id, t=item.t + offset,
                                           party=Party.AGENT))

    def _drain(self, agent: CallLeg, offset: float) -> None:
        """Audio the agent leg delivered before it ended still belongs to the call."""
        while not agent.inbox.empty():
            item = agent.inbox.get_nowait()
            if isinstance(item, AudioFrame | DtmfDigit):
                self._agent_item(item, offset)

    def _hold_ended(self, held_at: float) -> None:
        now = self.pipeline.now
        self._push(HoldEnded(t=now, party=Party.AGENT, by=Party.AGENT, start=held_at,
                             duration=max(0.0, now - held_at)))

    def _push(self, event: Any) -> None:
        if not event.call_id:
            event = dataclasses.replace(event, call_id=self.caller.call_id)
        self.pipeline.push_event(event)


def music_player(leg: CallLeg, wav: Path | None) -> Callable[[], Coroutine[Any, Any, None]] | None:
    """One pass of the hold music on ``leg`` (None without a hold prompt)."""
    if wav is None:
        return None

    async def play() -> None:
        if not await leg.play(wav):
            await asyncio.sleep(0.2)  # stopped (announcement, barge) or the call ended

    return play
