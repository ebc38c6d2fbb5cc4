"""Scoring one call on an evaluation form: events (so far) → the scorecard dict.

One pure function, live and final: the live stage calls it on the events of a call in progress,
the after-call path on the whole (redacted) call. Every answer carries a short ``why`` and its
evidence (call-clock times, party, the words heard), so a reviewer can check it by listening.
Score = weights answered yes / weights that apply × 100 (None when nothing applies).

Schema of the dict (stored in ``qa_scores.data``, sent as ``qa.scorecard``, served by the API)::

    {form_id, form_version, title, final, score, passed, points, max_points, pass_score,
     sections: [{id, title, score}],
     answers: [{question_id, section_id, text, weight, answer, auto_answer, overridden, why,
                evidence: [{t_start, t_end, party, text}]}]}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from qa.forms import (
    AutoAnswer,
    DeadAirAnswer,
    Form,
    HoldAnswer,
    IvrAnswer,
    Question,
    RespondAnswer,
    RuleAnswer,
    SaidAnswer,
    SaidBeforeAnswer,
    TalkOverAnswer,
    ToneEndAnswer,
    Trigger,
)
from qa.patterns import matcher
from speech.events import (
    AssistCue,
    CallEnded,
    DtmfDigit,
    Event,
    FinalTranscript,
    HoldEnded,
    HoldStarted,
    IvrAction,
    IvrStep,
    PartyJoined,
    PartyLeft,
    PlaybackEnded,
    PlaybackStarted,
    RuleMatched,
    SpeechEnded,
    TalkOver,
    ToneAlert,
    ToneUpdate,
)
from speech.frames import Party

E = TypeVar("E", bound=Event)
Answer = Literal["yes", "no", "na"]
Memo = dict[tuple[tuple[str, ...], float, str], "str | None"]
"""(phrases, threshold, text) → the phrase matched: a live call's stage keeps one per call."""
ANSWERS: tuple[str, ...] = ("yes", "no", "na")
HOLD_REPLY_S = 6.0
"""A hold stays announced through this much caller speech after the announcement ("okay, thanks")."""
QUIET = frozenset({HoldStarted, HoldEnded, PlaybackStarted, PlaybackEnded})
TRIGGER_SLACK_S = 2.0
"""A response may begin this long before a trigger's reading (tone is read at an utterance's end)."""


@dataclass(frozen=True, slots=True)
class Said:
    party: str
    start: float
    end: float
    text: str

    def evidence(self) -> dict[str, Any]:
        return {"t_start": round(self.start, 2), "t_end": round(self.end, 2), "party": self.party, "text": self.text}


@dataclass(frozen=True, slots=True)
class Result:
    answer: Answer
    why: str
    evidence: tuple[dict[str, Any], ...] = ()


def _span(start: float, end: float, party: str, text: str = "") -> dict[str, Any]:
    return {"t_start": round(start, 2), "t_end": round(end, 2), "party": party, "text": text}


class CallView:
    """The facts of a call the answer kinds read, gathered once per scoring."""

    def __init__(self, events: Iterable[Event], memo: Memo | None = None) -> None:
        self.memo: Memo = {} if memo is None else memo
        evs = list(events)
        self.events = evs
        self.kinds: dict[type, list[Event]] = {}
        for e in evs:  # by class once: each answer kind reads only its own events
            self.kinds.setdefault(type(e), []).append(e)
        self.now = max((e.t for e in evs), default=0.0)
        self.ended = bool(self.of(CallEnded))
        self.said = [Said((e.party or Party.CALLER).value, e.start, e.end, e.text)
                     for e in self.of(FinalTranscript) if e.text.strip()]
        self.said.sort(key=lambda s: s.start)
        self.joined: dict[str, float] = {}
        self.left: dict[str, float] = {}
        for joined in self.of(PartyJoined):
            if joined.party is not None:
                self.joined.setdefault(joined.party.value, joined.t)
        for left in self.of(PartyLeft):
            if left.party is not None:
                self.left[left.party.value] = left.t
        for s in self.said:
            self.joined.setdefault(s.party, s.start)
        vad = [e for e in self.of(SpeechEnded) if e.party is not None]
        self.speech = sorted(
            [(e.start, e.start + e.duration, e.party.value) for e in vad if e.party is not None] if vad
            else [(s.start, s.end, s.party) for s in self.said])

    def of(self, cls: type[E]) -> list[E]:
        """The call's events of exactly this class, in call order."""
        return cast(list[E], self.kinds.get(cls, []))

    def match(self, phrases: tuple[str, ...], threshold: float, text: str) -> str | None:
        """The phrase heard in ``text`` (fuzzy), remembered: re-scoring a live call matches only
        its new utterances."""
        key = (phrases, threshold, text)
        if key not in self.memo:
            self.memo[key] = matcher(phrases, threshold).match(text)
        return self.memo[key]

    def present(self, party: str) -> bool:
        return party in self.joined

    def by(self, party: str) -> list[Said]:
        return [s for s in self.said if s.party == party]

    def first_match(self, phrases: tuple[str, ...], threshold: float, party: str | None) -> tuple[Said, str] | None:
        for s in self.said:
            if party is not None and s.party != party:
                continue
            hit = self.match(phrases, threshold, s.text)
            if hit is not None:
                return s, hit
        return None

    def quiet_spans(self) -> list[tuple[float, float]]:
        """Holds and prompts/music: neither party is silent then."""
        out: list[tuple[float, float]] = []
        opened: dict[str, float] = {}
        for e in self.events:
            if type(e) not in QUIET:
                continue
            if isinstance(e, HoldStarted):
                opened["hold"] = e.t
            elif isinstance(e, PlaybackStarted):
                opened["playback"] = e.t
            elif isinstance(e, HoldEnded):
                out.append((e.start or opened.get("hold", e.t), e.t))
                opened.pop("hold", None)
            elif isinstance(e, PlaybackEnded):
                out.append((opened.pop("playback", e.t), e.t))
        out += [(t, self.now) for t in opened.values()]
        return out


def _said(q: SaidAnswer, call: CallView) -> Result:
    if not call.present(q.party):
        return Result("na", f"no {q.party} on the call")
    joined = call.joined[q.party]
    mine = call.by(q.party)
    window = mine
    where = ""
    if q.within_s is not None:
        window = [s for s in window if joined - 1.0 <= s.start <= joined + q.within_s]
        where = f" within {q.within_s:g} s of joining"
    if q.last_s is not None and mine:
        last = max(s.end for s in mine)
        window = [s for s in window if s.start >= last - q.last_s]
        where += f" in the last {q.last_s:g} s"
    for s in window:
        hit = call.match(q.said, q.fuzzy_threshold, s.text)
        if hit is not None:
            return Result("yes", f"{q.party} said \"{hit}\"{where}", (s.evidence(),))
    if q.items:  # distinct items heard (an action done, a next step, a time frame...), each first
        heard = {item: s for item in q.items for s in reversed(window)
                 if call.match((item,), q.fuzzy_threshold, s.text) is not None}
        evidence = tuple({s.start: s.evidence() for s in sorted(heard.values(), key=lambda s: s.start)}.values())
        verdict: Answer = "yes" if len(heard) >= q.min_items else "no"
        if heard:
            return Result(verdict, f"{q.party} said {len(heard)} of the items (at least {q.min_items}){where}",
                          evidence)
    return Result("no", f"{q.party} said none of the phrases{where}")


def _said_before(q: SaidBeforeAnswer, call: CallView) -> Result:
    then_party = None if q.then_party == "any" else q.then_party
    then = call.first_match(q.then, q.fuzzy_threshold, then_party)
    if then is None:
        return Result("na", "the topic never came up")
    then_said, then_hit = then
    first = call.first_match(q.said_before, q.fuzzy_threshold, q.party)
    if first is not None and first[0].start <= then_said.start:
        said, hit = first
        return Result("yes", f"{q.party} said \"{hit}\" before \"{then_hit}\"",
                      tuple({s.start: s.evidence() for s in (said, then_said)}.values()))
    late = f" (only later, at {first[0].start:.1f} s)" if first is not None else ""
    return Result("no", f"\"{then_hit}\" came before any of the phrases{late}", (then_said.evidence(),))


def _triggers(t: Trigger, call: CallView) -> list[tuple[float, float, str, dict[str, Any]]]:
    """(start, anchor, why, evidence) of every trigger: a response may begin from ``start - slack``
    until ``anchor + within_s``."""
    out: list[tuple[float, float, str, dict[str, Any]]] = []
    if t.tone_alert:
        for a in call.of(ToneAlert):
            if a.party is None or a.party.value == t.party:
                out.append((a.t, a.t, f"tone alert ({a.kind})", _span(a.t, a.t, t.party)))
    if t.tone:
        for u in call.of(ToneUpdate):
            if u.label in t.tone and u.party is not None and u.party.value == t.party:
                start, end = u.start or u.t, u.end or u.t
                out.append((start, end, f"{t.party} sounded {u.label}", _span(start, end, t.party)))
    for r in call.of(RuleMatched):
        if r.rule in t.rule:
            out.append((r.t, r.t, f"rule {r.rule}", _span(r.t, r.t, t.party)))
    if t.cue:
        out += [(c.t, c.t, "de-escalation cue", _span(c.t, c.t, t.party)) for c in call.of(AssistCue)]
    if t.said:
        for s in call.by(t.party):
            hit = call.match(t.said, t.fuzzy_threshold, s.text)
            if hit is not None:
                out.append((s.start, s.end, f"{t.party} said \"{hit}\"", s.evidence()))
    return sorted(out, key=lambda x: x[1])


def _respond(q: RespondAnswer, call: CallView) -> Result:
    triggers = _triggers(q.trigger, call)
    if not triggers:
        return Result("na", "nothing triggered it")
    if not call.present(q.party):
        return Result("na", f"no {q.party} on the call")
    episodes: list[list[tuple[float, float, str, dict[str, Any]]]] = []
    for trig in triggers:  # triggers close together are one episode: one response answers them
        if episodes and trig[0] <= episodes[-1][-1][1] + q.within_s:
            episodes[-1].append(trig)
        else:
            episodes.append([trig])
    replies = call.by(q.party)
    answered, missed = [], []
    for ep in episodes:
        start, anchor = ep[0][0] - TRIGGER_SLACK_S, ep[-1][1]
        reply = next(((s, hit) for s in replies if start <= s.start <= anchor + q.within_s
                      and (hit := call.match(q.respond, q.fuzzy_threshold, s.text)) is not None), None)
        if reply is not None:
            answered.append((ep, reply))
        elif call.ended or call.now > anchor + q.within_s:
            missed.append(ep)
    if not answered and not missed:
        return Result("na", "waiting for the response window to close")
    if (q.require == "any" and answered) or (q.require == "all" and not missed):
        ep, (s, hit) = answered[0]
        return Result("yes", f"{ep[0][2]}; {q.party} said \"{hit}\" within {q.within_s:g} s",
                      (ep[0][3], s.evidence()))
    ep = missed[0]
    return Result("no", f"{ep[0][2]}; no response from the {q.party} within {q.within_s:g} s",
                  tuple(x[3] for x in ep[:3]))


def _dead_air(q: DeadAirAnswer, call: CallView) -> Result:
    if not call.present("agent"):
        return Result("na", "no agent on the call")
    lo = call.joined["agent"]
    hi = call.left.get("agent", call.now)
    activity = [(a, b, p) for a, b, p in call.speech] + [(a, b, "hold") for a, b in call.quiet_spans()]
    activity = sorted((max(a, lo), min(b, hi), p) for a, b, p in activity if b > lo and a < hi)
    agent = call.by("agent")
    gaps: list[tuple[float, float, str]] = []
    prev_end, prev_party = lo, "join"
    for a, b, p in activity:
        if a - prev_end > q.max_dead_air_s:
            caller_side = prev_party == "agent" and p == "caller"
            side = "caller" if caller_side else "agent"
            if not (side == "agent" and _announced(q, call, agent, prev_end)):
                gaps.append((prev_end, a, side))
        if b >= prev_end:
            prev_end, prev_party = b, p
    mine = [g for g in gaps if g[2] == q.party]
    if not mine:
        return Result("yes", f"no silence over {q.max_dead_air_s:g} s on the {q.party}'s side")
    worst = max(mine, key=lambda g: g[1] - g[0])
    return Result("no", f"{worst[1] - worst[0]:.1f} s of silence on the {q.party}'s side "
                        f"(limit {q.max_dead_air_s:g} s)", tuple(_span(a, b, q.party) for a, b, _ in mine))


def _announced(q: DeadAirAnswer, call: CallView, agent: list[Said], silence_from: float) -> bool:
    """The agent's last utterance before the silence announced a hold ("bear with me while I
    check"), and the caller said little since (a short "okay" does not undo the announcement)."""
    before = [s for s in agent if s.start < silence_from - 0.05]
    if not before:
        return False
    last = before[-1]
    caller_since = sum(min(s.end, silence_from) - max(s.start, last.end) for s in call.by("caller")
                       if s.end > last.end and s.start < silence_from)
    return caller_since <= HOLD_REPLY_S and call.match(q.announced, q.fuzzy_threshold, last.text) is not None


def _talk_over(q: TalkOverAnswer, call: CallView) -> Result:
    overs = [e for e in call.of(TalkOver) if e.started_by.value == q.party]
    ev = tuple(_span(e.start, e.end, q.party) for e in overs)
    verdict: Answer = "yes" if len(overs) <= q.max_talk_overs else "no"
    return Result(verdict, f"{q.party} talked over {len(overs)} time(s) (at most {q.max_talk_overs})", ev)


def _hold(q: HoldAnswer, call: CallView) -> Result:
    holds = [(e.start, e.t) for e in call.of(HoldEnded) if e.by.value == q.party]
    holds += [(s.t, call.now) for s in call.of(HoldStarted) if s.by.value == q.party
              and not any(abs(a - s.t) < 0.01 for a, _ in holds)]
    lengths = [b - a for a, b in holds]
    worst = sum(lengths) if q.total else max(lengths, default=0.0)
    what = "holds in total" if q.total else "longest hold"
    verdict: Answer = "yes" if worst <= q.max_hold_s else "no"
    return Result(verdict, f"{what} {worst:.0f} s (limit {q.max_hold_s:g} s)",
                  tuple(_span(a, b, q.party) for a, b in holds))


def _rule(q: RuleAnswer, call: CallView) -> Result:
    hit = next((e for e in call.of(RuleMatched) if e.rule == q.rule), None)
    matched = hit is not None
    verdict: Answer = "yes" if matched == q.matched else "no"
    why = f"rule {q.rule} {'matched' if matched else 'did not match'}"
    return Result(verdict, why, (_span(hit.t, hit.t, "", ""),) if hit is not None else ())


def _tone_end(q: ToneEndAnswer, call: CallView, summary: Any) -> Result:
    readings = [e for e in call.of(ToneUpdate) if e.party is not None and e.party.value == q.party]
    if readings:
        last = readings[-1]
        label = last.label
        ev: tuple[dict[str, Any], ...] = (_span(last.start or last.t, last.end or last.t, q.party),)
    elif summary is not None and q.party == "caller" and getattr(summary, "tone_end", "unknown") != "unknown":
        label, ev = str(summary.tone_end), ()
    else:
        return Result("na", f"no tone reading of the {q.party}")
    verdict: Answer = "yes" if label in q.tone_end else "no"
    return Result(verdict, f"the {q.party} ended {label}", ev)


def _ivr(q: IvrAnswer, call: CallView) -> Result:
    steps = call.of(IvrStep)
    if not steps:
        return Result("na", "the call had no IVR")
    entered = {e.node for e in steps if e.action == IvrAction.ENTER}
    missing = [n for n in q.ivr if n not in entered]
    keys = call.of(DtmfDigit)
    if missing:
        return Result("no", f"the IVR never reached {', '.join(missing)}")
    if q.dtmf and not keys:
        return Result("no", "no key was pressed")
    ev = tuple(_span(e.t, e.t, "ivr") for e in steps if e.node in q.ivr and e.action == IvrAction.ENTER)
    return Result("yes", "IVR " + ", ".join(q.ivr or ("used",)) + (" with keys pressed" if q.dtmf else ""), ev)


def answer_question(auto: AutoAnswer, call: CallView, summary: Any = None) -> Result:
    """One question's automatic answer."""
    match auto:
        case SaidBeforeAnswer():
            return _said_before(auto, call)
        case SaidAnswer():
            return _said(auto, call)
        case RespondAnswer():
            return _respond(auto, call)
        case DeadAirAnswer():
            return _dead_air(auto, call)
        case TalkOverAnswer():
            return _talk_over(auto, call)
        case HoldAnswer():
            return _hold(auto, call)
        case RuleAnswer():
            return _rule(auto, call)
        case ToneEndAnswer():
            return _tone_end(auto, call, summary)
        case IvrAnswer():
            return _ivr(auto, call)
    raise TypeError(f"unknown answer kind {type(auto).__name__}")


def _answer(q: Question, call: CallView, summary: Any) -> Result:
    if q.na_without_agent and not call.present("agent"):
        return Result("na", "no agent on the call")
    return answer_question(q.auto, call, summary)


def score_call(form: Form, events: Iterable[Event], summary: Any = None, *, final: bool = False,
               memo: Memo | None = None) -> dict[str, Any]:
    """The scorecard of a call (its events so far) on ``form``. ``summary``: the call's
    ``CallSummary`` when known (fills in what events lack, e.g. the caller's tone at the end);
    ``memo``: phrase matches of earlier scorings of the same call, kept between calls of this."""
    call = CallView(events, memo)
    answers = []
    for section, q in form.questions():
        r = _answer(q, call, summary)
        answers.append({
            "question_id": q.id, "section_id": section.id, "text": q.text, "weight": q.weight,
            "answer": r.answer, "auto_answer": r.answer, "overridden": False, "why": r.why,
            "evidence": list(r.evidence),
        })
    card: dict[str, Any] = {
        "form_id": form.id, "form_version": form.version, "title": form.title, "final": final,
        "pass_score": form.pass_score,
        "sections": [{"id": s.id, "title": s.title, "score": None} for s in form.sections],
        "answers": answers,
    }
    return rescore(card)


def _percent(answers: Sequence[Mapping[str, Any]]) -> tuple[float, float, float | None]:
    points = sum(float(a["weight"]) for a in answers if a["answer"] == "yes")
    applicable = sum(float(a["weight"]) for a in answers if a["answer"] in ("yes", "no"))
    return points, applicable, (round(100.0 * points / applicable, 1) if applicable else None)


def rescore(card: dict[str, Any]) -> dict[str, Any]:
    """Recompute points, score, pass and section scores from the answers (after overrides)."""
    answers = card["answers"]
    points, applicable, score = _percent(answers)
    card.update(points=points, max_points=applicable, score=score,
                passed=None if score is None else score >= float(card.get("pass_score", 80.0)))
    for section in card["sections"]:
        section["score"] = _percent([a for a in answers if a["section_id"] == section["id"]])[2]
    return card


def apply_overrides(card: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    """The card with reviewers' answers (question id → yes/no/na) in place of automatic ones."""
    out = {**card, "sections": [dict(s) for s in card["sections"]], "answers": []}
    for a in card["answers"]:
        a = dict(a)
        if a["question_id"] in overrides:
            a["answer"] = overrides[a["question_id"]]
            a["overridden"] = True
        out["answers"].append(a)
    return rescore(out)


def answers_of(card: Mapping[str, Any]) -> dict[str, str]:
    """Question id → answer: what the live stage compares to see whether anything changed."""
    return {a["question_id"]: a["answer"] for a in card.get("answers", ())}
