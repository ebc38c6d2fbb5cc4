"""Spoken queue announcements and feature-code confirmations, rendered on first use.

"You are caller number 2. The expected wait is about 3 minutes." Each distinct sentence is
rendered once with espeak-ng (``ivr.prompts.render_text``) into ``data_dir/prompts/acd/`` and
reused by every call and worker.
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path

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


FEATURE_CODES = {
    "*1": ("ready", "You are now ready for calls."),
    "*2": ("not_ready", "You are now not ready."),
    "*0": ("logged_out", "You are now logged out."),
}
"""Digits an agent dials from their phone → (state, confirmation)."""
