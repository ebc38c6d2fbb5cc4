"""Spoken queue announcements and feature-code confirmations, rendered on first use.

"You are caller number 2. The expected wait is about 3 minutes." Each distinct sentence is
rendered once with espeak-ng (``ivr.prompts.render_text``) into ``data_dir/prompts/acd/`` and
reused by every call and worker.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from ivr.prompts import PromptRenderError, render_text
from telephony.leg import CallLeg

log = logging.getLogger(__name__)

MAX_SPOKEN_POSITION = 10
"""Positions above this are announced as "more than 10 callers ahead"."""
MAX_SPOKEN_MINUTES = 30


class QueuePrompts:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def position_text(self, position: int, expected_s: float) -> tuple[str, str]:
        """(file key, sentence) for a position and an expected wait."""
        minutes = max(1, min(MAX_SPOKEN_MINUTES, math.ceil(expected_s / 60)))
        if position > MAX_SPOKEN_POSITION:
            first = f"There are more than {MAX_SPOKEN_POSITION} callers ahead of you."
            key = f"pos_over{MAX_SPOKEN_POSITION}"
        else:
            first = f"You are caller number {position}."
            key = f"pos{position}"
        unit = "minute" if minutes == 1 else "minutes"
        return f"{key}_wait{minutes}", f"{first} The expected wait is about {minutes} {unit}."

    async def announce(self, leg: CallLeg, position: int, expected_s: float) -> None:
        key, text = self.position_text(position, expected_s)
        await self.say(leg, key, text)

    async def say(self, leg: CallLeg, key: str, text: str) -> None:
        try:
            wav = await asyncio.to_thread(render_text, text, self.folder / f"{key}.wav")
        except PromptRenderError:
            log.warning("could not render the %s announcement", key, exc_info=True)
            return
        await leg.play(wav)


HOLD_MUSIC_RATE = 16000
HOLD_NOTES_HZ = (261.63, 329.63, 392.00, 523.25, 392.00, 329.63, 293.66, 349.23, 440.00, 349.23)
"""A slow C-major/D-minor arpeggio: recognizably music, not a tone the DTMF detector could take
for a key, and nothing the recognizer turns into words."""
HOLD_NOTE_S = 0.6
HOLD_LEVEL_DBFS = -24.0


def hold_music(folder: Path) -> Path:
    """The hold-music loop (rendered once into ``folder``) for flows that ship none."""
    path = Path(folder) / "hold_music.wav"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(HOLD_MUSIC_RATE * HOLD_NOTE_S)
    t = np.arange(n) / HOLD_MUSIC_RATE
    envelope = np.minimum(1.0, np.minimum(t / 0.05, (HOLD_NOTE_S - t) / 0.15))
    notes = [(np.sin(2 * np.pi * f * t) + 0.3 * np.sin(2 * np.pi * 2 * f * t)) * envelope for f in HOLD_NOTES_HZ]
    loop = np.concatenate(notes)
    loop *= 10 ** (HOLD_LEVEL_DBFS / 20) / np.max(np.abs(loop))
    tmp = path.with_suffix(f".{os.getpid()}.tmp.wav")  # workers render it at the same time
    sf.write(str(tmp), (loop * 32767).astype(np.int16), HOLD_MUSIC_RATE, subtype="PCM_16")
    tmp.replace(path)
    return path


FEATURE_CODES = {
    "*1": ("ready", "You are now ready for calls."),
    "*2": ("not_ready", "You are now not ready."),
    "*0": ("logged_out", "You are now logged out."),
}
"""Digits an agent dials from their phone → (state, confirmation)."""
