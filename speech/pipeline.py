"""A call's streaming analysis: frames in, ordered events out to sinks.

Live calls and QA replay use this same object. One consumer task takes frames, control messages
and events from a queue and runs them through the stage chain (the order is data, given by the
caller: ``callcenter.wiring.STAGES``). An event a stage returns goes on to the stages after it,
then to the sinks. The pipeline knows stages only through ``speech.stage.Stage``: each is bound
to its position, so results of async work (a recognizer's transcripts) re-enter the chain right
after the stage that produced them.

Two ways to stop (pipecat): ``end()`` drains everything and returns the call's events;
``cancel()`` stops now. Audio may be dropped under overload (counted in ``frames_dropped``);
events and controls never are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from speech.events import CallEnded, CallStarted, Event
from speech.frames import AudioFrame
from speech.load import FrameLateness
from speech.stage import Control, Stage, StageContext

log = logging.getLogger(__name__)

Sink = Callable[[Event], None]

YIELD_EVERY = 25
"""``feed``: frames processed in a row (0.5 s of call time) before the loop gets a turn."""


@dataclass
class _Item:
    frame: AudioFrame | None = None
    event: Event | None = None
    control: Control | None = None
    start: int = 0  # index of the first stage that sees the event


class CallPipeline:
    """Runs one call's frames through the stages; fans events out to sinks."""

    def __init__(
        self,
        call_id: str,
        stages: Sequence[Stage],
        *,
        max_pending_frames: int = 1000,
        lateness: FrameLateness | None = None,
    ) -> None:
        """``lateness``: measures how late frames are handled (live calls: the process's load)."""
        self.call_id = call_id
        self.stages = list(stages)
        self.events: list[Event] = []
        self.frames_processed = 0
        self.frames_processed_inline = 0
        """Of those, frames ``feed`` processed itself (the queue was idle)."""
        self.frames_dropped = 0
        self.now = 0.0
        """Call time of the newest frame processed (the call clock)."""
        self._sinks: list[Sink] = []
        self._tick: list[Callable[[float], None]] = []
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._pending_frames = 0
        self._max_pending = max_pending_frames
        self._lateness = lateness
        self._space = asyncio.Event()
        self._space.set()
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self._closed = False
        for i, stage in enumerate(self.stages):
            stage.bind(StageContext(call_id, self._emitter(i + 1), self._clock))

    # -- wiring -----------------------------------------------------------------------------

    def add_sink(self, sink: Sink) -> None:
        """``sink(event)`` is called on the loop for every event, in order; it must not block."""
        self._sinks.append(sink)

    def on_tick(self, fn: Callable[[float], None]) -> None:
        """``fn(now)`` after each frame: the call clock (IVR timeouts run on it)."""
        self._tick.append(fn)

    def _emitter(self, start: int) -> Callable[[Event], None]:
        def emit(event: Event) -> None:
            if not self._closed:
                self._queue.put_nowait(_Item(event=event, start=start))

        return emit

    def _clock(self) -> float:
        return self.now

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, started: CallStarted | None = None) -> None:
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name=f"pipeline-{self.call_id}")
        self.push_event(started or CallStarted(t=0.0))

    def push_frame(self, frame: AudioFrame) -> bool:
        """Live path: enqueue without waiting; drops (and counts) the frame when overloaded."""
        if self._ended:
            return False
        if self._pending_frames >= self._max_pending:
            self.frames_dropped += 1
            return False
        self._pending_frames += 1
        if self._pending_frames >= self._max_pending:
            self._space.clear()
        self._queue.put_nowait(_Item(frame=frame))
        return True

    async def feed(self, frame: AudioFrame) -> None:
        """Replay path: process the frame before taking the next, and let every stage deliver the
        results it owes (``Stage.pending``, e.g. a recognizer's finals) before the call clock moves
        on. Events then come in the order a live call with instant async stages would produce,
        the same on every run, as fast as the CPU allows (work not yet owed, such as partial
        decoding, still overlaps with the other stages).

        When nothing waits in the queue (the usual case), the frame is processed right here
        rather than handed to the consumer task: the same order, without two task switches per
        20 ms frame; the loop still gets a turn every ``YIELD_EVERY`` frames."""
        if self._ended:
            return
        if self._queue.empty() and self._task is not None and not self._task.done():
            self.frames_processed_inline += 1
            try:
                self._process_frame(frame)
            except Exception:
                log.exception("pipeline stage failed on call %s", self.call_id)
            if self.frames_processed_inline % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        else:
            self.push_frame(frame)
        await self._queue.join()
        # Each round settles every stage that owes results; what they emit only reaches later
        # stages, so one round per stage is enough for chained async stages.
        for _ in self.stages:
            owing = [stage for stage in self.stages if stage.pending]
            if not owing:
                break
            for stage in owing:
                await stage.drain()
            await self._queue.join()

    def push_event(self, event: Event) -> None:
        """Control path (IVR marks, RFC 4733 DTMF): never dropped; stamped with the call clock."""
        if self._ended:
            return
        if event.t == 0.0 and not isinstance(event, CallStarted):
            event = replace(event, t=self.now)
        self._queue.put_nowait(_Item(event=event))

    def control(self, control: Control) -> None:
        """Send a control message (e.g. the IVR's ``SetGrammar``) down the chain, in order with
        frames and events; every stage sees it, sinks never do. Never dropped."""
        if not self._ended:
            self._queue.put_nowait(_Item(control=control))

    async def end(self, reason: str = "hangup", *, duration: float | None = None) -> list[Event]:
        """Drain frames and async stages, close every stage, emit CallEnded; return all events."""
        if self._ended:
            return self.events
        self._ended = True
        await self._wait_idle()
        t = self.now if duration is None else duration
        for i, stage in enumerate(self.stages):
            self._forward(stage.finish(t), i + 1)
            await stage.drain()
            await self._wait_idle()
        self._deliver(CallEnded(t=t, reason=reason, duration=round(t, 3)), len(self.stages))
        await self._close()
        return self.events

    async def cancel(self) -> None:
        """Stop now: pending frames and results are discarded."""
        self._ended = True
        await self._close()

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for stage in self.stages:
            try:
                await stage.aclose()
            except Exception:
                log.exception("closing stage %s failed on call %s", stage.name, self.call_id)

    async def _wait_idle(self) -> None:
        await self._queue.join()

    # -- processing -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if item.frame is not None:
                    self._pending_frames -= 1
                    if self._pending_frames < self._max_pending:
                        self._space.set()
                    self._process_frame(item.frame)
                elif item.event is not None:
                    self._deliver(item.event, item.start)
                elif item.control is not None:
                    for stage in self.stages:
                        stage.process_control(item.control)
            except Exception:
                log.exception("pipeline stage failed on call %s", self.call_id)
            finally:
                self._queue.task_done()

    def _process_frame(self, frame: AudioFrame) -> None:
        self.frames_processed += 1
        if self._lateness is not None:
            self._lateness.observe(frame.end)
        for i, stage in enumerate(self.stages, 1):
            if events := stage.process_frame(frame):  # most frames give most stages nothing to say
                self._forward(events, i)
        if frame.end > self.now:
            self.now = frame.end
            for fn in self._tick:
                fn(self.now)

    def _forward(self, events: list[Event], start: int) -> None:
        for event in events:
            self._deliver(event, start)

    def _deliver(self, event: Event, start: int) -> None:
        """Record and publish ``event``, then let stages from ``start`` on react to it."""
        if not event.call_id:
            event = replace(event, call_id=self.call_id)
        self.events.append(event)
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:
                log.exception("event sink failed on call %s", self.call_id)
        for i in range(start, len(self.stages)):
            if reactions := self.stages[i].process_event(event):
                self._forward(reactions, i + 1)
