"""Audio to play into a call: WAV files and DTMF tones as 20 ms chunks at the bridge rate.

Playback is fed by our own media port rather than a pjsua2 file player, so the recording's
agent channel holds exactly what was sent, barge-in is a flag, and there is no per-process
player limit (32 in the wheel).
"""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

DTMF_FREQS: dict[str, tuple[float, float]] = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}
DTMF_LEVEL_DBFS = -10.0
"""Level of each of the two tones of an in-band digit."""


class PromptError(ValueError):
    """A prompt file cannot be played; the message names the file."""


def load_pcm(path: Path, sample_rate: int) -> np.ndarray:
    """Decode a WAV (any rate, mono or stereo → mono) to int16 at ``sample_rate``."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, FileNotFoundError) as exc:
        raise PromptError(f"{path}: cannot read audio ({exc})") from exc
    mono: np.ndarray = data.mean(axis=1)
    if rate != sample_rate:
        g = gcd(rate, sample_rate)
        mono = resample_poly(mono, sample_rate // g, rate // g)
    return np.clip(np.round(mono * 32767.0), -32768, 32767).astype("<i2")


def chunk_pcm(pcm: np.ndarray, samples_per_frame: int) -> list[bytes]:
    """Cut int16 samples into whole frames, zero-padding the last one."""
    if len(pcm) == 0:
        return []
    pad = (-len(pcm)) % samples_per_frame
    if pad:
        pcm = np.concatenate((pcm, np.zeros(pad, dtype="<i2")))
    return [c.tobytes() for c in pcm.reshape(-1, samples_per_frame)]


def dtmf_tone(digit: str, *, sample_rate: int, duration: float = 0.1, gap: float = 0.06) -> np.ndarray:
    """One in-band DTMF digit (two sines) followed by silence, as int16."""
    try:
        low, high = DTMF_FREQS[digit.upper()]
    except KeyError as exc:
        raise ValueError(f"not a DTMF digit: {digit!r}") from exc
    t = np.arange(int(sample_rate * duration)) / sample_rate
    amp = 10 ** (DTMF_LEVEL_DBFS / 20)
    tone = amp * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    out = np.concatenate((tone, np.zeros(int(sample_rate * gap))))
    return np.round(out * 32767.0).astype("<i2")
