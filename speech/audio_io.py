"""Audio files in, pipeline frames out: the replay edge.

Reads WAV/FLAC/OGG with soundfile, checks it, resamples to the pipeline rate with a polyphase
filter and cuts 20 ms frames per party. Every problem becomes one ``AudioFileError`` naming the
file and what is wrong, so a batch can report it and go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from speech.frames import FRAME_MS, PIPELINE_RATE, AudioFrame, Party

MIN_RATE = 8000
MAX_RATE = 192000


class AudioFileError(ValueError):
    """A recording cannot be replayed; the message names the file and the problem."""


@dataclass(frozen=True)
class Recording:
    """A decoded recording at the pipeline rate: one int16 track per party."""

    path: Path
    source_rate: int
    tracks: dict[Party, np.ndarray]

    @property
    def duration(self) -> float:
        return max(len(t) for t in self.tracks.values()) / PIPELINE_RATE

    def frames(self, frame_ms: int = FRAME_MS) -> Iterator[AudioFrame]:
        """Frames in call-time order, parties interleaved per 20 ms slot."""
        step = PIPELINE_RATE * frame_ms // 1000
        total = max(len(t) for t in self.tracks.values())
        for start in range(0, total - total % step if total >= step else 0, step):
            ts = start / PIPELINE_RATE
            for party, track in self.tracks.items():
                chunk = track[start : start + step]
                if len(chunk) < step:
                    chunk = np.pad(chunk, (0, step - len(chunk)))
                yield AudioFrame(chunk.astype("<i2").tobytes(), PIPELINE_RATE, ts, party)


def resample(samples: np.ndarray, from_rate: int, to_rate: int = PIPELINE_RATE) -> np.ndarray:
    """Float or int16 samples to float32 at ``to_rate`` (polyphase, anti-aliased)."""
    x = samples.astype(np.float32)
    if from_rate == to_rate:
        return x
    g = gcd(from_rate, to_rate)
    y: np.ndarray = resample_poly(x, to_rate // g, from_rate // g)
    return y.astype(np.float32)


def to_int16(x: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] to int16, clipped."""
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def load_recording(path: str | Path, *, stereo_parties: tuple[Party, Party] = (Party.AGENT, Party.CALLER)) -> Recording:
    """Decode ``path``: mono is the caller; stereo is (agent, caller) by default."""
    p = Path(path)
    if not p.exists():
        raise AudioFileError(f"{p}: file not found")
    if p.is_dir():
        raise AudioFileError(f"{p}: is a directory, not an audio file")
    if p.stat().st_size == 0:
        raise AudioFileError(f"{p}: file is empty")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFileError(f"{p}: not a readable audio file ({_short(exc)})") from exc
    if info.samplerate < MIN_RATE or info.samplerate > MAX_RATE:
        raise AudioFileError(f"{p}: unsupported sample rate {info.samplerate} Hz (need {MIN_RATE}-{MAX_RATE})")
    if info.channels not in (1, 2):
        raise AudioFileError(f"{p}: {info.channels} channels; need mono (caller) or stereo (agent, caller)")
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFileError(f"{p}: truncated or corrupt audio ({_short(exc)})") from exc
    if data.shape[0] == 0:
        raise AudioFileError(f"{p}: contains no audio frames")
    if data.shape[0] < info.frames * 0.98 and info.frames > 0:
        raise AudioFileError(f"{p}: truncated: header says {info.frames} frames, found {data.shape[0]}")
    missing = _wav_missing_bytes(p)
    if missing > 0:
        raise AudioFileError(f"{p}: truncated: the WAV header promises {missing} more bytes of audio")
    if not np.all(np.isfinite(data)):
        raise AudioFileError(f"{p}: contains NaN or infinite samples")
    parties = (Party.CALLER,) if data.shape[1] == 1 else stereo_parties
    tracks = {party: to_int16(resample(data[:, i], rate)) for i, party in enumerate(parties)}
    return Recording(path=p, source_rate=rate, tracks=tracks)


def _wav_missing_bytes(path: Path) -> int:
    """Bytes a RIFF/WAVE file's data chunk declares beyond the end of the file (libsndfile
    silently shortens truncated files, which would replay as a shorter, "good" call)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk = fh.read(8)
            cid, length = chunk[:4], int.from_bytes(chunk[4:8], "little")
            if cid == b"data":
                if length in (0, 0xFFFFFFFF):  # streaming writers leave it open
                    return 0
                return max(0, pos + 8 + length - size)
            pos += 8 + length + (length & 1)
    return 0


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]
