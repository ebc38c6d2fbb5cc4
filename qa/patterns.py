"""Phrase patterns for evaluation forms: one line covers the many ways people say a thing.

A form lists what counts as, say, an offer of further help. Exact sentences miss most real calls
("anything else I can do for you today", "is there anything more we can help with"), so a phrase
may name content words with alternatives and gaps instead of spelling out one sentence:

- ``a|b|c`` in a word's place: any one of these words (``help|assist|do``);
- ``...`` between words: up to ``GAP_WORDS`` other words may come between (``anything ... else``);
- ``word*``: any word beginning so (``summar*``: summary, summarise, summarize; ``refund*``).

``anything|something else ... help|assist|do`` matches "is there anything else I can help you
with" and "something else we could do". A pattern's words match exactly or by their prefix, never
fuzzily: single words a letter apart are often different words ("charge"/"charger", "do"/"to"),
so spellings and inflections are said outright (``apologi*``, ``cancel*``). A phrase without ``|`` or ``...`` matches as before (``assist.phrases.PhraseMatcher``:
exact, then fuzzy over word windows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from assist.phrases import PhraseMatcher, normalize

GAP = "..."
GAP_WORDS = 4
"""At most this many other words between the parts of a pattern (keeps it within one clause)."""

Slot = tuple[str, ...]
"""One word's place: the words that may stand there."""


def is_pattern(phrase: str) -> bool:
    return "|" in phrase or GAP in phrase or "*" in phrase


@dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled pattern: parts separated by gaps, each part a run of adjacent word slots."""

    source: str
    parts: tuple[tuple[Slot, ...], ...]

    @staticmethod
    def parse(phrase: str) -> Pattern:
        parts = []
        for chunk in phrase.split(GAP):
            slots = tuple(tuple(w + ("*" if a.endswith("*") else "") for a in word.split("|")
                                if (w := normalize(a)))
                          for word in chunk.split())
            slots = tuple(s for s in slots if s)
            if slots:
                parts.append(slots)
        if not parts:
            raise ValueError(f"pattern {phrase!r} has no words")
        return Pattern(phrase, tuple(parts))

    def match(self, words: list[str]) -> bool:
        return any(self._from(0, i, words) for i in range(len(words)))

    def _from(self, k: int, i: int, words: list[str]) -> bool:
        """Part ``k`` starts at word ``i`` and the rest follow within the gap."""
        slots = self.parts[k]
        if i + len(slots) > len(words):
            return False
        if not all(_word_ok(words[i + n], slot) for n, slot in enumerate(slots)):
            return False
        if k + 1 == len(self.parts):
            return True
        end = i + len(slots)
        return any(self._from(k + 1, j, words)
                   for j in range(end, min(len(words), end + GAP_WORDS + 1)))


def _word_ok(word: str, slot: Slot) -> bool:
    return any(word == want or (want.endswith("*") and word.startswith(want[:-1])) for want in slot)


@dataclass(frozen=True, slots=True)
class PatternMatcher:
    """Finds the first phrase or pattern said in a text (plain phrases first, fuzzily at
    ``threshold``; then patterns)."""

    phrases: tuple[str, ...]
    threshold: float = 85.0
    _plain: PhraseMatcher = field(init=False, repr=False)
    _patterns: tuple[Pattern, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_plain", PhraseMatcher(
            tuple(p for p in self.phrases if not is_pattern(p)), fuzzy=True, threshold=self.threshold))
        object.__setattr__(self, "_patterns", tuple(Pattern.parse(p) for p in self.phrases if is_pattern(p)))

    def match(self, text: str) -> str | None:
        """The phrase (as configured) heard in ``text``, or None."""
        hit = self._plain.match(text) if self._plain.phrases else None
        if hit is not None or not self._patterns:
            return hit
        words = normalize(text).split()
        return next((p.source for p in self._patterns if p.match(words)), None)


@cache
def matcher(phrases: tuple[str, ...], threshold: float) -> PatternMatcher:
    return PatternMatcher(phrases, threshold)
