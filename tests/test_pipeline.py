"""The call pipeline's plumbing: order, re-injection of ASR results, draining, dropping."""

from __future__ import annotations

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
from speech.stage import Stage
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
    holder = {}
    recorder = Recorder()
    asr = AsrStage(engine, lambda e: holder["p"].asr_emit(e), preroll_ms=200)
    pipeline = CallPipeline("call-1", [EnergyVad(), asr, recorder])
    holder["p"] = pipeline
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
    pipeline.set_grammar(Party.CALLER, ["billing", "technical support"])
    for f in frames([(0.3, False), (0.6, True), (0.4, False)]):
        await pipeline.feed(f)
    await pipeline._wait_idle()
    pipeline.set_grammar(Party.CALLER, None)
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
