"""The call pipeline's plumbing: order, re-injection of ASR results, draining, dropping."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from speech.asr_stage import AsrStage
from speech.events import (
    CallEnded,
    CallStarted,
    DtmfDigit,
    Event,
    FinalTranscript,
    PartialTranscript,
    SpeechEnded,
    SpeechStarted,
)
from speech.frames import PIPELINE_RATE, AudioFrame, Party
from speech.pipeline import CallPipeline
from speech.settings import AsrSettings
from speech.stage import Control, SetGrammar, Stage
from tests.fakes import ScriptedEngine


class EnergyVad(Stage):
    """A trivial energy gate standing in for webrtcvad: the test is about plumbing."""

    name = "vad"

    def __init__(self) -> None:
        self.on = False
        self.onset = 0.0

    def process_frame(self, frame: AudioFrame) -> list[Event]:
        loud = float(np.abs(frame.samples()).mean()) > 500
        if loud and not self.on:
            self.on, self.onset = True, frame.timestamp
            return [SpeechStarted(t=frame.timestamp, party=frame.party)]
        if not loud and self.on:
            self.on = False
            return [SpeechEnded(t=frame.timestamp, start=self.onset, duration=frame.timestamp - self.onset, party=frame.party)]
        return []


class Recorder(Stage):
    """Downstream stage that remembers what reached it."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def process_event(self, event: Event) -> list[Event]:
        self.seen.append(event.type.value)
        return []


def frames(pattern: list[tuple[float, bool]], party: Party = Party.CALLER):
    t = 0.0
    for seconds, loud in pattern:
        for _ in range(int(seconds / 0.02)):
            amp = 8000 if loud else 0
            pcm = (amp * np.sin(np.arange(320) / 3)).astype("<i2").tobytes()
            yield AudioFrame(pcm, PIPELINE_RATE, round(t, 3), party)
            t += 0.02


def build(texts):
    engine = ScriptedEngine(texts)
    recorder = Recorder()
    # partials regardless of the machine's load (the PSI gate has its own test)
    asr = AsrStage(engine, preroll_ms=200, settings=AsrSettings(partial_max_cpu_pressure=100))
    pipeline = CallPipeline("call-1", [EnergyVad(), asr, recorder])
    return pipeline, engine, recorder


async def test_utterances_become_finals_that_reach_later_stages_and_sinks() -> None:
    pipeline, engine, recorder = build(["hello there", "my bill is wrong"])
    got: list[Event] = []
    pipeline.add_sink(got.append)
    await pipeline.start()
    for f in frames([(0.5, False), (1.2, True), (0.6, False), (1.5, True), (0.5, False)]):
        await pipeline.feed(f)
    events = await pipeline.end("hangup")
    assert events == got
    finals = [e for e in events if isinstance(e, FinalTranscript)]
    assert [f.text for f in finals] == ["hello there", "my bill is wrong"]
    assert finals[0].start == pytest.approx(0.5) and finals[0].end == pytest.approx(1.7)
    # word times were moved onto the call clock (the utterance audio began with pre-roll)
    assert finals[1].words[0].start >= 2.0 and finals[1].words[-1].end <= 4.4
    assert all(e.call_id == "call-1" for e in events)
    assert isinstance(events[0], CallStarted) and isinstance(events[-1], CallEnded)
    assert events[-1].duration == pytest.approx(4.3, abs=0.03)
    # ASR results re-enter after the ASR stage: the recorder downstream saw them
    assert recorder.seen.count("transcript.final") == 2
    assert any(isinstance(e, PartialTranscript) for e in events)  # 1.5 s utterance gives a partial


async def test_open_utterance_is_finalized_at_end() -> None:
    pipeline, _, _ = build(["cut off"])
    await pipeline.start()
    for f in frames([(0.3, False), (1.0, True)]):
        await pipeline.feed(f)
    events = await pipeline.end()
    finals = [e for e in events if isinstance(e, FinalTranscript)]
    assert [f.text for f in finals] == ["cut off"]


async def test_control_events_are_stamped_with_the_call_clock_and_never_dropped() -> None:
    pipeline, _, recorder = build([])
    pipeline._max_pending = 5  # tiny audio queue
    await pipeline.start()
    sent = dropped = 0
    for f in frames([(1.0, False)]):
        sent += 1
        dropped += not pipeline.push_frame(f)
    for digit in "123":
        pipeline.push_event(DtmfDigit(digit=digit, source="rfc4733"))
    events = await pipeline.end()
    assert dropped > 0 and pipeline.frames_dropped == dropped
    assert pipeline.frames_processed == sent - dropped
    assert [e.digit for e in events if isinstance(e, DtmfDigit)] == ["1", "2", "3"]


async def test_grammar_applies_to_the_next_utterance() -> None:
    pipeline, engine, _ = build(["billing", "hello"])
    await pipeline.start()
    pipeline.control(SetGrammar(Party.CALLER, ("billing", "technical support")))
    for f in frames([(0.3, False), (0.6, True), (0.4, False)]):
        await pipeline.feed(f)
    await pipeline._wait_idle()
    pipeline.control(SetGrammar(Party.CALLER, None))
    for f in frames([(0.6, True), (0.4, False)]):
        await pipeline.feed(f.__class__(f.pcm, f.sample_rate, f.timestamp + 1.3, f.party))
    events = await pipeline.end()
    finals = [e for e in events if isinstance(e, FinalTranscript)]
    assert finals[0].engine == "scripted+grammar" and finals[1].engine == "scripted"
    assert engine.grammars_seen == [("billing", "technical support"), None]


async def test_cancel_stops_without_draining() -> None:
    pipeline, _, _ = build(["never"])
    await pipeline.start()
    for f in frames([(0.2, False), (0.5, True)]):
        pipeline.push_frame(f)
    await pipeline.cancel()
    assert not any(isinstance(e, CallEnded) for e in pipeline.events)


# --- the stage contract, with a stage the pipeline has never heard of -------------------------


class SlowEcho(Stage):
    """An async stage that is not a recognizer: echoes each RFC 4733 digit after a short wait
    (a stand-in for a knowledge lookup), counting what it owes in ``pending``."""

    name = "echo"

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.controls: list[Control] = []
        self.closed = 0

    @property
    def pending(self) -> int:
        return len(self.tasks)

    def process_event(self, event: Event) -> list[Event]:
        if isinstance(event, DtmfDigit) and event.source == "rfc4733":
            task = asyncio.get_running_loop().create_task(self._lookup(event.digit))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return []

    async def _lookup(self, digit: str) -> None:
        await asyncio.sleep(0.02)
        self.ctx.emit(DtmfDigit(t=self.ctx.now, digit=digit, source="echo"))

    def process_control(self, control: Control) -> None:
        self.controls.append(control)

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks))

    async def aclose(self) -> None:
        self.closed += 1


class Sources(Stage):
    name = "sources"

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.controls: list[Control] = []

    def process_event(self, event: Event) -> list[Event]:
        if isinstance(event, DtmfDigit):
            self.seen.append(event.source)
        return []

    def process_control(self, control: Control) -> None:
        self.controls.append(control)


async def test_async_results_reenter_right_after_the_stage_that_made_them() -> None:
    before, echo, after = Sources(), SlowEcho(), Sources()
    pipeline = CallPipeline("call-9", [before, echo, after])
    got: list[Event] = []
    pipeline.add_sink(got.append)
    await pipeline.start()
    quiet = list(frames([(1.0, False)]))
    for i, f in enumerate(quiet):
        if i == 10:
            pipeline.push_event(DtmfDigit(digit="7", source="rfc4733"))
        await pipeline.feed(f)
        if i == 10:  # feed waited for what the stage owed before the clock moved on
            assert [e.source for e in got if isinstance(e, DtmfDigit)] == ["rfc4733", "echo"]
    events = await pipeline.end()
    assert before.seen == ["rfc4733"]  # upstream of the echo stage: never sees its results
    assert after.seen == ["rfc4733", "echo"]
    digits = [e for e in events if isinstance(e, DtmfDigit)]
    assert digits[1].call_id == "call-9" and digits[1].t == pytest.approx(0.22)
    assert events == got and echo.closed == 1


async def test_controls_reach_every_stage_in_order_and_never_the_sinks() -> None:
    before, echo = Sources(), SlowEcho()
    pipeline = CallPipeline("call-9", [before, echo])
    got: list[Event] = []
    pipeline.add_sink(got.append)
    await pipeline.start()
    grammar = SetGrammar(Party.CALLER, ("yes", "no"))
    pipeline.control(grammar)
    pipeline.control(SetGrammar(Party.CALLER, None))
    events = await pipeline.end()
    assert before.controls == echo.controls == [grammar, SetGrammar(Party.CALLER)]
    assert [type(e) for e in got] == [CallStarted, CallEnded] and events == got


async def test_end_drains_async_stages_and_close_happens_once() -> None:
    echo, after = SlowEcho(), Sources()
    pipeline = CallPipeline("call-9", [echo, after])
    await pipeline.start()
    pipeline.push_event(DtmfDigit(digit="1", source="rfc4733"))
    events = await pipeline.end()
    assert after.seen == ["rfc4733", "echo"] and isinstance(events[-1], CallEnded)
    await pipeline.cancel()
    assert echo.closed == 1
    echo.ctx.emit(DtmfDigit(digit="2", source="late"))  # after close: dropped
    assert pipeline.events == events


async def test_cancel_closes_stages_and_drops_late_results() -> None:
    echo, after = SlowEcho(), Sources()
    pipeline = CallPipeline("call-9", [echo, after])
    await pipeline.start()
    pipeline.push_event(DtmfDigit(digit="1", source="rfc4733"))
    await pipeline._wait_idle()
    await pipeline.cancel()
    await asyncio.gather(*list(echo.tasks))  # the lookup finishes after the cancel
    assert echo.closed == 1 and after.seen == ["rfc4733"]
    assert not any(isinstance(e, CallEnded) or getattr(e, "source", "") == "echo" for e in pipeline.events)


def test_stage_order_is_the_wiring_table(tmp_path) -> None:
    from callcenter.settings import load_settings
    from callcenter.wiring import build_pipeline

    settings = load_settings(overrides={"data_dir": str(tmp_path), "asr.engine": "none"}, environ={})
    assert [s.name for s in build_pipeline("c", settings, None).stages] == [
        "vad", "dtmf", "dead_air", "talk_over", "tone", "tone", "cues"]
    with_asr = build_pipeline("c", settings, ScriptedEngine([]))
    assert [s.name for s in with_asr.stages] == [
        "vad", "dtmf", "dead_air", "talk_over", "asr", "tone", "tone", "knowledge", "cues", "checklist", "qa"]
    assert [getattr(s, "party", None) for s in with_asr.stages[5:7]] == [Party.CALLER, Party.AGENT]


def test_an_unbound_stage_says_so() -> None:
    with pytest.raises(RuntimeError, match="not bound"):
        SlowEcho().ctx.emit(DtmfDigit(digit="1"))
