"""Live rules: a rules file's conditions evaluated over one call's events → ``rule.matched``.

Deterministic on event call times ``t``, never the wall clock: a condition *latches* at the call
time it first held (a phrase at its final's ``t``, "not said by 30 s" at 30 s, dead air >= 10 s at
its start + 10 s), and a rule fires once, when its last condition latches, at that time. A
condition that needs the absence of something (not said, unanswered, tone held) is decided once
the clock has passed its time plus ``settle_s``, because a live call's finals arrive after their
``t``; only evidence from before its time counts. So a replay, a live call of the same audio and
``callcenter rules test`` on a stored event log fire the same rules at the same times.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from assist.phrases import PhraseMatcher
from assist.rules_model import (
    DeadAir,
    NotSaid,
    Rule,
    RulesFile,
    Said,
    TalkOverCount,
    ToneHeld,
    UnansweredQuestion,
)
from speech.events import (
    DeadAirEnded,
    DeadAirStarted,
    Event,
    FinalTranscript,
    RuleMatched,
    SpeechStarted,
    TalkOver,
    ToneUpdate,
)
from speech.frames import Party

QUESTION_WORDS = frozenset(
    "what when where why who whom whose which how can could would will is are am do does did "
    "should shall may might have has was were isn't aren't don't doesn't didn't won't".split())
_FIRST_WORD = re.compile(r"[a-z']+")


def is_question(text: str) -> bool:
    """Ends with "?" (Whisper punctuates) or opens with a question word."""
    stripped = text.strip()
    if stripped.endswith("?"):
        return True
    first = _FIRST_WORD.match(stripped.lower())
    return first is not None and first.group(0) in QUESTION_WORDS


def _party_ok(want: str, party: Party | None) -> bool:
    return want == "any" or (party or Party.CALLER).value == want


class _Check:
    """One condition of one rule on one call: ``latched`` is when it first held."""

    latched: float | None = None

    def on_event(self, event: Event) -> None: ...

    def advance(self, now: float, settle: float) -> None: ...

    def finish(self, end: float) -> None: ...

    def _latch(self, t: float) -> None:
        if self.latched is None or t < self.latched:
            self.latched = t


class _Said(_Check):
    def __init__(self, c: Said) -> None:
        self.c = c
        self.matcher = PhraseMatcher(c.said, fuzzy=c.fuzzy, threshold=c.threshold)

    def on_event(self, event: Event) -> None:
        if isinstance(event, FinalTranscript) and _party_ok(self.c.party, event.party):
            if self.matcher.match(event.text) is not None:
                self._latch(event.t)


class _NotSaid(_Check):
    def __init__(self, c: NotSaid) -> None:
        self.c = c
        self.matcher = PhraseMatcher(c.not_said, fuzzy=c.fuzzy, threshold=c.threshold)
        self.said = False
        self.decided = False

    def on_event(self, event: Event) -> None:
        if isinstance(event, FinalTranscript) and _party_ok(self.c.party, event.party) and not self.said:
            began = event.start if event.start or event.end else event.t
            if began < self.c.by_s and self.matcher.match(event.text) is not None:
                self.said = True

    def advance(self, now: float, settle: float) -> None:
        if not self.decided and now >= self.c.by_s + settle:
            self._decide(self.c.by_s)

    def finish(self, end: float) -> None:
        if not self.decided:
            self._decide(min(self.c.by_s, end))

    def _decide(self, t: float) -> None:
        self.decided = True
        if not self.said:
            self._latch(t)


class _ToneHeld(_Check):
    def __init__(self, c: ToneHeld) -> None:
        self.c = c
        self.readings: list[tuple[float, str]] = []

    def on_event(self, event: Event) -> None:
        if isinstance(event, ToneUpdate) and (event.party or Party.CALLER).value == self.c.party:
            self.readings.append((event.t, event.label))
            self._check(None)

    def advance(self, now: float, settle: float) -> None:
        self._check(now - settle)

    def finish(self, end: float) -> None:
        self._check(end)

    def _check(self, confirmed_until: float | None) -> None:
        """Latch at ``start + held_s`` of the first run of in-set readings that lasted that long:
        shown by a later reading, or by the clock (``confirmed_until``) passing it."""
        if self.latched is not None:
            return
        held = self.c.held_s
        run_start: float | None = None
        for t, label in sorted(self.readings):
            if label in self.c.tone:
                if run_start is None:
                    run_start = t
                if t >= run_start + held:
                    self._latch(run_start + held)
                    return
            else:
                if run_start is not None and t >= run_start + held:
                    self._latch(run_start + held)
                    return
                run_start = None
        if run_start is not None and confirmed_until is not None and confirmed_until >= run_start + held:
            self._latch(run_start + held)


class _DeadAir(_Check):
    def __init__(self, c: DeadAir) -> None:
        self.c = c
        self.open_start: float | None = None

    def on_event(self, event: Event) -> None:
        if isinstance(event, DeadAirStarted):
            self.open_start = event.start
        elif isinstance(event, DeadAirEnded):
            self.open_start = None
            if event.end - event.start >= self.c.dead_air_s:
                self._latch(event.start + self.c.dead_air_s)

    def advance(self, now: float, settle: float) -> None:
        # dead air comes from the VAD, in frame order: the clock alone decides, no settling
        if self.open_start is not None and now >= self.open_start + self.c.dead_air_s:
            self._latch(self.open_start + self.c.dead_air_s)

    def finish(self, end: float) -> None:
        self.advance(end, 0.0)


class _TalkOver(_Check):
    def __init__(self, c: TalkOverCount) -> None:
        self.c = c
        self.times: list[float] = []

    def on_event(self, event: Event) -> None:
        if isinstance(event, TalkOver) and (self.c.by == "any" or event.started_by.value == self.c.by):
            self.times.append(event.t)
            if len(self.times) >= self.c.talk_over_count:
                self._latch(sorted(self.times)[self.c.talk_over_count - 1])


class _Unanswered(_Check):
    def __init__(self, c: UnansweredQuestion) -> None:
        self.c = c
        self.questions: list[float] = []
        """End times of caller questions not decided yet."""
        self.onsets: list[float] = []

    def on_event(self, event: Event) -> None:
        if event.party is Party.AGENT and isinstance(event, SpeechStarted):
            self.onsets.append(event.t)
        elif isinstance(event, FinalTranscript) and event.party is Party.AGENT and (event.start or event.end):
            self.onsets.append(event.start)
        elif isinstance(event, FinalTranscript) and event.party in (None, Party.CALLER) and is_question(event.text):
            self.questions.append(event.end or event.t)

    def advance(self, now: float, settle: float) -> None:
        self._decide(lambda q: now >= q + self.c.unanswered_question_s + settle)

    def finish(self, end: float) -> None:
        self._decide(lambda q: end >= q + self.c.unanswered_question_s)
        self.questions.clear()  # the call ended before the others were due

    def _decide(self, due: Callable[[float], bool]) -> None:
        wait = self.c.unanswered_question_s
        for q in [q for q in self.questions if due(q)]:
            self.questions.remove(q)
            if not any(q < o <= q + wait for o in self.onsets):
                self._latch(q + wait)


def _check_for(condition: object) -> _Check:
    match condition:
        case Said():
            return _Said(condition)
        case NotSaid():
            return _NotSaid(condition)
        case ToneHeld():
            return _ToneHeld(condition)
        case DeadAir():
            return _DeadAir(condition)
        case TalkOverCount():
            return _TalkOver(condition)
        case UnansweredQuestion():
            return _Unanswered(condition)
    raise TypeError(f"unknown condition {condition!r}")


@dataclass
class _RuleState:
    rule: Rule
    checks: list[_Check]
    fired: bool = False


@dataclass
class RulesEngine:
    """One call's rules; feed it the call's events in order and the clock."""

    rules: RulesFile
    settle_s: float = 3.0
    _states: list[_RuleState] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._states = [_RuleState(r, [_check_for(c) for c in r.when]) for r in self.rules.rules]

    def on_event(self, event: Event) -> list[Event]:
        if isinstance(event, RuleMatched):
            return []
        for state in self._open():
            for check in state.checks:
                check.on_event(event)
        return self._fired()

    def advance(self, now: float) -> list[Event]:
        """The call clock reached ``now``: decide what was waiting for it."""
        for state in self._open():
            for check in state.checks:
                check.advance(now, self.settle_s)
        return self._fired()

    def finish(self, end: float) -> list[Event]:
        for state in self._open():
            for check in state.checks:
                check.finish(end)
        return self._fired()

    def _open(self) -> list[_RuleState]:
        return [s for s in self._states if not s.fired]

    def _fired(self) -> list[Event]:
        out: list[Event] = []
        for state in self._open():
            times = [c.latched for c in state.checks]
            if any(t is None for t in times):
                continue
            state.fired = True
            rule, then = state.rule, state.rule.then
            out.append(RuleMatched(
                t=max(t for t in times if t is not None),
                rule=rule.name,
                categories=then.categories,
                message=then.alert,
                notify=then.notify if then.alert else (),
                because=tuple(f"{c.describe()} at {t:.1f} s" for c, t in zip(rule.when, times, strict=True)),
            ))
        return sorted(out, key=lambda e: e.t)
