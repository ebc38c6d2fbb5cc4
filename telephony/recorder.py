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
        self._tx: list[bytes] = []
        self._rx: list[bytes] = []
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
        """Keep one tick's two frames as they came (no per-frame arrays): ``flush`` joins a
        second of them and interleaves it in one numpy pass."""
        n = len(heard)
        if self._muted or self._tail > 0:
            self._tail = max(0, self._tail - 1)
            self.muted_frames += 1
            silence = _zeros(n)
            self._tx.append(silence)
            self._rx.append(silence)
        else:
            if not played:
                played = _zeros(n)
            elif len(played) != n:
                played = (played * (n // len(played) + 1))[:n] if len(played) >= 2 else _zeros(n)
            self._tx.append(played)
            self._rx.append(heard)
        if len(self._rx) >= FLUSH_FRAMES:
            self.flush()

    def flush(self) -> None:
        if not self._rx:
            return
        tx = np.frombuffer(b"".join(self._tx), dtype="<i2")
        rx = np.frombuffer(b"".join(self._rx), dtype="<i2")
        self._tx.clear()
        self._rx.clear()
        stereo = np.empty(2 * len(rx), dtype="<i2")
        stereo[0::2] = tx
        stereo[1::2] = rx
        self._wav.write(stereo)

    def close(self) -> None:
        """Write what is buffered and close the file; idempotent."""
        self.flush()
        self._wav.close()


_SILENCE: dict[int, bytes] = {}


def _zeros(n: int) -> bytes:
    """``n`` bytes of silence, one shared object per size."""
    z = _SILENCE.get(n)
    if z is None:
        z = _SILENCE[n] = bytes(n)
    return z
