"""Audio frames that state their own format.

Every chunk of audio crossing a module boundary says its rate, width, channels, when it starts
on the call's clock and which party spoke it, so no stage has to guess (Wyoming's rule).
Resampling and transcoding happen only at the edges: telephony in, engines in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

PIPELINE_RATE = 16000
"""Sample rate of everything inside the pipeline (Hz). Edges resample to it."""
FRAME_MS = 20
"""Frame length inside the pipeline (ms); webrtcvad accepts 10, 20 or 30."""
SAMPLE_WIDTH = 2
"""Signed 16-bit little-endian PCM."""


class Party(str, Enum):
    """Who is speaking on a channel."""

    CALLER = "caller"
    """The customer who dialed in."""
    AGENT = "agent"
    """The contact-center agent (or the IVR's prompts played into the call)."""


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """A chunk of mono 16-bit PCM from one party.

    ``timestamp`` is seconds since the call started on the call's own clock (virtual in replay,
    derived from frame counts live), never wall time.
    """

    pcm: bytes
    sample_rate: int
    timestamp: float
    party: Party = Party.CALLER
    channels: int = 1
    sample_width: int = SAMPLE_WIDTH
    far_end_dbfs: float | None = None
    """Level (dBFS) of what we played into this party's line during the same tick (a prompt,
    hold music), i.e. what may come back on this channel as echo; None when the edge does not
    know (replay: the other channel of a 2-channel recording gives it instead)."""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    num_samples: int = field(init=False, repr=False, compare=False)
    duration: float = field(init=False, repr=False, compare=False)
    """Length in seconds."""
    end: float = field(init=False, repr=False, compare=False)
    """Call time at the end of this frame."""
    _mean_square: float = field(init=False, repr=False, compare=False, default=-1.0)
    # computed once: every stage reads them for every frame (seven reads a frame in a replay,
    # ~9 % of the stages' time when they were properties)

    def __post_init__(self) -> None:
        if self.channels != 1:
            raise ValueError("pipeline frames are mono; split channels at the edge")
        if self.sample_width != SAMPLE_WIDTH:
            raise ValueError("pipeline frames are 16-bit PCM")
        if len(self.pcm) % SAMPLE_WIDTH:
            raise ValueError("PCM length is not a whole number of samples")
        n = len(self.pcm) // SAMPLE_WIDTH
        duration = n / self.sample_rate
        object.__setattr__(self, "num_samples", n)
        object.__setattr__(self, "duration", duration)
        object.__setattr__(self, "end", self.timestamp + duration)

    def samples(self) -> np.ndarray:
        """The PCM as an int16 array (a view, no copy)."""
        return np.frombuffer(self.pcm, dtype="<i2")

    def mean_square(self) -> float:
        """Mean of the squared samples, full scale 1.0; computed once (the VAD and in-band DTMF
        both read it)."""
        ms = self._mean_square
        if ms < 0.0:
            ms = _mean_square(self.pcm)
            object.__setattr__(self, "_mean_square", ms)
        return ms

    def dbfs(self) -> float:
        """RMS level in dBFS, as :func:`pcm_dbfs`."""
        return _dbfs(self.mean_square())

    def floats(self) -> np.ndarray:
        """The PCM as float32 in [-1, 1)."""
        return self.samples().astype(np.float32) / 32768.0


SILENT_DBFS = -100.0
"""Level given to digital silence (and the floor of every level)."""


_FULL_SCALE_SQ = 32768.0 * 32768.0


def _mean_square(pcm: bytes) -> float:
    """Mean squared sample of 16-bit PCM, full scale 1.0 (0.0 for no samples)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if not len(x):
        return 0.0
    return float(np.dot(x, x)) / len(x) / _FULL_SCALE_SQ  # a dot product: a fifth of np.mean's cost


def _dbfs(mean_square: float) -> float:
    if mean_square <= 0.0:
        return SILENT_DBFS
    return max(SILENT_DBFS, float(10.0 * np.log10(mean_square)))


def pcm_dbfs(pcm: bytes) -> float:
    """RMS level of 16-bit PCM in dBFS (``SILENT_DBFS`` for digital silence or no samples)."""
    return _dbfs(_mean_square(pcm))


def frame_bytes(sample_rate: int = PIPELINE_RATE, frame_ms: int = FRAME_MS) -> int:
    """Bytes in one frame of 16-bit mono PCM."""
    return sample_rate * frame_ms // 1000 * SAMPLE_WIDTH
