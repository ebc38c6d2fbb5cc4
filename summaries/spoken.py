"""Digits as people say them and recognizers write them.

Callers read numbers out digit by digit ("four five one two", "oh", "double seven"), and the
recognizer writes either words or numerals. Redaction and entity extraction both need the same
view: runs of digits, with the character span they occupy in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DIGIT_WORDS: dict[str, str] = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}
"""Spoken forms of single digits (``to``/``for`` are left out: too common as words)."""

_MULTIPLIERS = {"double": 2, "triple": 3}

_TOKEN = re.compile(
    r"\d+|" + "|".join(sorted((*DIGIT_WORDS, *_MULTIPLIERS), key=len, reverse=True)),
    re.IGNORECASE,
)
_GAP = re.compile(r"[\s,.\-/]*")
"""What may sit between the tokens of one run: spaces, dashes, commas, dots, slashes."""


@dataclass(frozen=True, slots=True)
class DigitRun:
    """A run of digits found in text, numerals and digit words mixed."""

    digits: str
    start: int
    end: int
    spoken: bool
    """True when any part of it was written as words."""


def digit_runs(text: str) -> list[DigitRun]:
    """All maximal runs of digits in ``text`` (token boundaries respected)."""
    runs: list[DigitRun] = []
    tokens = [m for m in _TOKEN.finditer(text) if _is_word_bounded(text, m.start(), m.end())]
    current: list[re.Match[str]] = []

    def close() -> None:
        if not current:
            return
        digits, spoken, pending = "", False, 1
        last_digit_end = None
        for tok in current:
            value = tok.group(0).lower()
            if value in _MULTIPLIERS:
                pending = _MULTIPLIERS[value]
                spoken = True
                continue
            if value.isdigit():
                digits += value * pending if len(value) == 1 else value
            else:
                digits += DIGIT_WORDS[value] * pending
                spoken = True
            pending = 1
            last_digit_end = tok.end()
        if digits and last_digit_end is not None:
            first = next(t for t in current if t.group(0).lower() not in _MULTIPLIERS)
            start = current[0].start() if current[0].group(0).lower() in _MULTIPLIERS else first.start()
            runs.append(DigitRun(digits, start, last_digit_end, spoken))
        current.clear()

    for tok in tokens:
        if current:
            gap = text[current[-1].end() : tok.start()]
            if not _GAP.fullmatch(gap):
                close()
        current.append(tok)
    close()
    # A lone "o" or "oh" is an interjection, not a number.
    return [r for r in runs if not (r.spoken and len(r.digits) == 1 and _only_oh(text[r.start : r.end]))]


def _only_oh(s: str) -> bool:
    return s.strip().lower() in ("o", "oh")


def _is_word_bounded(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalpha() or after.isalpha() or before == "_" or after == "_")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum that every payment card number satisfies."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0
