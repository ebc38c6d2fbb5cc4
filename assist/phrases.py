"""Matching configured phrases in recognized text, exact or fuzzy.

Recognizers drop and bend words ("supervisor" → "super visor", "verify" → "very fi"), so a fuzzy
match compares the phrase with every window of about as many words in the utterance (rapidfuzz's
``ratio``, 0-100) instead of a substring test that one wrong letter defeats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz

_NON_WORD = re.compile(r"[^a-z0-9' ]+")


def normalize(text: str) -> str:
    """Lower case, punctuation gone, single spaces."""
    return " ".join(_NON_WORD.sub(" ", text.lower().replace("’", "'")).split())


@dataclass(frozen=True, slots=True)
class PhraseMatcher:
    """Finds the first of ``phrases`` said in a text."""

    phrases: tuple[str, ...]
    fuzzy: bool = True
    threshold: float = 85.0
    """Fuzzy: least ``rapidfuzz.fuzz.ratio`` (0-100) of phrase and a window of words."""

    def match(self, text: str) -> str | None:
        """The phrase (as configured) found in ``text``, or None."""
        said = normalize(text)
        if not said:
            return None
        padded = f" {said} "
        for phrase in self.phrases:
            want = normalize(phrase)
            if want and f" {want} " in padded:
                return phrase
        if not self.fuzzy:
            return None
        words = said.split()
        for phrase in self.phrases:
            if self._fuzzy(normalize(phrase), words):
                return phrase
        return None

    def _fuzzy(self, want: str, words: list[str]) -> bool:
        n = len(want.split())
        if n == 0:
            return False
        for size in {max(1, n - 1), n, n + 1}:
            for i in range(max(1, len(words) - size + 1)):
                if fuzz.ratio(want, " ".join(words[i : i + size])) >= self.threshold:
                    return True
        return False
