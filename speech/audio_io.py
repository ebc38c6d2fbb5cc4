"""Audio files in, pipeline frames out: the replay edge.

Reads WAV/FLAC/OGG/MP3 with soundfile, checks it, resamples to the pipeline rate with a polyphase
filter and cuts 20 ms frames per party. Every problem becomes one ``AudioFileError`` naming the
file and what is wrong, so a batch can report it and go on.

``open_recording`` streams: the file is decoded and resampled a block at a time, so memory does
not grow with the recording's length (a two-hour call replays in the same space as a minute).
Each block is resampled with ``resample_poly`` over the block plus enough neighbouring input for
the filter, cut at multiples of the decimation factor, so the output is the same as resampling
the whole file at once. ``load_recording`` gives the whole recording in memory (short files,
tests, tools).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from math import ceil, gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from speech.frames import FRAME_MS, PIPELINE_RATE, AudioFrame, Party

MIN_RATE = 8000
MAX_RATE = 192000
BLOCK_S = 5.0
"""Seconds of source audio decoded and resampled at a time (~2 MB for 48 kHz stereo)."""
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif",
                            ".aifc", ".au", ".caf", ".w64", ".rf64"})
"""File names a folder replay picks up: what libsndfile decodes (``.mp3`` since 1.1)."""
_PCM_WAV = {"PCM_16", "PCM_24", "PCM_32", "PCM_U8", "PCM_S8", "ULAW", "ALAW"}


class AudioFileError(ValueError):
    """A recording cannot be replayed; the message names the file and the problem."""


def _frames(tracks: list[np.ndarray], parties: tuple[Party, ...], start: int, step: int) -> Iterator[AudioFrame]:
    """Whole ``step``-sample frames of equally long int16 tracks, parties interleaved per slot."""
    for off in range(0, len(tracks[0]) - step + 1, step):
        ts = (start + off) / PIPELINE_RATE
        for party, track in zip(parties, tracks, strict=True):
            yield AudioFrame(track[off : off + step].astype("<i2").tobytes(), PIPELINE_RATE, ts, party)


@dataclass(frozen=True)
class Recording:
    """A decoded recording at the pipeline rate: one int16 track per party."""

    path: Path
    source_rate: int
    tracks: dict[Party, np.ndarray]

    @property
    def parties(self) -> tuple[Party, ...]:
        return tuple(self.tracks)

    @property
    def duration(self) -> float:
        return max(len(t) for t in self.tracks.values()) / PIPELINE_RATE

    def frames(self, frame_ms: int = FRAME_MS) -> Iterator[AudioFrame]:
        """Frames in call-time order, parties interleaved per 20 ms slot."""
        step = PIPELINE_RATE * frame_ms // 1000
        total = max(len(t) for t in self.tracks.values())
        tracks = [np.pad(t, (0, total - len(t))) for t in self.tracks.values()]
        yield from _frames(tracks, self.parties, 0, step)


@dataclass(frozen=True)
class RecordingStream:
    """A checked recording that is decoded, resampled and framed block by block."""

    path: Path
    source_rate: int
    parties: tuple[Party, ...]
    source_frames: int
    block_s: float = BLOCK_S

    @property
    def duration(self) -> float:
        return _out_len(self.source_frames, self.source_rate) / PIPELINE_RATE

    def blocks(self) -> Iterator[list[np.ndarray]]:
        """int16 samples at the pipeline rate, one array per party, a block at a time."""
        try:
            with sf.SoundFile(str(self.path)) as f:
                for block in _resampled(f, self.source_rate, self.block_s):
                    yield [to_int16(block[:, i]) for i in range(len(self.parties))]
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioFileError(f"{self.path}: truncated or corrupt audio ({_short(exc)})") from exc

    def frames(self, frame_ms: int = FRAME_MS) -> Iterator[AudioFrame]:
        """Frames in call-time order, parties interleaved per 20 ms slot (a last partial frame
        is dropped, as ``Recording.frames`` does)."""
        step = PIPELINE_RATE * frame_ms // 1000
        carry: list[np.ndarray] = [np.zeros(0, np.int16) for _ in self.parties]
        done = 0
        for block in self.blocks():
            tracks = [np.concatenate([c, b]) for c, b in zip(carry, block, strict=True)]
            whole = len(tracks[0]) - len(tracks[0]) % step
            yield from _frames([t[:whole] for t in tracks], self.parties, done, step)
            carry = [t[whole:] for t in tracks]
            done += whole

    def load(self) -> Recording:
        """The whole recording in memory."""
        blocks = list(self.blocks())
        tracks = {p: np.concatenate([b[i] for b in blocks]) if blocks else np.zeros(0, np.int16)
                  for i, p in enumerate(self.parties)}
        return Recording(path=self.path, source_rate=self.source_rate, tracks=tracks)


def _out_len(frames: int, rate: int) -> int:
    """Samples at the pipeline rate for ``frames`` source samples (as ``resample_poly`` gives)."""
    g = gcd(rate, PIPELINE_RATE)
    return ceil(frames * (PIPELINE_RATE // g) / (rate // g))


def _resampled(f: sf.SoundFile, rate: int, block_s: float) -> Iterator[np.ndarray]:
    """float32 blocks (samples, channels) at the pipeline rate, equal to resampling at once.

    A block's input starts and ends at multiples of ``down``, so its first output sample is a
    whole output index; ``pad`` input samples on each side (more than the filter's half length)
    make the kept outputs exactly those of the whole-file filter.
    """
    g = gcd(rate, PIPELINE_RATE)
    up, down = PIPELINE_RATE // g, rate // g
    size = down * max(1, ceil(rate * block_s / down))
    if up == down:
        yield from f.blocks(blocksize=size, dtype="float32", always_2d=True)
        return
    half_len = 10 * max(up, down)  # resample_poly's default filter
    pad = down * ceil((half_len / up + 2) / down)
    buf = np.zeros((0, f.channels), np.float32)
    buf_start = start = 0  # source indices of buf[0] and of the next block
    eof = False
    while True:
        while not eof and buf_start + len(buf) < start + size + pad:
            chunk = f.read(size, dtype="float32", always_2d=True)
            eof = len(chunk) == 0
            buf = np.concatenate([buf, chunk])
        end = min(start + size, buf_start + len(buf))
        if end <= start:
            return
        seg_from = max(0, start - pad)
        buf, buf_start = buf[seg_from - buf_start :], seg_from
        seg = buf[: min(len(buf), end + pad - seg_from)]
        first = (start - seg_from) * up // down
        count = ceil((end - start) * up / down)
        out = [resample_poly(seg[:, c], up, down)[first : first + count] for c in range(f.channels)]
        yield np.stack(out, axis=1).astype(np.float32)
        start = end


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


def open_recording(
    path: str | Path,
    *,
    stereo_parties: tuple[Party, Party] = (Party.AGENT, Party.CALLER),
    block_s: float = BLOCK_S,
) -> RecordingStream:
    """Check ``path`` and return it ready to stream: mono is the caller; stereo is (agent,
    caller) by default. Bad files fail here, before any frame is produced."""
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
    missing = _wav_missing_bytes(p)
    if missing > 0:
        raise AudioFileError(f"{p}: truncated: the WAV header promises {missing} more bytes of audio")
    if info.format in ("WAV", "WAVEX", "RF64", "W64") and info.subtype in _PCM_WAV:
        frames = info.frames  # integer PCM: the header check above is the whole truth
    else:
        frames = _check_decodes(p, info.frames)
    if frames == 0:
        raise AudioFileError(f"{p}: contains no audio frames")
    parties = (Party.CALLER,) if info.channels == 1 else stereo_parties
    return RecordingStream(p, info.samplerate, parties, frames, block_s)


def load_recording(path: str | Path, *, stereo_parties: tuple[Party, Party] = (Party.AGENT, Party.CALLER)) -> Recording:
    """Decode ``path`` whole: mono is the caller; stereo is (agent, caller) by default."""
    return open_recording(path, stereo_parties=stereo_parties).load()


def _check_decodes(p: Path, declared: int) -> int:
    """Decode once, a block at a time: the frame count, or the error of a truncated, corrupt or
    non-finite file (compressed formats show truncation only when decoded)."""
    frames = 0
    try:
        with sf.SoundFile(str(p)) as f:
            for block in f.blocks(blocksize=65536, dtype="float32", always_2d=True):
                if not np.all(np.isfinite(block)):
                    raise AudioFileError(f"{p}: contains NaN or infinite samples")
                frames += len(block)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFileError(f"{p}: truncated or corrupt audio ({_short(exc)})") from exc
    if frames and declared > 0 and frames < declared * 0.98:
        raise AudioFileError(f"{p}: truncated: header says {declared} frames, found {frames}")
    return frames


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
