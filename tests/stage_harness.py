"""Drive a chain of stages with frames the way the pipeline does, for stage tests.

Events a stage returns go, in order, to the ``process_event`` of every later stage (and what
those return goes further down); ``finish`` is called on each stage in chain order at the end of
the frames, and its events flow down the same way. Scripted events (IVR playback marks, RFC 4733
digits) can be injected at their call time, before the first frame that starts at or after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from speech.events import Event
from speech.frames import FRAME_MS, PIPELINE_RATE, AudioFrame, Party
from speech.stage import Stage


def run_stages(
    stages: Sequence[Stage],
    frames: Iterable[AudioFrame],
    inject: Iterable[Event] = (),
    end: float | None = None,
) -> list[Event]:
    """Feed ``frames`` through ``stages``; return every event emitted, in emission order.

    ``inject``: events entering the chain at the top (seen by every stage's ``process_event``)
    once the call clock reaches their ``t``. ``end``: call time passed to ``finish`` (default:
    end of the last frame).
    """
    out: list[Event] = []
    pending = sorted(inject, key=lambda e: e.t)

    def deliver(event: Event, after: int) -> None:
        out.append(event)
        for j in range(after + 1, len(stages)):
            for new in stages[j].process_event(event):
                deliver(new, j)

    last_end = 0.0
    for frame in frames:
        while pending and pending[0].t <= frame.timestamp + 1e-9:
            deliver(pending.pop(0), -1)
        for i, stage in enumerate(stages):
            for event in stage.process_frame(frame):
                deliver(event, i)
        last_end = max(last_end, frame.end)
    for event in pending:
        deliver(event, -1)
    t_end = last_end if end is None else end
    for i, stage in enumerate(stages):
        for event in stage.finish(t_end):
            deliver(event, i)
    return out


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
