"""Two-channel call recording: channel 1 what we played into the call, channel 2 the remote party.

Both sides of a conference-bridge tick arrive together, so the channels stay sample-aligned
without timestamps. Writes go out once a second; the file is valid after every write. With a key
the file is the encrypted container of ``telephony.recording_crypto`` (readable up to the last
write after a crash too). While muted (secure IVR input) both channels are recorded as silence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from telephony.recording_crypto import EncryptedWav, private_dir
from telephony.wav_writer import IncrementalWav

FLUSH_FRAMES = 50
"""Ticks buffered before a write (50 × 20 ms = 1 s)."""
MUTE_TAIL_FRAMES = 25
"""Ticks still silenced after a mute is lifted (0.5 s): the IVR learns of the last key press
after its tone began, from a pipeline that runs behind the recorder, so the tone's end must not
reach the file."""


class StereoRecorder:
    """Collects (played, heard) frame pairs and appends them to a stereo WAV."""

    def __init__(self, path: Path, *, sample_rate: int, key: bytes | None = None,
                 mute_tail_frames: int = MUTE_TAIL_FRAMES) -> None:
        self.path = Path(path)
        private_dir(self.path.parent)  # the recordings folder: owner-only, an older one tightened
        self._wav: IncrementalWav | EncryptedWav = (
            EncryptedWav(self.path, sample_rate=sample_rate, channels=2, key=key) if key
            else IncrementalWav(self.path, sample_rate=sample_rate, channels=2))
        self._tx: list[np.ndarray] = []
        self._rx: list[np.ndarray] = []
        self._muted = False
        self._tail = 0
        self._mute_tail = mute_tail_frames
        self.muted_frames = 0
        """Ticks written as silence (a test and the record can check a secure collection)."""

    def mute(self, on: bool) -> None:
        """Record silence on both channels from now on (``on``), or again audio after the tail."""
        if on:
            self._muted, self._tail = True, 0
        elif self._muted:
            self._muted, self._tail = False, self._mute_tail

    def add(self, played: bytes | None, heard: bytes) -> None:
        rx = np.frombuffer(heard, dtype="<i2")
        if self._muted or self._tail > 0:
            self._tail = max(0, self._tail - 1)
            self.muted_frames += 1
            silence = np.zeros(len(rx), dtype="<i2")
            self._tx.append(silence)
            self._rx.append(silence)
        else:
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
