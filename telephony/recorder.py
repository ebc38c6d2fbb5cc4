"""Two-channel call recording: channel 1 what we played into the call, channel 2 the remote party.

Both sides of a conference-bridge tick arrive together, so the channels stay sample-aligned
without timestamps. Writes go out once a second; the file is valid after every write.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from telephony.wav_writer import IncrementalWav

FLUSH_FRAMES = 50
"""Ticks buffered before a write (50 × 20 ms = 1 s)."""


class StereoRecorder:
    """Collects (played, heard) frame pairs and appends them to a stereo WAV."""

    def __init__(self, path: Path, *, sample_rate: int) -> None:
        self.path = Path(path)
        self._wav = IncrementalWav(self.path, sample_rate=sample_rate, channels=2)
        self._tx: list[np.ndarray] = []
        self._rx: list[np.ndarray] = []

    def add(self, played: bytes | None, heard: bytes) -> None:
        rx = np.frombuffer(heard, dtype="<i2")
        tx = np.frombuffer(played, dtype="<i2") if played else np.zeros(len(rx), dtype="<i2")
        if len(tx) != len(rx):
            tx = np.resize(tx, len(rx)) if len(tx) else np.zeros(len(rx), dtype="<i2")
        self._tx.append(tx)
        self._rx.append(rx)
        if len(self._rx) >= FLUSH_FRAMES:
            self.flush()

    def flush(self) -> None:
        if not self._rx:
            return
        stereo = np.column_stack((np.concatenate(self._tx), np.concatenate(self._rx)))
        self._tx.clear()
        self._rx.clear()
        self._wav.write(stereo)

    def close(self) -> None:
        """Write what is buffered and close the file; idempotent."""
        self.flush()
        self._wav.close()
