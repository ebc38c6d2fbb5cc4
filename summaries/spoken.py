"""Digits as people say them and recognizers write them.

Callers read numbers out digit by digit ("four five one two", "oh", "double seven") or in pairs
("forty five twelve"), and the recognizer writes either words (pocketsphinx) or numerals, often
grouped with spaces, dashes or thousands commas (Whisper: "4111-1111-1111-1111", "4,512"). Redaction and entity extraction both need the same
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

TEEN_WORDS: dict[str, str] = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
}
TENS_WORDS: dict[str, str] = {
    "twenty": "2", "thirty": "3", "forty": "4", "fifty": "5", "sixty": "6", "seventy": "7",
    "eighty": "8", "ninety": "9",
}
"""Numbers read in pairs ("forty five twelve" is 4512): a tens word takes the unit after it."""

WEAK_DIGIT_WORDS: dict[str, str] = {"to": "2", "too": "2", "for": "4"}
"""How recognizers often write a digit read inside a number ("451 to 778" for "four five one two
seven seven eight"): a digit only between two other digit tokens of one run."""

_MULTIPLIERS = {"double": 2, "triple": 3}

_TOKEN = re.compile(
    r"\d+|" + "|".join(sorted((*DIGIT_WORDS, *TEEN_WORDS, *TENS_WORDS, *WEAK_DIGIT_WORDS, *_MULTIPLIERS),
                              key=len, reverse=True)),
    re.IGNORECASE,
)
_UNIT_GAP = re.compile(r"[ \-]?")
"""Between a tens word and its unit: nothing, a space or a hyphen ("forty-five")."""
_GAP = re.compile(r"[\s,.\-/]*")
"""What may sit between the tokens of one run: spaces, dashes, commas, dots, slashes."""


@dataclass(frozen=True, slots=True)
class DigitRun:
    """A run of digits found in text, numerals and digit words mixed."""

    digits: str
    start: int
    end: int
    spoken: bool
    """True when any part of it was written as words, or the numerals come in separate groups
    ("4539, 148, 0343 6467", "8 3 2 1 5 5"): digits read out, as Whisper writes them."""


def digit_runs(text: str) -> list[DigitRun]:
    """All maximal runs of digits in ``text`` (token boundaries respected)."""
    runs: list[DigitRun] = []
    tokens = [m for m in _TOKEN.finditer(text) if _is_word_bounded(text, m.start(), m.end())]
    current: list[re.Match[str]] = []

    def close() -> None:
        if not current:
            return
        digits, spoken, pending, numerals = "", False, 1, 0
        last_digit_end = None
        skip = False
        for i, tok in enumerate(current):
            if skip:  # the unit a tens word already took
                skip = False
                continue
            value = tok.group(0).lower()
            if value in _MULTIPLIERS:
                pending = _MULTIPLIERS[value]
                spoken = True
                continue
            end = tok.end()
            if value.isdigit():
                digits += value * pending if len(value) == 1 else value
                numerals += 1
            elif value in WEAK_DIGIT_WORDS:
                digits += WEAK_DIGIT_WORDS[value] * pending
                spoken = True
            elif value in TEEN_WORDS:
                digits += TEEN_WORDS[value] * pending
                spoken = True
            elif value in TENS_WORDS:
                nxt = current[i + 1] if i + 1 < len(current) else None
                unit = nxt.group(0).lower() if nxt is not None else ""
                if (nxt is not None and unit in DIGIT_WORDS and DIGIT_WORDS[unit] != "0"
                        and _UNIT_GAP.fullmatch(text[end : nxt.start()])):
                    digits += (TENS_WORDS[value] + DIGIT_WORDS[unit]) * pending
                    end, skip = nxt.end(), True
                else:
                    digits += (TENS_WORDS[value] + "0") * pending
                spoken = True
            else:
                digits += DIGIT_WORDS[value] * pending
                spoken = True
            pending = 1
            last_digit_end = end
        spoken = spoken or numerals > 1
        if digits and last_digit_end is not None:
            first = next(t for t in current if t.group(0).lower() not in _MULTIPLIERS)
            start = current[0].start() if current[0].group(0).lower() in _MULTIPLIERS else first.start()
            runs.append(DigitRun(digits, start, last_digit_end, spoken))
        current.clear()

    for i, tok in enumerate(tokens):
        if current:
            gap = text[current[-1].end() : tok.start()]
            if not _GAP.fullmatch(gap):
                close()
        if tok.group(0).lower() in WEAK_DIGIT_WORDS and not _between_digits(text, tokens, i, current):
            close()
            continue
        current.append(tok)
    close()
    # A lone "o" or "oh" is an interjection, not a number.
    return [r for r in runs if not (r.spoken and len(r.digits) == 1 and _only_oh(text[r.start : r.end]))]


def _between_digits(text: str, tokens: list[re.Match[str]], i: int, current: list[re.Match[str]]) -> bool:
    """A weak word ("to", "for") is a digit only inside a run: a digit token right before it
    (already in ``current``) and right after it, with only spaces or commas in between."""
    if not current or current[-1].group(0).lower() in WEAK_DIGIT_WORDS or i + 1 >= len(tokens):
        return False
    nxt = tokens[i + 1]
    if nxt.group(0).lower() in (*WEAK_DIGIT_WORDS, *_MULTIPLIERS):
        return False
    return bool(_GAP.fullmatch(text[tokens[i].end() : nxt.start()]))


def mask_long_runs(text: str, visible: int = 6, mask: str = "X") -> str:
    """Digit runs longer than ``visible`` digits rewritten as their first ``visible`` digits and
    ``mask`` for the rest: a live partial holds a card number before it is long enough (13+)
    for the redactor to know it is one, so live views only show as much as PCI DSS allows."""
    out, pos = [], 0
    for run in digit_runs(text):
        if len(run.digits) > visible:
            out += [text[pos : run.start], run.digits[:visible], mask * (len(run.digits) - visible)]
            pos = run.end
    return "".join(out) + text[pos:] if out else text


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
