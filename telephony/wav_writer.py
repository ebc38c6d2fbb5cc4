"""A WAV file that is valid at every flush: the header sizes are patched after each write.

A crashed process still leaves a playable recording of the call up to the last flush, which a
writer that only fixes the header on close (``wave``, libsndfile) does not.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from telephony.recording_crypto import open_private

_HEADER_BYTES = 44


class IncrementalWav:
    """16-bit PCM WAV written in chunks of interleaved samples."""

    def __init__(self, path: Path, *, sample_rate: int, channels: int) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.channels = channels
        self._data_bytes = 0
        self._fh = open_private(self.path)  # owner-only: a recording is personal data
        self._fh.write(self._header())

    def _header(self) -> bytes:
        block = self.channels * 2
        return struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            b"RIFF", 36 + self._data_bytes, b"WAVE", b"fmt ", 16, 1, self.channels,
            self.sample_rate, self.sample_rate * block, block, 16, b"data", self._data_bytes,
        )

    def write(self, interleaved: np.ndarray) -> None:
        """Append int16 samples (frames × channels, or already interleaved) and patch the header."""
        if self._fh.closed:
            return
        data = np.ascontiguousarray(interleaved, dtype="<i2").tobytes()
        self._fh.seek(0, 2)
        self._fh.write(data)
        self._data_bytes += len(data)
        self._fh.seek(0)
        self._fh.write(self._header())
        self._fh.flush()

    @property
    def seconds(self) -> float:
        return self._data_bytes / (2 * self.channels * self.sample_rate)

    def close(self) -> None:
        """Idempotent."""
        if not self._fh.closed:
            self._fh.close()
