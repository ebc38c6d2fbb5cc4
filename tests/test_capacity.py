"""Capacity planning and graceful overload, without SIP: the planner's arithmetic, the shed
ladder on a virtual clock, the decode pool's backlog, and the stages honouring what is shed.
(The same under real SIP calls: tests/test_overload_sip.py.)"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from callcenter.capacity import CapacitySettings, plan_capacity
from callcenter.overload import Ladder, LoadGovernor, LoadSample, OverloadSettings
from callcenter.settings import ToneSettings
from speech.asr.base import BatchEngine, Hypothesis
from speech.asr.pool import DecodePool, Priority
from speech.asr_stage import AsrStage
from speech.events import (
    FinalTranscript,
    PartialTranscript,
    SpeechEnded,
    SpeechStarted,
    ToneUpdate,
    Word,
)
from speech.frames import AudioFrame
from speech.load import FrameLateness, ProcessLoad, ShedLevel
from speech.pipeline import CallPipeline
from speech.settings import AsrSettings
from speech.stage import Stage
from speech.tone import ToneStage
from tests.fakes import ScriptedEngine
from tests.test_tone import CALM_LINES, CALM_VOICE, feed

# -- the capacity planner ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost", "slots", "legs", "utilization", "calls", "workers"),
    [
        # 2 cores at 80 %: 1.6 cores. Per call: legs x (cost x 0.5 speech + 0.04 floor).
        (0.05, 4, 1, 0.8, 24, 6),  # the recognizer issue's target: 0.065 core/call
        (0.25, 4, 1, 0.8, 9, 3),  # pocketsphinx as measured in FACTS (0.165 core/call)
        (0.0, 4, 1, 0.8, 40, 10),  # no recognizer: the 0.04 floor alone
        (0.05, 2, 2, 0.8, 12, 6),  # bridged: two parties per call, two slots per caller
        (0.05, 4, 1, 1.0, 30, 8),  # the example: 30 calls need 8 workers
    ],
)
def test_plan_follows_the_calls_the_cores_can_analyze(cost, slots, legs, utilization, calls, workers):
    settings = CapacitySettings(cores=2, utilization=utilization, floor_cpu_per_call=0.04)
    plan = plan_capacity(settings, asr_cpu_per_audio_s=cost, slots_per_worker=slots, legs_per_call=legs)
    assert (plan.calls, plan.workers, plan.capped) == (calls, workers, False)
    assert plan.cores == 2 and plan.slots_per_worker == slots


def test_plan_is_capped_and_never_below_one_worker():
    capped = plan_capacity(CapacitySettings(cores=8, max_workers=5, floor_cpu_per_call=0.01),
                           asr_cpu_per_audio_s=0.0, slots_per_worker=4)
    assert capped.workers == 5 and capped.capped and capped.calls == 640
    slow = plan_capacity(CapacitySettings(cores=1, floor_cpu_per_call=0.04), asr_cpu_per_audio_s=4.0,
                         slots_per_worker=4)
    assert (slow.calls, slow.workers) == (1, 1)
    assert slow.to_dict()["core_per_call"] == pytest.approx(2.04)
    assert (capped.calls_per_worker, slow.calls_per_worker) == (4, 1)  # capped: every slot


@pytest.mark.parametrize(("floor", "slots", "calls", "workers", "admit"), [
    (0.3, 4, 5, 2, 3),  # 5 calls over 2 workers: 3 each, not 4 (8 admitted would be 3 too many)
    (0.2, 4, 8, 2, 4),  # exactly full workers
    (0.1, 2, 16, 8, 2),  # bridged: at most the slots a caller and their agent leave
    (0.5, 4, 3, 1, 3),
])
def test_each_worker_admits_its_share_of_the_planned_calls(floor, slots, calls, workers, admit):
    plan = plan_capacity(CapacitySettings(cores=2, floor_cpu_per_call=floor), asr_cpu_per_audio_s=0.0,
                         slots_per_worker=slots)
    assert (plan.calls, plan.workers, plan.calls_per_worker) == (calls, workers, admit)


# -- the shed ladder (virtual clock) -----------------------------------------------------------


def test_ladder_sheds_in_order_and_recovers_one_step_per_calm_hold():
    ladder = Ladder(OverloadSettings(refuse_behind_s=1.0, partials_off_behind_s=2.0, prosody_off_behind_s=3.0,
                                     sustain_samples=2, recover_ratio=0.5, recover_hold_s=5.0))
    t = 0.0

    def at(behind: float, dt: float = 0.5) -> ShedLevel:
        nonlocal t
        t += dt
        return ladder.update(LoadSample(backlog_s=behind), t)

    assert at(0.2) == ShedLevel.NORMAL
    assert at(1.2) == ShedLevel.NORMAL  # one sample over is not overload
    assert at(0.2) == ShedLevel.NORMAL
    assert [at(1.2), at(1.2)] == [ShedLevel.NORMAL, ShedLevel.REFUSING]
    # far behind at once: still one level per sustained step, in the stated order
    assert [at(5.0) for _ in range(4)] == [ShedLevel.REFUSING, ShedLevel.NO_PARTIALS,
                                           ShedLevel.NO_PARTIALS, ShedLevel.NO_PROSODY]
    assert at(2.0) == ShedLevel.NO_PROSODY  # under the threshold but not calm (1.5 s): held
    levels = [at(0.1) for _ in range(40)]  # calm: one level down per 5 s
    assert levels[9] == ShedLevel.NO_PROSODY and levels[10] == ShedLevel.NO_PARTIALS
    assert levels[20] == ShedLevel.REFUSING and levels[30] == ShedLevel.NORMAL
    assert levels == sorted(levels, reverse=True)


def test_cpu_closes_admission_only_when_asked_to_and_never_sheds_analysis():
    sample = LoadSample(backlog_s=0.0, cpu=1.9)
    assert Ladder(OverloadSettings(sustain_samples=1)).update(sample, 0.0) == ShedLevel.NORMAL  # shown only
    ladder = Ladder(OverloadSettings(sustain_samples=1, cpu_refuse=1.5, recover_hold_s=1.0))
    assert [ladder.update(sample, t) for t in (0.0, 0.5, 1.0, 1.5)] == [ShedLevel.REFUSING] * 4
    calm = LoadSample(cpu=0.3)
    assert [ladder.update(calm, t) for t in (2.0, 2.5, 3.0)] == [ShedLevel.REFUSING] * 2 + [ShedLevel.NORMAL]


def test_frame_lateness_counts_only_what_comes_on_top_of_the_calls_usual_delay():
    now = [100.0]
    reported: list[float] = []
    meter = FrameLateness(lambda: now[0], reported.append)
    for i in range(50):  # handled on time: the wall clock and the frames advance together
        now[0] += 0.02
        meter.observe(0.02 * (i + 1))
    assert max(reported) == pytest.approx(0.0, abs=1e-9)
    now[0] += 1.5  # the loop stalled 1.5 s before the next frame was handled
    meter.observe(0.02 * 51)
    assert meter.last == pytest.approx(1.5, abs=0.03)
    load = ProcessLoad(clock=lambda: now[0])
    load.report_lateness(0.4)
    load.report_lateness(0.2)
    assert load.take_lateness() == 0.4 and load.take_lateness() == 0.0


# -- the decode pool's backlog and the governor on a real pool ---------------------------------


class StallEngine(BatchEngine):
    """Every decode waits until ``release`` is set: the recognizer falls behind on demand."""

    name = "stall"
    concurrency = 1

    def __init__(self) -> None:
        self.release = threading.Event()
        self.partials = 0
        self.finals = 0

    def decode(self, audio: np.ndarray, *, final: bool, hints=None) -> Hypothesis:
        self.release.wait(120)
        self.finals += final
        self.partials += not final
        return Hypothesis(text="word", words=(Word("word", 0.0, 0.5, 1.0),), final=final)


def test_pool_backlog_is_the_wait_of_the_oldest_queued_decode():
    pool = DecodePool(1, name="test")
    gate = threading.Event()
    first = pool.submit(gate.wait, 30, priority=Priority.FINAL)
    second = pool.submit(lambda: None, priority=Priority.FEED)
    time.sleep(0.05)
    backlog = pool.backlog()
    assert (backlog.queued, backlog.running) == (1, 1) and backlog.oldest_s >= 0.05
    gate.set()
    first.result(10)
    second.result(10)
    assert pool.backlog().oldest_s == 0.0 and pool.backlog().queued == 0
    pool.shutdown()


def test_pool_final_age_counts_running_finals_not_partials():
    """Nothing queues in a pool with a free thread, yet a final that runs slowly (its cores
    shared with other workers) makes the transcript late: its age shows it, a partial's does not."""
    pool = DecodePool(3, name="test")
    gate = threading.Event()
    final = pool.submit(gate.wait, 30, priority=Priority.FINAL)
    time.sleep(0.05)
    partial = pool.submit(gate.wait, 30, priority=Priority.PARTIAL)
    time.sleep(0.1)
    backlog = pool.backlog()
    assert (backlog.queued, backlog.running, backlog.oldest_s) == (0, 2, 0.0)
    assert backlog.final_age_s >= 0.15
    gate.set()
    final.result(10)
    partial.result(10)
    assert pool.backlog().final_age_s == 0.0
    only_partial = pool.submit(time.sleep, 0.2, priority=Priority.PARTIAL)
    time.sleep(0.1)
    assert pool.backlog().final_age_s == 0.0
    only_partial.result(10)
    pool.shutdown()


async def test_governor_sheds_when_running_finals_lag_with_nothing_queued():
    """A pool of two threads, both busy with finals that do not finish: no queue, but the finals
    are late beyond their allowance, so the worker refuses calls and stops partials."""
    engine = StallEngine()
    engine.concurrency = 2
    load = ProcessLoad()
    settings = OverloadSettings(interval_s=0.05, refuse_behind_s=0.2, partials_off_behind_s=0.4,
                                prosody_off_behind_s=5.0, final_allowance_s=0.3, sustain_samples=1,
                                recover_hold_s=0.1)
    governor = LoadGovernor(settings, load, engine)
    for _ in range(2):
        engine.pool.submit(lambda: engine.decode(np.zeros(1600, np.float32), final=True), priority=Priority.FINAL)
    await _wait(lambda: engine.pool.backlog().running == 2, 10)
    sample = governor.sample()
    assert sample.queued == 0 and sample.backlog_s == 0.0  # young finals: their own decode time
    stop = asyncio.Event()
    task = asyncio.create_task(governor.run(stop))
    await _wait(lambda: load.level == ShedLevel.NO_PARTIALS, 30)
    assert governor.report.queued == 0 and governor.report.backlog_s >= 0.4
    assert not load.admitting and not load.partials and load.prosody
    engine.release.set()
    await _wait(lambda: load.level == ShedLevel.NORMAL, 30)
    stop.set()
    await task
    engine.close()


async def test_governor_refuses_then_sheds_partials_then_prosody_and_recovers():
    engine = StallEngine()
    load = ProcessLoad()
    settings = OverloadSettings(interval_s=0.05, refuse_behind_s=0.2, partials_off_behind_s=0.4,
                                prosody_off_behind_s=0.6, sustain_samples=1, recover_hold_s=0.1)
    changes: list[str] = []
    governor = LoadGovernor(settings, load, engine, on_change=lambda r: changes.append(r.last_change))
    stop = asyncio.Event()
    task = asyncio.create_task(governor.run(stop))
    for _ in range(2):  # one decode hangs on the pool's thread, the next waits behind it
        engine.pool.submit(lambda: engine.decode(np.zeros(1600, np.float32), final=True), priority=Priority.FINAL)
    await _wait(lambda: load.level == ShedLevel.NO_PROSODY, 30)
    assert not load.admitting and not load.partials and not load.prosody
    assert changes == ["normal -> refusing", "refusing -> no_partials", "no_partials -> no_prosody"]
    assert governor.report.backlog_s >= 0.6 and governor.report.state == "no_prosody"
    engine.release.set()
    await _wait(lambda: load.level == ShedLevel.NORMAL, 30)
    assert changes[3:] == ["no_prosody -> no_partials", "no_partials -> refusing", "refusing -> normal"]
    assert governor.report.history == changes and load.admitting
    stop.set()
    await task
    engine.close()


async def _wait(cond, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


# -- stages honour what is shed ------------------------------------------------------------------


class Marks(Stage):
    """Speech from 0.0 to ``end`` (call seconds), standing in for the VAD."""

    name = "marks"

    def __init__(self, end: float) -> None:
        self.end, self.state = end, 0

    def process_frame(self, frame: AudioFrame):
        if self.state == 0:
            self.state = 1
            return [SpeechStarted(t=0.0, party=frame.party)]
        if self.state == 1 and frame.timestamp >= self.end:
            self.state = 2
            return [SpeechEnded(t=frame.timestamp, start=0.0, duration=frame.timestamp, party=frame.party)]
        return []


async def _partials_decoded(level: ShedLevel) -> tuple[int, int]:
    engine = StallEngine()
    engine.release.set()
    load = ProcessLoad(level=level)
    asr = AsrStage(engine, settings=AsrSettings(partial_interval_s=0.3, partial_budget=10.0,
                                                partial_max_cpu_pressure=100), load=load)
    pipeline = CallPipeline("call-shed", [Marks(3.9), asr])
    await pipeline.start()
    noise = (np.random.default_rng(1).standard_normal(16000 * 4) * 3000).astype("<i2")
    for i in range(0, len(noise), 320):
        pipeline.push_frame(AudioFrame(noise[i : i + 320].tobytes(), 16000, i / 16000))
        await asyncio.sleep(0.005)
    events = await pipeline.end()
    engine.close()
    finals = [e for e in events if isinstance(e, FinalTranscript)]
    return engine.partials, len(finals)


async def test_shedding_partials_stops_their_decodes_not_the_final():
    partials, finals = await _partials_decoded(ShedLevel.NORMAL)
    assert partials >= 2 and finals == 1
    partials, finals = await _partials_decoded(ShedLevel.NO_PARTIALS)
    assert partials == 0 and finals == 1


async def _streaming_partials(level: ShedLevel) -> tuple[int, int, list[bool]]:
    engine = ScriptedEngine(["check my balance"])
    load = ProcessLoad(level=level)
    pipeline = CallPipeline("call-shed-stream", [Marks(2.5), AsrStage(engine, load=load)])
    seen: list[bool] = []
    real_open = engine.open_session

    def spy(grammar=None):
        session = real_open(grammar)
        real_accept = session.accept

        def accept(pcm: bytes):
            seen.append(session.partials)  # what the stream told the engine before each chunk
            return real_accept(pcm)

        session.accept = accept  # type: ignore[method-assign]
        return session

    engine.open_session = spy  # type: ignore[method-assign]
    await pipeline.start()
    silence = bytes(640)
    for i in range(150):
        await pipeline.feed(AudioFrame(silence, 16000, i * 0.02))
    events = await pipeline.end()
    engine.close()
    partials = [e for e in events if isinstance(e, PartialTranscript)]
    finals = [e for e in events if isinstance(e, FinalTranscript)]
    return len(partials), len(finals), seen


async def test_a_streaming_engine_is_told_to_skip_partials_and_none_are_published():
    partials, finals, seen = await _streaming_partials(ShedLevel.NORMAL)
    assert (partials, finals) == (1, 1) and seen and all(seen)
    partials, finals, seen = await _streaming_partials(ShedLevel.NO_PARTIALS)
    assert (partials, finals) == (0, 1) and seen and not any(seen)


def test_shedding_prosody_scores_tone_from_words_only(tts):
    lines = [(tts(line, **CALM_VOICE), line) for line in CALM_LINES[:2]]
    normal, _ = feed(ToneStage(ToneSettings()), lines)
    shed, _ = feed(ToneStage(ToneSettings(), load=ProcessLoad(level=ShedLevel.NO_PROSODY)), lines)
    ups = [e for e in normal if isinstance(e, ToneUpdate)]
    shed_ups = [e for e in shed if isinstance(e, ToneUpdate)]
    assert len(ups) == len(shed_ups) == 2
    assert all("pitch_hz" in u.signals for u in ups)
    assert not any("pitch_hz" in u.signals for u in shed_ups)


# -- measuring the recognizer's cost -------------------------------------------------------------


class BurnEngine(BatchEngine):
    """Spends exactly ``cost`` CPU seconds per second of audio it decodes."""

    name = "burn"

    def __init__(self, cost: float) -> None:
        self.cost = cost

    def decode(self, audio: np.ndarray, *, final: bool, hints=None) -> Hypothesis:
        end = time.process_time() + self.cost * audio.size / self.sample_rate
        while time.process_time() < end:
            pass
        return Hypothesis(text="", final=final)


def test_measured_cost_is_cpu_time_per_audio_second():
    from callcenter.capacity import measure_asr_cost

    assert measure_asr_cost(BurnEngine(0.1)) == pytest.approx(0.1, abs=0.02)


class OutlierEngine(BurnEngine):
    """Its first decode costs four times the others (a neighbour's burst, a cold cache)."""

    def __init__(self, cost: float) -> None:
        super().__init__(cost)
        self.decodes = 0

    def decode(self, audio: np.ndarray, *, final: bool, hints=None) -> Hypothesis:
        self.decodes += 1
        scale = 4.0 if self.decodes == 1 else 1.0
        end = time.process_time() + scale * self.cost * audio.size / self.sample_rate
        while time.process_time() < end:
            pass
        return Hypothesis(text="", final=final)


def test_measured_cost_is_the_median_of_several_decodes():
    from callcenter.capacity import MEASURE_REPEATS, measure_asr_cost

    engine = OutlierEngine(0.05)
    assert measure_asr_cost(engine) == pytest.approx(0.05, abs=0.01)  # not the outlier's 0.2
    assert engine.decodes == MEASURE_REPEATS >= 3


@pytest.mark.slow
async def test_serve_measures_the_real_recognizer_in_a_short_lived_process():
    from callcenter.capacity import measure_in_subprocess

    cost = await measure_in_subprocess(AsrSettings(engine="pocketsphinx"))
    assert 0.0 < cost < 3.0  # CPU-s per audio second: a real decode happened, far from nothing


@pytest.mark.slow
async def test_a_measured_cost_is_kept_and_reused_by_the_next_start(tmp_path):
    """``serve`` loads a model in a short-lived process to time it once per machine and
    recognizer; the next start reads the figure (a real pocketsphinx measurement here)."""
    import json

    from callcenter.capacity import COST_MAX_AGE_S, measured_cost

    cache = tmp_path / "data" / "capacity" / "asr-cost.json"
    asr = AsrSettings(engine="pocketsphinx")
    cost, source = await measured_cost(asr, cache, now=1000.0)
    assert source == "measured" and 0.0 < cost < 3.0 and cache.is_file()
    again, source = await measured_cost(asr, cache, now=1060.0)
    assert source == "measured earlier" and again == pytest.approx(cost, abs=1e-4)
    other = asr.model_copy(update={"energy_gate_dbfs": -50.0})  # another recognizer setting: its own figure
    assert (await measured_cost(other, cache, now=1100.0))[1] == "measured"
    assert len(json.loads(cache.read_text())) == 2
    assert (await measured_cost(asr, cache, now=1000.0 + COST_MAX_AGE_S + 1))[1] == "measured"  # too old
    cache.write_text("{not json")  # a damaged file is measured over, not an error
    assert (await measured_cost(asr, cache, now=2000.0))[1] == "measured"
    assert (await measured_cost(asr, cache, now=2001.0))[1] == "measured earlier"


@pytest.mark.slow
async def test_the_floor_is_estimated_from_this_machines_pipeline_and_kept(tmp_path):
    """No configured floor: a short-lived process replays the prompt through the real pipeline
    (no recognizer), and the floor is that CPU per call-second times the calibrated factor;
    the next start reads it from the cache; a configured floor is used as it is."""
    from callcenter.capacity import FLOOR_PER_PIPELINE_CPU, floor_for

    cache = tmp_path / "data" / "capacity" / "asr-cost.json"
    floor, source = await floor_for(CapacitySettings(), cache)
    assert source == "measured"
    # a replay takes milliseconds per call-second on any CPU this runs on, never nothing
    assert 0.0005 * FLOOR_PER_PIPELINE_CPU < floor < 0.1 * FLOOR_PER_PIPELINE_CPU
    again, source = await floor_for(CapacitySettings(), cache)
    assert source == "measured earlier" and again == pytest.approx(floor, rel=1e-3)
    assert await floor_for(CapacitySettings(floor_cpu_per_call=0.04), cache) == (0.04, "configured")


async def test_a_floor_that_cannot_be_measured_falls_back_to_the_default(tmp_path, monkeypatch):
    from callcenter import capacity

    async def broken(asr, timeout_s=120.0):
        raise RuntimeError("measuring the pipeline failed: no audio device")

    monkeypatch.setattr(capacity, "measure_in_subprocess", broken)
    assert await capacity.floor_for(CapacitySettings(), tmp_path / "cost.json") == (capacity.FLOOR_DEFAULT, "default")


def test_the_plan_uses_the_measured_floor() -> None:
    settings = CapacitySettings(cores=2, utilization=0.8)
    fast = plan_capacity(settings, asr_cpu_per_audio_s=0.045, slots_per_worker=4, floor_cpu_per_call=0.03)
    slow = plan_capacity(settings, asr_cpu_per_audio_s=0.045, slots_per_worker=4, floor_cpu_per_call=0.06)
    assert (fast.calls, fast.workers, fast.floor_cpu_per_call) == (30, 8, 0.03)  # 1.6 / 0.0525
    assert (slow.calls, slow.workers, slow.floor_cpu_per_call) == (19, 5, 0.06)  # 1.6 / 0.0825
    configured = plan_capacity(CapacitySettings(cores=2, floor_cpu_per_call=0.06), asr_cpu_per_audio_s=0.045,
                               slots_per_worker=4)
    assert configured.calls == slow.calls


def test_live_partials_add_their_budget_for_batch_engines_only() -> None:
    from callcenter.capacity import partials_cost
    from speech.settings import AsrSettings

    assert partials_cost(AsrSettings(engine="whisper", partial_budget=0.1)) == 0.1
    assert partials_cost(AsrSettings(engine="whisper", partials=False)) == 0.0
    assert partials_cost(AsrSettings(engine="pocketsphinx")) == 0.0  # partials come off its stream
    assert partials_cost(AsrSettings(engine="none")) == 0.0
