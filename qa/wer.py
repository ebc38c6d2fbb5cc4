"""Word error rate of a call's transcripts against what was said, and its QA check.

The normalization is shared by the QA check (``transcript`` in an expectation file) and the
recognizer benchmarks (``benchmarks/corpus.py``), so both count errors the same way: case,
punctuation and hyphens ignored, "Mr." is "mister", and numerals are spelled out ("$25" is
"twenty five dollars", "4111" read as digits is "four one one one"), so a recognizer that writes
numbers as digits is not charged for the reference's words. Errors are counted by ``jiwer``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from qa.checks import Call, Mismatch, check
from qa.expectation import Expectation
from speech.events import FinalTranscript

_ABBREV = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint", "ok": "okay"}
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINALS = {1: "first", 2: "second", 3: "third", 5: "fifth", 8: "eighth", 9: "ninth", 12: "twelfth"}


def number_words(n: int) -> str:
    """0-999999 as English words ("twenty five", "four hundred twelve")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    rest = n % 1000
    return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))


def _ordinal(n: int) -> str:
    """1-99 as an ordinal word ("third", "twenty first")."""
    if n in _ORDINALS:
        return _ORDINALS[n]
    if n > 20 and n % 10:
        return _TENS[n // 10] + " " + _ordinal(n % 10)
    word = number_words(n)
    return word[:-1] + "ieth" if word.endswith("y") else word + "th"


def _numeral_words(m: re.Match[str]) -> str:
    raw = m.group(0).replace(",", "")
    if len(raw) > 6 or (len(raw) > 1 and raw.startswith("0")) or (len(raw) == 4 and not raw.startswith(("19", "20"))):
        return " ".join(_ONES[int(d)] for d in raw)  # digit strings are read digit by digit
    if len(raw) == 4 and raw[2:] != "00" and raw.startswith("19"):
        return number_words(int(raw[:2])) + " " + number_words(int(raw[2:]))  # "nineteen ninety"
    return number_words(int(raw))


def normalize(text: str) -> str:
    """Lowercase words without punctuation; numerals and common abbreviations spelled out."""
    t = text.lower().replace("\u2019", "'")
    t = re.sub(r"\$\s?(\d[\d,]*)(?:\.(\d\d))?", lambda m: f"{m[1]} dollars" + (f" {m[2]} cents" if m[2] else ""), t)
    t = t.replace("%", " percent")
    t = re.sub(r"\b(\d{1,2})(?:st|nd|rd|th)\b", lambda m: _ordinal(int(m[1])), t)
    t = re.sub(r"\d[\d,]*\d|\d", _numeral_words, t)
    t = re.sub(r"[-/]", " ", t)
    t = re.sub(r"[^\w' ]+", " ", t)
    words = [w.strip("'") for w in t.split()]
    return " ".join(_ABBREV.get(w, w) for w in words if w)


@dataclass(frozen=True)
class WerResult:
    wer: float
    errors: int
    reference_words: int


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> WerResult:
    """Corpus word error rate (all errors over all reference words), after :func:`normalize`."""
    import jiwer

    refs = [normalize(r) for r in references]
    hyps = [normalize(h) for h in hypotheses]
    n_ref = sum(len(r.split()) for r in refs)
    errors = 0
    for r, h in zip(refs, hyps, strict=True):
        if not r or not h:
            errors += len(h.split()) + len(r.split())
        else:
            out = jiwer.process_words(r, h)
            errors += out.substitutions + out.deletions + out.insertions
    if n_ref == 0:
        return WerResult(0.0 if errors == 0 else 1.0, errors, 0)
    return WerResult(errors / n_ref, errors, n_ref)


@check
def transcript(exp: Expectation, call: Call) -> list[Mismatch]:
    """Each bounded party's final transcripts, joined in order, are within ``max_wer`` of the
    reference (what the recording says). The report gives rates and counts, never the words."""
    if exp.transcript is None:
        return []
    out = []
    finals = call.of(FinalTranscript)
    for bound in exp.transcript:
        texts = [e.text for e in finals if bound.party is None or e.party == bound.party]
        res = wer([bound.reference], [" ".join(texts)])
        if res.wer > bound.max_wer:
            who = f" ({bound.party.value})" if bound.party else ""
            out.append(Mismatch(f"transcript.wer{who}", f"<= {bound.max_wer:.2f}",
                                f"{res.wer:.2f} ({res.errors} errors in {res.reference_words} words)"))
    return out
