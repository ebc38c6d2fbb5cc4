"""Partials wait while the machine's cores are contended (Linux PSI), finals never do."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from speech.asr.base import BatchEngine, Hypothesis
from speech.asr_stage import AsrStage
from speech.cpu_pressure import CpuPressure, pressure_file, some_avg10, some_total
from speech.events import Event, FinalTranscript, SpeechEnded, SpeechStarted, Word
from speech.frames import AudioFrame, Party
from speech.pipeline import CallPipeline
from speech.settings import AsrSettings
from speech.stage import Stage

PSI = "some avg10={some:.2f} avg60=3.00 avg300=1.00 total=123456\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"


def test_reads_some_avg10_and_total():
    assert some_avg10(PSI.format(some=37.5)) == 37.5
    assert some_total(PSI.format(some=37.5)) == 123456
    assert some_avg10("full avg10=9.00 avg60=0.00 avg300=0.00 total=0\n") is None
    assert some_avg10("some avg10=oops\n") is None


def test_pressure_is_the_stall_time_between_readings(tmp_path: Path):
    """The first reading is ``avg10``; later ones the stall time accrued since the last reading
    over the time between them; within ``max_age_s`` the last figure; no file: no reading."""
    f = tmp_path / "cpu.pressure"
    f.write_text(PSI.format(some=10.0).replace("total=123456", "total=1000000"))
    now = [100.0]
    p = CpuPressure(f, max_age_s=0.5, clock=lambda: now[0])
    assert p.percent() == 10.0
    f.write_text(PSI.format(some=10.0).replace("total=123456", "total=1400000"))  # 0.4 s stalled...
    now[0] += 0.2
    assert p.percent() == 10.0  # within max_age: the last figure
    now[0] += 0.8  # ... in 1 s
    assert p.percent() == pytest.approx(40.0)
    f.unlink()
    now[0] += 1.0
    assert p.percent() is None
    assert CpuPressure(tmp_path / "absent", clock=lambda: 0.0).percent() is None


def test_this_machine_has_a_reading_or_says_it_has_none():
    path = pressure_file()
    value = CpuPressure(path).percent() if path is not None else None
    assert (path is None and value is None) or (value is not None and 0.0 <= value <= 100.0)


class Marked(Stage):
    name = "marks"

    def __init__(self, end: float) -> None:
        self.end, self.state = end, 0

    def process_frame(self, frame: AudioFrame) -> list[Event]:
        if self.state == 0:
            self.state = 1
            return [SpeechStarted(t=frame.timestamp, party=frame.party)]
        if self.state == 1 and frame.timestamp >= self.end:
            self.state = 2
            return [SpeechEnded(t=frame.timestamp, start=0.0, duration=frame.timestamp, party=frame.party)]
        return []


class CountingBatch(BatchEngine):
    name = "counting"
    concurrency = 2

    def __init__(self) -> None:
        self.partials = 0
        self.finals = 0

    def decode(self, audio: np.ndarray, *, final: bool, hints=None) -> Hypothesis:
        time.sleep(0.01)
        self.partials += not final
        self.finals += final
        return Hypothesis(text="word", words=(Word("word", 0, 0, 1),), final=final)


class SteadyPressure(CpuPressure):
    """The machine held at one pressure."""

    def __init__(self, value: float | None) -> None:
        super().__init__(None)
        self.value = value

    def percent(self) -> float | None:
        return self.value


async def _partials_at(tmp_path: Path, pressure: float, limit: float) -> tuple[int, int]:
    engine = CountingBatch()
    engine.pool.pressure = SteadyPressure(pressure)
    asr = AsrStage(engine, settings=AsrSettings(partial_interval_s=0.3, partial_budget=10.0,
                                                partial_max_cpu_pressure=limit))
    data = (np.random.default_rng(2).standard_normal(16000 * 2) * 3000).astype(np.int16)
    pipeline = CallPipeline("call-pressure", [Marked(1.9), asr])
    await pipeline.start()
    step = 320
    for i in range(0, len(data) - step + 1, step):
        pipeline.push_frame(AudioFrame(data[i : i + step].tobytes(), 16000, i / 16000, Party.CALLER))
        await asyncio.sleep(0.01)
    events = await pipeline.end()
    engine.close()
    assert len([e for e in events if isinstance(e, FinalTranscript)]) == 1
    return engine.partials, engine.finals


async def test_partials_wait_while_the_cores_are_contended(tmp_path: Path):
    calm, _ = await _partials_at(tmp_path, pressure=5.0, limit=40.0)
    busy, finals = await _partials_at(tmp_path, pressure=80.0, limit=40.0)
    unlimited, _ = await _partials_at(tmp_path, pressure=80.0, limit=100.0)
    assert calm >= 3 and unlimited >= 3
    assert busy == 0 and finals == 1  # the final is decoded whatever the pressure


def test_worker_stats_show_the_pressure_partials_wait_on():
    engine = CountingBatch()
    engine.pool.pressure = SteadyPressure(42.04)
    assert engine.decode_stats()["cpu_pressure"] == 42.0
    engine.pool.pressure = SteadyPressure(None)  # no PSI on this host
    assert "cpu_pressure" not in engine.decode_stats()
    engine.close()
