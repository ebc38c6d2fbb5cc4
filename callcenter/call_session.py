"""One live call: composes the telephony leg, its speech pipeline, the IVR and the sinks.

The session is glue, not a god object: the leg only moves audio and signalling, the pipeline
only analyses, the IVR only decides, the sinks only publish and store. Audio and RFC 4733 digits
cross from the leg's inbox (filled from the PJSIP thread) into the pipeline on the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callcenter.aftercall import AfterCall, finish_call, live_sinks
from callcenter.agent_bridge import AgentBridge, AgentOutcome, music_player
from callcenter.settings import Settings
from callcenter.supervision import SupervisionDesk
from callcenter.wiring import build_pipeline
from ivr.flow import Flow, QueueNode
from ivr.session import IvrSession, TransferFailed
from speech.asr.base import AsrEngine
from speech.events import CallStarted, Event, PlaybackEnded, PlaybackStarted
from speech.frames import AudioFrame, Party
from speech.load import ProcessLoad
from speech.pipeline import CallPipeline
from speech.stage import SetGrammar
from telephony.acd.queue_call import QueueCall, QueueOptions
from telephony.acd.store import AcdStore
from telephony.items import HoldChanged, LegEnded
from telephony.leg import CallLeg

log = logging.getLogger(__name__)

SESSION_END_S = 15.0
"""How long a session waits, after the caller hung up, for the IVR or the agent part to end."""


@dataclass
class CallOutcome:
    call_id: str
    summary: dict[str, Any] | None = None
    ivr: Any = None
    events: list[Event] = field(default_factory=list)
    frames_dropped: int = 0
    """Audio frames lost on this call: leg inbox overflow plus pipeline overload."""
    frames_received: int = 0
    recording: Path | None = None
    """The 2-channel WAV (ch1 what we played, ch2 the caller), when recording is on."""
    end_reason: str = ""


class LegMedia:
    """``ivr.session.IvrMedia`` over a telephony leg and the call's pipeline."""

    def __init__(self, leg: Any, pipeline: CallPipeline) -> None:
        self.leg = leg
        self.pipeline = pipeline
        self.routed_to: str | None = None

    async def play(self, prompt: Path, *, name: str) -> bool:
        played: bool = await self.leg.play(prompt)
        return played

    def stop_playback(self) -> None:
        self.leg.stop_playback()

    def set_grammar(self, phrases: Sequence[str] | None) -> None:
        self.pipeline.control(SetGrammar(Party.CALLER, tuple(phrases) if phrases else None))

    def secure_input(self, on: bool) -> None:
        self.leg.mute_recording(on)

    async def route(self, queue: str) -> None:
        self.routed_to = queue

    async def transfer(self, uri: str) -> None:
        try:
            await self.leg.transfer(uri)
        except Exception as exc:  # a refused REFER: the flow's fallback takes over
            raise TransferFailed(str(exc)) from exc

    async def hangup(self) -> None:
        await self.leg.hangup()

    def emit(self, event: Event) -> None:
        self.pipeline.push_event(event)


@dataclass(frozen=True)
class AcdContext:
    """What a worker's sessions need to queue callers and bridge agents."""

    store: AcdStore
    endpoint: Any
    """The ``SipEndpoint`` holding the caller: places agent legs and bridges them."""
    worker: str
    front: str | None = None
    static_agents: frozenset[str] = frozenset()
    announce: Callable[[CallLeg, int, float], Coroutine[Any, Any, None]] | None = None
    supervision: SupervisionDesk | None = None
    """Where supervisors' requests for this worker's bridged calls are served."""


class CallSession:
    def __init__(
        self,
        leg: Any,
        settings: Settings,
        engine: AsrEngine | None,
        *,
        flow: Flow | None,
        prompts_dir: Path | None,
        sinks: Sequence[Callable[[Event], None]] = (),
        after_call: AfterCall | None = None,
        hold_prompt: Path | None = None,
        acd: AcdContext | None = None,
        load: ProcessLoad | None = None,
    ) -> None:
        """``load``: the worker's load state (what this call's analysis sheds under overload)."""
        self.leg = leg
        self.load = load
        self.settings = settings
        self.engine = engine
        self.flow = flow
        self.prompts_dir = prompts_dir
        self.sinks = list(sinks)
        self.after_call = after_call
        self.hold_prompt = hold_prompt
        self.acd = acd
        self.agent: AgentOutcome | None = None

    async def run(self) -> CallOutcome:
        leg = self.leg
        pipeline = build_pipeline(leg.call_id, self.settings, self.engine, self.load)
        for sink in live_sinks(self.sinks, self.after_call):
            pipeline.add_sink(sink)
        media = LegMedia(leg, pipeline)
        ivr: IvrSession | None = None
        if self.flow is not None and self.prompts_dir is not None:
            ivr = IvrSession(self.flow, media, prompts_dir=self.prompts_dir, call_id=leg.call_id)
            pipeline.add_sink(ivr.on_event)
            pipeline.on_tick(ivr.on_time)
        await pipeline.start(
            CallStarted(
                t=0.0,
                source="sip",
                caller=getattr(leg, "remote_uri", ""),
                callee=getattr(leg, "local_uri", ""),
                started_at=datetime.now(UTC).isoformat(timespec="seconds"),
                parties=("caller",),
            )
        )
        ivr_task = asyncio.create_task(self._run_ivr(ivr, media, pipeline)) if ivr else None
        reason = await self._pump(pipeline)
        ivr_result = None
        if ivr_task is not None:
            ivr.cancel()  # type: ignore[union-attr]
            try:
                # after the IVR, the agent part hangs up the agent and ends their call first
                ivr_result = await asyncio.wait_for(ivr_task, timeout=SESSION_END_S)
            except (TimeoutError, asyncio.CancelledError, Exception):
                log.warning("IVR did not stop cleanly on call %s", leg.call_id)
        events = await pipeline.end(reason)
        outcome = CallOutcome(leg.call_id, ivr=ivr_result, events=events,
                              frames_dropped=pipeline.frames_dropped + getattr(leg, "frames_dropped", 0),
                              frames_received=getattr(leg, "frames_received", 0),
                              recording=getattr(leg, "recording_path", None), end_reason=reason)
        if self.after_call is not None:
            extra: dict[str, Any] = {
                "recording": str(outcome.recording) if outcome.recording else None,
                "frames_dropped": outcome.frames_dropped,
            }
            if ivr_result is not None:
                extra["ivr_outcome"] = _ivr_dict(ivr_result)
            if self.agent is not None:
                extra["agent_outcome"] = dataclasses.asdict(self.agent)
            try:
                outcome.summary = await finish_call(self.after_call, leg.call_id, events, self.sinks,
                                                    t=pipeline.now, **extra)
            except Exception:  # the call is over either way; the caller must not see this
                log.exception("after-call processing failed on call %s", leg.call_id)
        return outcome

    async def _run_ivr(self, ivr: IvrSession, media: LegMedia, pipeline: CallPipeline) -> Any:
        result = await ivr.run()
        if media.routed_to and self.acd is not None and self.leg.ended is None:
            await self._queue(media.routed_to, pipeline)
        elif media.routed_to and self.hold_prompt is not None:
            # In the queue: hold music until the caller hangs up (no agents in this process).
            while self.leg.ended is None:
                if not await self.leg.play(self.hold_prompt):
                    break
        return result

    async def _queue(self, queue: str, pipeline: CallPipeline) -> None:
        """Wait in ``queue`` and talk with agents (``callcenter.agent_bridge``)."""
        assert self.acd is not None and self.flow is not None
        acd = self.acd
        node = next((n for n in self.flow.nodes.values() if isinstance(n, QueueNode) and n.queue == queue), None)
        options = QueueOptions(queue, max_wait_s=(node.max_wait_s or 0.0) if node else 0.0,
                               overflow=node.overflow if node else None, callback=node.callback if node else False)
        leg = self.leg
        music = music_player(leg, self.hold_prompt)

        async def dial(uri: str, ring_s: float, placed: Callable[[CallLeg], None]) -> CallLeg:
            got: CallLeg = await acd.endpoint.place_call(uri, answer_timeout_s=ring_s, record=False,
                                                         on_placed=placed)
            return got

        announce = None
        if acd.announce is not None:
            say = acd.announce

            async def announce(position: int, expected: float) -> None:
                await say(leg, position, expected)

        queue_call = QueueCall(call_id=leg.call_id, caller=leg, store=acd.store, settings=self.settings.acd,
                               dial=dial, worker=acd.worker, emit=pipeline.push_event, now=lambda: pipeline.now,
                               music=music, announce=announce, front=acd.front, static_agents=acd.static_agents)
        queues = frozenset(n.queue for n in self.flow.nodes.values() if isinstance(n, QueueNode))
        bridge = AgentBridge(caller=leg, queue_call=queue_call, endpoint=acd.endpoint, pipeline=pipeline,
                             queues=queues, supervision=acd.supervision)
        self.agent = bridge.outcome
        await bridge.run(options)

    async def _pump(self, pipeline: CallPipeline) -> str:
        """Move the leg's audio and digits into the pipeline until the leg ends."""
        while True:
            item = await self.leg.inbox.get()
            if isinstance(item, AudioFrame):
                pipeline.push_frame(item)
            elif isinstance(item, Event):  # RFC 4733 / SIP INFO digits
                pipeline.push_event(item)
            elif isinstance(item, HoldChanged):
                # The caller put us on hold: their silence is not dead air.
                mark = PlaybackStarted if item.held else PlaybackEnded
                pipeline.push_event(mark(t=item.t, kind="hold", name=f"{item.by}_hold"))
            elif isinstance(item, LegEnded):
                return _reason(item)


def _reason(ended: LegEnded) -> str:
    if ended.status in (0, 200, 487) or not ended.reason:
        return "hangup"
    return f"{ended.status} {ended.reason}"


def _ivr_dict(result: Any) -> dict[str, Any]:
    return result.to_dict() if hasattr(result, "to_dict") else {"result": str(result)}
