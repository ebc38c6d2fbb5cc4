"""QA comparison: one replayed call's events against its :class:`~qa.expectation.Expectation`.

:func:`compare` runs every registered check and returns the differences as data, so
``callcenter replay`` and the tests can report every failed check at once instead of stopping
at the first. A check is a function ``(expectation, call) -> list[Mismatch]`` registered with
``@check``; it returns ``[]`` when its keys are absent (absent means "not checked"). ASR on
synthetic voices is error-prone, so words are checked as keyword groups (any word of a group
heard), and times with tolerances.

Mismatches never quote transcript text (a QA report may end up in logs; "none heard" is enough
to go and look at the transcript). They do show DTMF strings: checking those is their purpose,
so do not log mismatches of live calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, TypeVar

from qa.expectation import TONE_LABELS, Expectation, ExpectedTalkOver
from speech.events import (
    CallEnded,
    DeadAirEnded,
    DeadAirStarted,
    DtmfDigit,
    Event,
    FinalTranscript,
    TalkOver,
    ToneAlert,
    ToneUpdate,
)
from speech.frames import Party

E = TypeVar("E", bound=Event)
_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class Mismatch:
    """One failed check: ``check`` names it (``keywords``, ``dead_air``, ``tone.alert``...)."""

    check: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.check}: expected {self.expected}, got {self.got}"


class Call:
    """The events of one call, in emission order, and what several checks look up in them."""

    def __init__(self, events: Sequence[Event]) -> None:
        self.events = events

    @cached_property
    def ended(self) -> CallEnded | None:
        """The last ``call.ended``, if the call ended."""
        return next((e for e in reversed(self.events) if isinstance(e, CallEnded)), None)

    def of(self, cls: type[E]) -> list[E]:
        """This call's events of one type, in order."""
        return [e for e in self.events if isinstance(e, cls)]


Check = Callable[[Expectation, Call], list[Mismatch]]
CHECKS: list[Check] = []
"""Every check, in report order; :func:`check` appends."""


def check(fn: Check) -> Check:
    """Register a check: ``compare`` runs it on every call."""
    CHECKS.append(fn)
    return fn


def compare(exp: Expectation, events: Sequence[Event]) -> list[Mismatch]:
    """Every way ``events`` (one call, in emission order) differ from ``exp``; ``[]`` = pass."""
    call = Call(events)
    return [m for fn in CHECKS for m in fn(exp, call)]


# -- the checks, in report order --------------------------------------------------------------


@check
def keywords(exp: Expectation, call: Call) -> list[Mismatch]:
    """Every keyword group has a word (or phrase) heard in a final transcript."""
    if exp.keywords is None:
        return []
    finals = call.of(FinalTranscript)
    if exp.keywords_party is not None:
        finals = [e for e in finals if e.party == exp.keywords_party]
    words = [_WORD.findall(e.text.lower()) for e in finals]
    heard = {w for ws in words for w in ws}
    texts = [" " + " ".join(ws) + " " for ws in words]
    who = f" of the {exp.keywords_party.value}" if exp.keywords_party else ""
    return [
        Mismatch("keywords", "one of " + "|".join(group), f"none in {len(finals)} final transcript(s){who}")
        for group in exp.keywords
        if not any(_heard(k, heard, texts) for k in group)
    ]


@check
def dead_air(exp: Expectation, call: Call) -> list[Mismatch]:
    """Reported dead air matches the expected intervals one to one, within the tolerance."""
    if exp.dead_air is None:
        return []
    tol = exp.dead_air_tolerance
    unmatched = _dead_air_spans(call)
    out = []
    for want in exp.dead_air:
        hit = next((g for g in unmatched
                    if abs(g.start - want.start) <= tol and abs(g.end - want.end) <= tol), None)
        if hit is not None:
            unmatched.remove(hit)
            continue
        # What came instead: the reported intervals overlapping this one (each reported once).
        near = [g for g in unmatched if g.start < want.end and want.start < g.end]
        out.append(Mismatch("dead_air", f"{_span(want)} (±{tol:g} s)",
                            ", ".join(_span(g) for g in near) or "no dead air"))
        unmatched = [g for g in unmatched if g not in near]
    out += [Mismatch("dead_air", "no dead air here", f"unexpected {_span(g)}") for g in unmatched]
    return out


@check
def tone(exp: Expectation, call: Call) -> list[Mismatch]:
    """The last tone label, the worst one, and whether an alert was raised."""
    if exp.tone is None:
        return []
    want = exp.tone
    labels = [e.label for e in call.of(ToneUpdate) if e.party in (None, Party.CALLER)]  # the caller's tone
    out = []
    if want.final_label_in is not None:
        final = labels[-1] if labels else None
        if final not in want.final_label_in:
            out.append(Mismatch("tone.final_label_in", "one of " + "|".join(want.final_label_in),
                                final or "no tone update"))
    if want.max_label is not None:
        limit = TONE_LABELS.index(want.max_label)
        over = [lab for lab in labels if lab not in TONE_LABELS or TONE_LABELS.index(lab) > limit]
        if over:
            worst = max(over, key=lambda lab: TONE_LABELS.index(lab) if lab in TONE_LABELS else 99)
            out.append(Mismatch("tone.max_label", f"at most {want.max_label}", worst))
    if want.alert is not None:
        alerts = len(call.of(ToneAlert))
        if bool(alerts) != want.alert:
            out.append(Mismatch("tone.alert", "an alert" if want.alert else "no alert", f"{alerts} alert(s)"))
    return out


@check
def dtmf(exp: Expectation, call: Call) -> list[Mismatch]:
    """The key presses, exactly and in order."""
    if exp.dtmf is None:
        return []
    got = "".join(e.digit for e in call.of(DtmfDigit))
    return [Mismatch("dtmf", repr(exp.dtmf), repr(got))] if got != exp.dtmf else []


@check
def talk_over(exp: Expectation, call: Call) -> list[Mismatch]:
    """Reported talk-over matches the expected list one to one: who started it, and when."""
    if exp.talk_over is None:
        return []
    unmatched = call.of(TalkOver)
    out = []
    for want in exp.talk_over:
        hit = next((g for g in unmatched if Party(g.started_by) == want.started_by
                    and abs(g.start - want.start) <= want.tolerance), None)
        if hit is not None:
            unmatched.remove(hit)
            continue
        # Report the nearest leftover as what came instead, so it is not also "unexpected".
        near = min(unmatched, key=lambda g: abs(g.start - want.start), default=None)
        if near is not None:
            unmatched.remove(near)
        out.append(Mismatch("talk_over", _expected_talk(want), _talk(near) if near is not None else "no talk-over"))
    out += [Mismatch("talk_over", "no talk-over here", f"unexpected {_talk(g)}") for g in unmatched]
    return out


@check
def duration(exp: Expectation, call: Call) -> list[Mismatch]:
    """``call.ended``'s duration within ``min_duration``..``max_duration``."""
    if exp.min_duration is None and exp.max_duration is None:
        return []
    lo = f"{exp.min_duration:g}" if exp.min_duration is not None else "0"
    hi = f"{exp.max_duration:g}" if exp.max_duration is not None else "∞"
    want = f"{lo}-{hi} s"
    if call.ended is None:
        return [Mismatch("duration", want, "no call.ended event")]
    d = call.ended.duration
    if (exp.min_duration is not None and d < exp.min_duration) or (
        exp.max_duration is not None and d > exp.max_duration
    ):
        return [Mismatch("duration", want, f"{d:.2f} s")]
    return []


# -- helpers --------------------------------------------------------------------------------


class _Span(Protocol):
    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float: ...


@dataclass(frozen=True)
class _Reported:
    """A dead-air interval the pipeline reported (not validated: it is what happened)."""

    start: float
    end: float


def _heard(keyword: str, heard: set[str], texts: list[str]) -> bool:
    """Whole-word match; a keyword with spaces is a phrase matched within one transcript."""
    k = " ".join(_WORD.findall(keyword.lower()))
    if " " in k:
        return any(f" {k} " in t for t in texts)
    return k in heard


def _dead_air_spans(call: Call) -> list[_Reported]:
    """Closed intervals from DeadAirEnded; one still open at the end closes at CallEnded.t."""
    out: list[_Reported] = []
    open_start: float | None = None
    for e in call.events:
        if isinstance(e, DeadAirStarted):
            open_start = e.start
        elif isinstance(e, DeadAirEnded):
            out.append(_Reported(e.start, e.end))
            open_start = None
    if open_start is not None:
        end = call.ended.t if call.ended is not None else max((e.t for e in call.events), default=open_start)
        out.append(_Reported(open_start, end))
    return out


def _span(i: _Span) -> str:
    return f"{i.start:.2f}-{i.end:.2f} s"


def _talk(t: TalkOver) -> str:
    return f"started by {Party(t.started_by).value} at {t.start:.2f} s"


def _expected_talk(want: ExpectedTalkOver) -> str:
    return f"started by {want.started_by.value} at {want.start:.2f} s (±{want.tolerance:g} s)"
