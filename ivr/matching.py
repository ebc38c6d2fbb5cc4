"""Match what a caller said to a menu choice.

One matcher serves every recognizer and the IVR: ``speech.text.match_phrase`` (whole phrase,
prefix, or content words of exactly one choice; ties are no match; off-menu answers are rejected,
so the IVR reprompts rather than routing a complaint to a queue). This module only maps choices
to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ivr.flow import Choice
from speech.text import FILLER_WORDS, match_phrase

__all__ = ["FILLER_WORDS", "SpeechMatch", "match_speech"]


@dataclass(frozen=True, slots=True)
class SpeechMatch:
    choice: Choice
    phrase: str
    score: float
    """> 1: a whole phrase was heard; (0, 1]: share of the phrase's content words heard."""


def match_speech(text: str, choices: Sequence[Choice]) -> SpeechMatch | None:
    """The one choice ``text`` selects, or None (no match, ambiguous or off-menu)."""
    options = [(i, phrase) for i, choice in enumerate(choices) for phrase in choice.say]
    match = match_phrase(text, options)
    if match is None:
        return None
    return SpeechMatch(choices[match.key], match.phrase, match.score)
