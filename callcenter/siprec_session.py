"""One SIPREC recording session: a call a PBX bridges, forked to us, analysed like our own.

The leg (``telephony.endpoint``) delivers each forked stream's frames with its party on one call
clock; this session feeds them to the same pipeline, sinks and after-call record as
``CallSession``, with the events a bridged call has (``callcenter.agent_bridge``): the agent
joins (``PartyJoined`` with their directory id), a metadata update that puts another agent on
the agent stream is a transfer (``PartyLeft(reason="transfer")`` + ``PartyJoined``), streams all
``inactive`` are a hold. No IVR, no queue, no prompts: the recording server never sends media.

With the ACD (``acd``): supervisors may listen (``callcenter.supervision.ListenOnlyCall``; whisper
and barge are refused, we have no way into the PBX's call), and a ready agent on the recorded
call is ``on_call`` (reason ``siprec``) while it lasts, so no queue call rings them meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from callcenter.aftercall import AfterCall, finish_call, live_sinks
from callcenter.agent_bridge import AgentOutcome
from callcenter.call_session import AcdContext, CallOutcome, _reason
from callcenter.settings import Settings
from callcenter.supervision import ListenOnlyCall
from callcenter.wiring import build_pipeline
from speech.asr.base import AsrEngine
from speech.events import (
    AgentStateChanged,
    CallStarted,
    Event,
    HoldEnded,
    HoldStarted,
    PartyJoined,
    PartyLeft,
)
from speech.frames import AudioFrame, Party
from speech.load import ProcessLoad
from speech.pipeline import CallPipeline
from telephony.items import LegEnded, MetadataChanged
from telephony.leg import CallLeg
from telephony.siprec import RecordingOffer, StreamRole

log = logging.getLogger(__name__)

ACD_REASON = "siprec"
"""Why an agent is ``on_call`` in the ACD while a PBX call of theirs is recorded."""


def _agents(roles: Sequence[object]) -> dict[str, str]:
    """The agents on the agent streams: key (directory id, else participant id) → agent id."""
    out: dict[str, str] = {}
    for r in roles:
        if isinstance(r, StreamRole) and r.party is Party.AGENT:
            out[r.agent_id or r.participant_id or f"stream-{r.label}"] = r.agent_id
    return out


def _held(offer: object) -> bool:
    """Every stream ``inactive`` (or port 0): the PBX holds the call, nobody is recorded."""
    if not isinstance(offer, RecordingOffer) or not offer.streams:
        return False
    return all(s.direction == "inactive" or s.port == 0 for s in offer.streams)


class SiprecSession:
    """Runs one recording session leg to its end and writes its after-call record."""

    def __init__(self, leg: CallLeg, settings: Settings, engine: AsrEngine | None, *,
                 sinks: Sequence[Callable[[Event], None]] = (), after_call: AfterCall | None = None,
                 acd: AcdContext | None = None, load: ProcessLoad | None = None) -> None:
        self.leg = leg
        self.acd = acd
        self.load = load
        self.settings = settings
        self.engine = engine
        self.sinks = list(sinks)
        self.after_call = after_call
        self.outcome = AgentOutcome(outcome="recorded")
        self._agents: dict[str, str] = {}
        self._held_at: float | None = None
        self._supervised: ListenOnlyCall | None = None
        self._busy: set[str] = set()
        """Agents this session made ``on_call`` in the ACD."""

    async def run(self) -> CallOutcome:
        leg = self.leg
        pipeline = build_pipeline(leg.call_id, self.settings, self.engine, self.load)
        for sink in live_sinks(self.sinks, self.after_call):
            pipeline.add_sink(sink)
        offer = leg.siprec if isinstance(leg.siprec, RecordingOffer) else None
        caller, callee = self._addresses(offer)
        await pipeline.start(CallStarted(
            t=0.0, source="siprec", caller=caller, callee=callee,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"), parties=("caller", "agent")))
        await self._update(pipeline, leg.stream_roles, offer, t=0.0)
        acd = self.acd
        desk = acd.supervision if acd is not None else None
        if acd is not None and desk is not None:
            self._supervised = ListenOnlyCall(leg=leg, endpoint=acd.endpoint, emit=lambda e: self._push(pipeline, e),
                                              now=lambda: pipeline.now, agent_id=self._agent_id())
            desk.attach(self._supervised)
        try:
            reason = await self._pump(pipeline)
        finally:
            if desk is not None:
                await desk.detach(leg.call_id)  # supervisors' "left" events go in before the end
            for agent_id in list(self._busy):
                await self._acd_free(pipeline, agent_id)
        for agent_id in self._agents.values():
            self._push(pipeline, PartyLeft(t=pipeline.now, party=Party.AGENT, agent_id=agent_id, reason="ended"))
        self._agents = {}
        if self._held_at is not None:
            self._hold_ended(pipeline, pipeline.now)
        events = await pipeline.end(reason)
        outcome = CallOutcome(leg.call_id, events=events,
                              frames_dropped=pipeline.frames_dropped + leg.frames_dropped,
                              frames_received=leg.frames_received, recording=leg.recording_path,
                              end_reason=reason)
        if self.after_call is not None:
            try:
                outcome.summary = await finish_call(
                    self.after_call, leg.call_id, events, self.sinks, t=pipeline.now,
                    recording=str(outcome.recording) if outcome.recording else None,
                    frames_dropped=outcome.frames_dropped, agent_outcome=self._outcome_dict())
            except Exception:  # the session is over either way
                log.exception("after-call processing failed on recording session %s", leg.call_id)
        return outcome

    async def _pump(self, pipeline: CallPipeline) -> str:
        while True:
            item = await self.leg.inbox.get()
            if isinstance(item, AudioFrame):
                pipeline.push_frame(item)
            elif isinstance(item, MetadataChanged):
                await self._update(pipeline, item.roles, item.offer, t=item.t)
            elif isinstance(item, Event):
                pipeline.push_event(item)
            elif isinstance(item, LegEnded):
                return _reason(item)

    async def _update(self, pipeline: CallPipeline, roles: Sequence[object], offer: object, *, t: float) -> None:
        """Agents who left the agent stream and those who joined it; a hold starting or ending."""
        now = max(t, pipeline.now)
        new = _agents(roles)
        left = [agent_id for key, agent_id in self._agents.items() if key not in new]
        joined = [agent_id for key, agent_id in new.items() if key not in self._agents]
        for agent_id in left:
            self.outcome.transfers += 1
            self._push(pipeline, PartyLeft(t=now, party=Party.AGENT, agent_id=agent_id, reason="transfer"))
        for agent_id in joined:
            if agent_id and agent_id not in self.outcome.agents:
                self.outcome.agents.append(agent_id)
            self._push(pipeline, PartyJoined(t=now, party=Party.AGENT, agent_id=agent_id))
        self._agents = new
        if self._supervised is not None:
            self._supervised.set_agent(self._agent_id())
        for agent_id in left:
            if agent_id in self._busy:
                await self._acd_free(pipeline, agent_id)
        for agent_id in joined:
            if agent_id:
                await self._acd_busy(pipeline, agent_id)
        held = _held(offer)
        if held and self._held_at is None:
            self._held_at = now
            self.outcome.holds += 1
            self._push(pipeline, HoldStarted(t=now, party=Party.AGENT, by=Party.AGENT))
        elif not held and self._held_at is not None:
            self._hold_ended(pipeline, now)

    def _agent_id(self) -> str:
        """The agent on the agent stream now ("" for none known)."""
        return next((a for a in self._agents.values() if a), "")

    async def _acd_busy(self, pipeline: CallPipeline, agent_id: str) -> None:
        """A ready agent is busy on the PBX's call: on_call in the ACD, so no queue call rings them."""
        if self.acd is None:
            return
        try:
            change = await asyncio.to_thread(self.acd.store.recorded_call_started, agent_id, self.leg.call_id,
                                             ACD_REASON)
        except Exception:  # the store is briefly unavailable: the recording goes on
            log.warning("could not mark a recorded agent on a call", exc_info=True)
            return
        if change is not None:
            self._busy.add(agent_id)
            self._agent_event(pipeline, change)

    async def _acd_free(self, pipeline: CallPipeline, agent_id: str) -> None:
        self._busy.discard(agent_id)
        if self.acd is None:
            return
        try:
            change = await asyncio.to_thread(self.acd.store.recorded_call_ended, agent_id, self.leg.call_id)
        except Exception:
            log.warning("could not free a recorded agent", exc_info=True)
            return
        if change is not None:
            self._agent_event(pipeline, change)

    def _agent_event(self, pipeline: CallPipeline, change: Any) -> None:
        self._push(pipeline, AgentStateChanged(t=pipeline.now, party=Party.AGENT, agent_id=change.agent_id,
                                               state=change.state, previous=change.previous, reason=change.reason))

    def _hold_ended(self, pipeline: CallPipeline, now: float) -> None:
        start = self._held_at or 0.0
        self._held_at = None
        self._push(pipeline, HoldEnded(t=now, party=Party.AGENT, by=Party.AGENT, start=start,
                                       duration=max(0.0, now - start)))

    def _push(self, pipeline: CallPipeline, event: Any) -> None:
        pipeline.push_event(dataclasses.replace(event, call_id=self.leg.call_id))

    def _addresses(self, offer: RecordingOffer | None) -> tuple[str, str]:
        """(caller, callee) of the recorded call: the caller participant's AOR and the agent's,
        else the SRC's own addresses."""
        md = offer.metadata if offer is not None else None
        if md is None:
            return self.leg.remote_uri, self.leg.local_uri
        by_id = {p.participant_id: p for p in md.participants}
        caller = next((by_id[r.participant_id].aor for r in self.leg.stream_roles
                       if isinstance(r, StreamRole) and r.party is Party.CALLER and r.participant_id in by_id), "")
        agent = next((by_id[r.participant_id].aor for r in self.leg.stream_roles
                      if isinstance(r, StreamRole) and r.party is Party.AGENT and r.participant_id in by_id), "")
        return caller or self.leg.remote_uri, agent or self.leg.local_uri

    def _outcome_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.outcome)
