"""Run stages through the real ``CallPipeline`` on the virtual call clock, for stage tests.

Frames go in with ``feed`` (replay's deterministic path), so events propagate exactly as in a
call: what a stage returns reaches every later stage, ``finish`` runs stage by stage at the end.
Scripted events (IVR playback marks, RFC 4733 digits) are pushed at their call time, before the
first frame that starts at or after it. A stage exception fails the test instead of being logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from speech.events import CallEnded, CallStarted, Event
from speech.frames import FRAME_MS, PIPELINE_RATE, AudioFrame, Party
from speech.pipeline import CallPipeline
from speech.stage import Stage

Injected = Event | tuple[float, Event]
"""An event pushed when the clock reaches its ``t``, or ``(at, event)`` to push it at ``at``
(e.g. a SpeechStarted that arrives 0.1 s after the onset it reports)."""


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.caught: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.caught.append(record.exc_info[1])


async def drive(
    stages: Sequence[Stage],
    frames: Iterable[AudioFrame],
    inject: Iterable[Injected] = (),
    end: float | None = None,
    *,
    call_id: str = "",
) -> list[Event]:
    """Feed ``frames`` through a ``CallPipeline`` of ``stages``; return its events without the
    CallStarted/CallEnded the pipeline adds itself. ``end``: the call's duration (default: the
    end of the last frame)."""
    timed = sorted(((e.t, e) if isinstance(e, Event) else e for e in inject), key=lambda p: p[0])
    pipeline = CallPipeline(call_id, stages)
    errors = _Errors()
    logger = logging.getLogger("speech.pipeline")
    logger.addHandler(errors)
    try:
        await pipeline.start()
        for frame in frames:
            while timed and timed[0][0] <= frame.timestamp + 1e-9:
                pipeline.push_event(timed.pop(0)[1])
            await pipeline.feed(frame)
        for _, event in timed:
            pipeline.push_event(event)
        events = await pipeline.end(duration=end)
    finally:
        logger.removeHandler(errors)
    if errors.caught:
        raise errors.caught[0]
    assert isinstance(events[0], CallStarted) and isinstance(events[-1], CallEnded)
    return events[1:-1]


def run_stages(
    stages: Sequence[Stage],
    frames: Iterable[AudioFrame],
    inject: Iterable[Injected] = (),
    end: float | None = None,
) -> list[Event]:
    """:func:`drive` for synchronous tests: every event emitted, in emission order."""
    return asyncio.run(drive(stages, frames, inject, end))


def frames_from_tracks(tracks: dict[Party, np.ndarray], frame_ms: int = FRAME_MS) -> list[AudioFrame]:
    """Frames from int16 tracks at the pipeline rate, parties interleaved per slot."""
    step = PIPELINE_RATE * frame_ms // 1000
    total = max(len(t) for t in tracks.values())
    frames: list[AudioFrame] = []
    for start in range(0, total - total % step, step):
        for party, track in tracks.items():
            chunk = track[start : start + step]
            if len(chunk) < step:
                chunk = np.pad(chunk, (0, step - len(chunk)))
            frames.append(AudioFrame(chunk.astype("<i2").tobytes(), PIPELINE_RATE, start / PIPELINE_RATE, party))
    return frames


def of_type(events: Iterable[Event], cls: type[Event]) -> list:
    """The events of one class, in order."""
    return [e for e in events if isinstance(e, cls)]


# --- audio helpers for building test calls with known speech intervals --------------------------


def read_int16(path: str | Path) -> np.ndarray:
    """A mono 16 kHz WAV (e.g. from the ``tts`` fixture) as int16 samples."""
    data, rate = sf.read(str(path), dtype="int16")
    assert rate == PIPELINE_RATE, f"{path}: {rate} Hz, expected {PIPELINE_RATE}"
    return data


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * PIPELINE_RATE), dtype=np.int16)


def speech_bounds(x: np.ndarray, floor_db: float = 40.0) -> tuple[float, float]:
    """(first, last) time in seconds of audible signal: 10 ms blocks within ``floor_db`` of the
    loudest block. The ground truth VAD results are compared with."""
    block = PIPELINE_RATE // 100
    n = len(x) // block
    rms = np.sqrt(np.mean(x[: n * block].astype(np.float64).reshape(n, block) ** 2, axis=1))
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (-floor_db / 20))
    return loud[0] * block / PIPELINE_RATE, (loud[-1] + 1) * block / PIPELINE_RATE


def add_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise at ``snr_db`` below the RMS of the signal's audible part, over all of ``x``."""
    rng = np.random.default_rng(seed)
    xf = x.astype(np.float64)
    block = PIPELINE_RATE // 100
    n = len(xf) // block
    rms = np.sqrt(np.mean(xf[: n * block].reshape(n, block) ** 2, axis=1))
    signal_rms = np.sqrt(np.mean(rms[rms >= rms.max() * 0.01] ** 2))
    noise = rng.normal(0.0, signal_rms * 10 ** (-snr_db / 20), len(xf))
    return np.clip(np.round(xf + noise), -32768, 32767).astype(np.int16)


def write_wav(path: str | Path, tracks: list[np.ndarray], rate: int = PIPELINE_RATE) -> None:
    """int16 tracks (one per channel, padded to the longest) to a WAV file."""
    n = max(len(t) for t in tracks)
    data = np.stack([np.pad(t, (0, n - len(t))) for t in tracks], axis=1)
    sf.write(str(path), data, rate, subtype="PCM_16")
