"""Prosody of one utterance: pitch, loudness and speaking rate from its samples.

These are the acoustic half of the tone signal. They are only meaningful relative to the same
caller (voices and phone lines differ far more than one voice under stress does), so this module
measures, and ``speech.tone`` compares against the caller's own baseline.

Pitch uses ``librosa.yin`` on audio decimated to 8 kHz (~1.5 ms per audio second); voicing is
decided by energy and zero-crossing rate, because yin reports a pitch for every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks, resample_poly

from speech.numba_lock import numba_lock

with numba_lock():  # librosa compiles numba kernels into its cache as it is imported
    import librosa

ANALYSIS_RATE = 8000
"""Rate pitch is tracked at: telephone band, and yin costs half of what it does at 16 kHz."""
HOP_S = 0.010
"""Analysis hop (s)."""


@dataclass(frozen=True, slots=True)
class ProsodyConfig:
    """Thresholds of the measurement. Defaults suit telephone speech."""

    fmin_hz: float = 60.0
    fmax_hz: float = 400.0
    voiced_floor_db: float = 25.0
    """A frame is a voicing candidate within this many dB of the utterance's loudest frame."""
    voiced_max_zcr: float = 0.25
    """Zero crossings per sample at 8 kHz above which a frame is unvoiced (fricatives, noise)."""
    silence_dbfs: float = -60.0
    """Frames quieter than this never count as speech."""
    peak_prominence_db: float = 3.0
    """Dip in the energy envelope (dB) that separates two syllable-like peaks."""
    peak_min_gap_s: float = 0.08
    """Syllables are at least this far apart (~12 per second at most)."""
    envelope_smooth_s: float = 0.04
    """Moving-average window of the energy envelope used for syllable peaks."""


@dataclass(frozen=True, slots=True)
class Prosody:
    """Measured prosody of one utterance. NaN where the utterance had no voiced audio."""

    duration_s: float
    """Audio analysed (s)."""
    active_s: float
    """From the first to the last frame above the silence floor (s): the speaking time."""
    voiced_s: float
    """Frames judged voiced (s)."""
    pitch_hz: float
    """Median F0 of voiced frames."""
    pitch_spread_st: float
    """Robust spread of F0 in semitones (IQR / 1.349): monotone vs. animated."""
    loudness_db: float
    """RMS level of the voiced part, dB full scale."""
    syllable_rate: float
    """Syllable-like energy peaks per second of speaking time."""

    @property
    def has_voice(self) -> bool:
        return self.voiced_s > 0 and bool(np.isfinite(self.pitch_hz))


def warm_up() -> None:
    """librosa's first ``yin`` call in a process takes ~1 s (lazy imports and set-up); a live
    call's first utterance would pay it on the event loop, delaying that call's transcript and
    IVR choice. Processes that serve calls run this once before the first one."""
    t = np.arange(ANALYSIS_RATE // 2, dtype=np.float32) / ANALYSIS_RATE
    analyze(0.3 * np.sin(2 * np.pi * 150 * t), ANALYSIS_RATE)


def precompile() -> None:
    """Compile librosa's numba kernels for every input type the pipeline passes, into their
    on-disk cache (``scripts/setup.sh`` runs this once after installing, before any service
    starts). Processes compiling at the same moment corrupt numba's cache even one at a time
    under ``numba_lock`` (1 crash in 30 cold starts of 3 processes); with the cache complete,
    processes only load it (0 crashes in 36)."""
    for rate in (ANALYSIS_RATE, 16000):
        t = np.arange(rate // 2) / rate
        wave = np.sin(2 * np.pi * 150 * t)
        for x in (0.3 * wave, (0.3 * wave).astype(np.float32), (8000 * wave).astype(np.int16)):
            analyze(x, rate)


def analyze(samples: np.ndarray, sample_rate: int, config: ProsodyConfig | None = None) -> Prosody:
    """Measure ``samples`` (int16 or float in [-1, 1], mono) of one utterance."""
    cfg = config or ProsodyConfig()
    x = _to_float(samples)
    if sample_rate != ANALYSIS_RATE:
        x = resample_poly(x, ANALYSIS_RATE, sample_rate).astype(np.float32)
    hop = int(ANALYSIS_RATE * HOP_S)
    frame_len = _frame_length(cfg.fmin_hz)
    duration = len(x) / ANALYSIS_RATE
    if len(x) < frame_len:
        return _empty(duration)

    frames = librosa.util.frame(np.pad(x, (frame_len // 2, frame_len // 2)), frame_length=frame_len, hop_length=hop)
    power = np.mean(frames.astype(np.float64) ** 2, axis=0)
    level_db = 10.0 * np.log10(power + 1e-12)
    signs = np.signbit(frames)
    zcr = np.mean(signs[1:] != signs[:-1], axis=0)

    audible = level_db > cfg.silence_dbfs
    if not audible.any():
        return _empty(duration)
    idx = np.flatnonzero(audible)
    active_s = float(idx[-1] - idx[0] + 1) * HOP_S

    voiced = audible & (level_db >= level_db.max() - cfg.voiced_floor_db) & (zcr <= cfg.voiced_max_zcr)
    with numba_lock():  # new argument types compile (and cache) kernels
        f0 = librosa.yin(x, fmin=cfg.fmin_hz, fmax=cfg.fmax_hz, sr=ANALYSIS_RATE,
                         frame_length=frame_len, hop_length=hop)
    n = min(len(f0), len(voiced))
    f0, voiced, power = f0[:n], voiced[:n], power[:n]
    # yin clamps to its search range when it finds no period: those frames are not voiced.
    voiced &= (f0 > cfg.fmin_hz * 1.02) & (f0 < cfg.fmax_hz * 0.98)
    if not voiced.any():
        return Prosody(duration, active_s, 0.0, float("nan"), float("nan"), float("nan"),
                       _syllable_rate(level_db, active_s, cfg))
    semis = 12.0 * np.log2(f0[voiced])
    q75, q25 = np.percentile(semis, [75, 25])
    return Prosody(
        duration_s=duration,
        active_s=active_s,
        voiced_s=float(voiced.sum()) * HOP_S,
        pitch_hz=float(np.median(f0[voiced])),
        pitch_spread_st=float((q75 - q25) / 1.349),
        loudness_db=float(10.0 * np.log10(np.mean(power[voiced]) + 1e-12)),
        syllable_rate=_syllable_rate(level_db, active_s, cfg),
    )


def _syllable_rate(level_db: np.ndarray, active_s: float, cfg: ProsodyConfig) -> float:
    """Peaks of the smoothed energy envelope per second: a transcript-free speaking-rate proxy."""
    if active_s <= 0:
        return 0.0
    width = max(1, round(cfg.envelope_smooth_s / HOP_S))
    env = np.convolve(np.maximum(level_db, cfg.silence_dbfs), np.ones(width) / width, mode="same")
    floor = env.max() - cfg.voiced_floor_db
    peaks, _ = find_peaks(env, height=floor, prominence=cfg.peak_prominence_db,
                          distance=max(1, round(cfg.peak_min_gap_s / HOP_S)))
    return float(len(peaks) / active_s)


def _frame_length(fmin_hz: float) -> int:
    """Smallest power of two holding two periods of the lowest pitch (yin needs > one)."""
    need = 2 * ANALYSIS_RATE / fmin_hz
    return int(2 ** np.ceil(np.log2(need)))


def _to_float(samples: np.ndarray) -> np.ndarray:
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    return np.asarray(samples, dtype=np.float32)


def _empty(duration: float) -> Prosody:
    nan = float("nan")
    return Prosody(duration, 0.0, 0.0, nan, nan, nan, 0.0)


@dataclass(frozen=True, slots=True)
class NeutralProsody:
    """Typical values, compared against before the caller's own baseline exists."""

    pitch_hz: float | None = None
    """No default: voices differ by an octave, so absolute pitch says nothing without a baseline."""
    pitch_spread_st: float = 2.0
    loudness_db: float = -20.0
    """A well-levelled telephone voice (dBFS)."""
    words_per_s: float | None = 2.5
    """~150 words per minute, conversational English; None when unknown."""
    syllable_rate: float = 4.0


@dataclass(frozen=True, slots=True)
class ProsodyDelta:
    """One utterance against the reference. Relative changes: 0.38 means +38%. NaN: unknown."""

    pitch_change: float
    spread_change: float
    loudness_change_db: float
    rate_change: float
    rate_basis: str
    """``words`` (transcript) or ``syllables`` (energy peaks): rates compare like with like."""
    reference: str
    """``baseline`` (complete), ``partial`` (some baseline utterances) or ``defaults``."""


class ProsodyBaseline:
    """The caller's own normal voice: the mean of their first ``size`` usable utterances."""

    def __init__(self, size: int, neutral: NeutralProsody | None = None, min_voiced_s: float = 0.3) -> None:
        self.size = size
        self.neutral = neutral or NeutralProsody()
        self.min_voiced_s = min_voiced_s
        self._items: list[tuple[Prosody, float | None]] = []

    @property
    def count(self) -> int:
        return len(self._items)

    @property
    def complete(self) -> bool:
        return len(self._items) >= self.size

    def usable(self, p: Prosody) -> bool:
        """Enough voiced audio to say anything about the voice (a short "yes" is not)."""
        return p.has_voice and p.voiced_s >= self.min_voiced_s

    def add(self, p: Prosody, words_per_s: float | None = None) -> bool:
        """Take ``p`` into the baseline if it is still forming and ``p`` is usable."""
        if self.complete or not self.usable(p):
            return False
        self._items.append((p, words_per_s))
        return True

    def compare(self, p: Prosody, words_per_s: float | None = None) -> ProsodyDelta:
        ref = self._reference()
        pitch = _rel(p.pitch_hz, ref.pitch_hz)
        spread = _rel(p.pitch_spread_st, ref.pitch_spread_st)
        loud = p.loudness_db - ref.loudness_db if np.isfinite(p.loudness_db) else float("nan")
        if words_per_s and ref.words_per_s:
            rate, basis = _rel(words_per_s, ref.words_per_s), "words"
        else:
            rate, basis = _rel(p.syllable_rate, ref.syllable_rate), "syllables"
        kind = "baseline" if self.complete else ("partial" if self._items else "defaults")
        return ProsodyDelta(pitch, spread, loud, rate, basis, kind)

    def _reference(self) -> NeutralProsody:
        if not self._items:
            return self.neutral
        ps = [p for p, _ in self._items]
        wps = [w for _, w in self._items if w]
        return NeutralProsody(
            pitch_hz=float(2.0 ** np.mean([np.log2(p.pitch_hz) for p in ps])),
            pitch_spread_st=float(np.mean([p.pitch_spread_st for p in ps])),
            loudness_db=float(np.mean([p.loudness_db for p in ps])),
            words_per_s=float(np.mean(wps)) if wps else None,
            syllable_rate=float(np.mean([p.syllable_rate for p in ps])),
        )


def _rel(value: float, ref: float | None) -> float:
    if ref is None or not np.isfinite(value) or not ref or not np.isfinite(ref) or ref <= 0:
        return float("nan")
    return float(value / ref - 1.0)
