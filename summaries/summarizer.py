"""Offline, deterministic after-call summary from a call's events.

Keyword and pattern rules over the final transcripts, plus counts from the detectors (tone, dead
air, talk-over, DTMF, IVR) and measures of the conversation (``summaries.conversation``: talk
ratio while an agent was connected, holds, response gaps, queue). Transcripts from an offline
recognizer are noisy, so each conclusion needs a clear cue and a margin over the alternatives, and
otherwise stays ``"unknown"``; each one carries the transcript spans it came from. The rules themselves are in ``summaries.summary_rules``.

Redact first (``summaries.redact``), then summarize: the summary quotes transcripts.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from speech.events import (
    CallEnded,
    CallStarted,
    DeadAirEnded,
    DeadAirStarted,
    DtmfDigit,
    Event,
    FinalTranscript,
    IvrAction,
    IvrStep,
    TalkOver,
    ToneAlert,
    ToneUpdate,
)
from speech.frames import Party
from summaries import assist_notes, conversation, knowledge_notes
from summaries.spoken import digit_runs
from summaries.summary import (
    UNKNOWN,
    CallSummary,
    Entity,
    Evidence,
    FollowUp,
    ToneAlertNote,
    ToneMark,
)
from summaries.summary_rules import (
    ACTION_PATTERN,
    AMOUNT_PATTERN,
    CALLER_STEP_PATTERN,
    DATE_PATTERN,
    DTMF_NODE_KINDS,
    DUE_PATTERN,
    ESCALATION_CUES,
    IN_CALL_STEP,
    MIN_NUMBER_DIGITS,
    NUMBER_CONTEXT,
    PASSIVE_ACTION,
    PROMISE_PATTERN,
    REASON_CUES,
    RESOLVED_CUES,
    STOPWORDS,
    TONE_ORDER,
    UNRESOLVED_CUES,
    SummaryRules,
)


@dataclass(frozen=True, slots=True)
class _Utt:
    party: str
    start: float
    end: float
    text: str

    @property
    def evidence(self) -> Evidence:
        return Evidence(self.start, self.end, self.party, self.text)


def summarize(events: Iterable[Event], *, call_id: str | None = None, rules: SummaryRules | None = None) -> CallSummary:
    """Summarize one call's events (any order; sorted by call time here)."""
    rules = rules or SummaryRules()
    evs = sorted(events, key=lambda e: e.t)
    utts = _utterances(evs)
    evidence: dict[str, tuple[Evidence, ...]] = {}
    started = next((e for e in evs if isinstance(e, CallStarted)), None)
    ended = next((e for e in reversed(evs) if isinstance(e, CallEnded)), None)
    cid = call_id or next((e.call_id for e in evs if e.call_id), "")

    reason, phrase, reason_ev, reason_hits = _reason(utts, rules)
    evidence["reason"] = reason_ev
    actions, actions_ev = _matches(utts, (ACTION_PATTERN, PASSIVE_ACTION), party=Party.AGENT.value, rules=rules)
    evidence["actions_taken"] = actions_ev
    follow_ups, fu_ev = _follow_ups(utts, PROMISE_PATTERN, "agent", rules, skip=IN_CALL_STEP)
    evidence["follow_ups"] = fu_ev
    next_steps, ns_ev = _follow_ups(utts, CALLER_STEP_PATTERN, "caller", rules)
    evidence["next_steps"] = ns_ev
    resolution, res_ev, res_hits = _resolution(utts, follow_ups)
    evidence["resolution"] = res_ev
    entities, ent_ev = _entities(utts, evs)
    evidence["entities"] = ent_ev
    key_phrases = _key_phrases(utts, [*reason_hits, *res_hits], rules)
    evidence["key_phrases"] = tuple(u.evidence for u in utts if any(k in u.text.lower() for k in key_phrases))

    # the call's tone arc is the caller's (the agent's has its own line, ``tone_by_party``)
    tones = [e for e in evs if isinstance(e, ToneUpdate) and e.party in (None, Party.CALLER)]
    arc = tuple(ToneMark(round(e.t, 2), e.label, round(e.score, 3)) for e in tones)
    peak = max(tones, key=lambda e: (e.score, TONE_ORDER.get(e.label, 1))).label if tones else UNKNOWN
    alerts = tuple(ToneAlertNote(round(e.t, 2), e.kind, tuple(e.reasons)) for e in evs if isinstance(e, ToneAlert))
    evidence["tone_arc"] = tuple(
        u.evidence for u in utts for e in tones if e.end > e.start and u.start < e.end and u.end > e.start
    )

    duration = ended.duration if ended and ended.duration else (evs[-1].t if evs else 0.0)
    dead_total, dead_count = _dead_air(evs, duration)
    ivr_path, ivr_end = _ivr(evs)
    turns = conversation.speech_turns(evs, [conversation.Turn(u.party, u.start, u.end) for u in utts])
    holds = conversation.hold_spans(evs, duration)
    return CallSummary(
        call_id=cid,
        producer="offline",
        caller=started.caller if started else "",
        callee=started.callee if started else "",
        started_at=started.started_at if started else "",
        reason=reason,
        reason_phrase=phrase,
        actions_taken=actions,
        resolution=resolution,
        next_steps=next_steps,
        follow_ups=follow_ups,
        entities=entities,
        key_phrases=key_phrases,
        tone_start=tones[0].label if tones else UNKNOWN,
        tone_end=tones[-1].label if tones else UNKNOWN,
        tone_peak=peak,
        tone_arc=arc,
        tone_alerts=alerts,
        dead_air_total_s=round(dead_total, 2),
        dead_air_count=dead_count,
        talk_ratio=conversation.talk_ratio(turns, conversation.connected_windows(evs, duration)),
        talk_over_count=sum(isinstance(e, TalkOver) for e in evs),
        talk_over_by=conversation.talk_over_by(evs),
        hold=conversation.hold_stats(holds),
        agent_response_gap_s=conversation.response_gaps(turns, holds, rules.max_response_gap_s),
        tone_by_party=conversation.tone_by_party(evs),
        queue=conversation.queue_stats(evs),
        supervision=conversation.supervision_steps(evs),
        dtmf="".join(e.digit for e in evs if isinstance(e, DtmfDigit)),
        ivr_path=ivr_path,
        duration=round(duration, 2),
        handle_time=round(max(0.0, duration - ivr_end), 2),
        end_reason=ended.reason if ended else UNKNOWN,
        categories=assist_notes.categories(evs),
        rules=assist_notes.rule_notes(evs),
        cues=assist_notes.cue_notes(evs),
        checklist=assist_notes.checklist_note(evs),
        articles=knowledge_notes.article_notes(evs),
        evidence={k: v for k, v in evidence.items() if v},
    )


def _utterances(evs: Sequence[Event]) -> list[_Utt]:
    out = []
    for e in evs:
        if isinstance(e, FinalTranscript) and e.text.strip():
            party = (e.party or Party.CALLER).value
            start = e.start if e.start or e.end else e.t
            end = e.end if e.end else e.t
            out.append(_Utt(party, start, end, " ".join(e.text.split())))
    return sorted(out, key=lambda u: u.start)


def _reason(utts: list[_Utt], rules: SummaryRules) -> tuple[str, str, tuple[Evidence, ...], list[str]]:
    scores: defaultdict[str, float] = defaultdict(float)
    best_utt: dict[str, tuple[float, _Utt]] = {}
    hits: dict[str, list[str]] = {}
    caller_seen = 0
    for u in utts:
        is_caller = u.party == Party.CALLER.value
        weight = rules.caller_weight if is_caller else rules.agent_weight
        if is_caller:
            caller_seen += 1
            if caller_seen <= rules.early_utterances:
                weight += rules.early_bonus
        low = u.text.lower()
        for cat, cues in REASON_CUES.items():
            found = [m.group(0) for c in cues for m in re.finditer(c, low)]
            if not found:
                continue
            s = weight * len(found)
            scores[cat] += s
            hits.setdefault(cat, []).extend(found)
            if cat not in best_utt or s > best_utt[cat][0]:
                best_utt[cat] = (s, u)
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    if not ranked or ranked[0][1] < rules.min_reason_score:
        return UNKNOWN, "", (), []
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < rules.reason_margin:
        return UNKNOWN, "", tuple(best_utt[c][1].evidence for c, _ in ranked[:2]), []
    cat = ranked[0][0]
    utt = best_utt[cat][1]
    return cat, utt.text[: rules.max_phrase_chars], (utt.evidence,), hits[cat]


def _matches(
    utts: list[_Utt], patterns: Sequence[re.Pattern[str]], *, party: str, rules: SummaryRules
) -> tuple[tuple[str, ...], tuple[Evidence, ...]]:
    """Phrases ``party`` said that match, and the utterance of each (``evidence[i]`` supports
    phrase ``i``, so every action has its own transcript times)."""
    found: list[str] = []
    ev: list[Evidence] = []
    for u in utts:
        if u.party != party:
            continue
        for pat in patterns:
            for m in pat.finditer(u.text):
                phrase = m.group(1).strip()[: rules.max_phrase_chars]
                if phrase and phrase.lower() not in (f.lower() for f in found):
                    found.append(phrase)
                    ev.append(u.evidence)
    return tuple(found), tuple(ev)


def _follow_ups(
    utts: list[_Utt], pattern: re.Pattern[str], owner: str, rules: SummaryRules, *, skip: re.Pattern[str] | None = None
) -> tuple[tuple[FollowUp, ...], tuple[Evidence, ...]]:
    """What the agent said will happen after the call (``owner`` does it); ``skip``: phrasings
    about the call itself ("I'll put you on hold"). Each carries its utterance's start time."""
    out: list[FollowUp] = []
    ev: list[Evidence] = []
    for u in utts:
        if u.party != Party.AGENT.value:
            continue
        for m in pattern.finditer(u.text):
            text = m.group(1).strip()[: rules.max_phrase_chars]
            if not text or (skip is not None and skip.match(text)):
                continue
            due = DUE_PATTERN.search(text) or DUE_PATTERN.search(u.text)
            out.append(FollowUp(text=text, due=due.group(1).lower() if due else UNKNOWN, owner=owner, t=round(u.start, 2)))
            ev.append(u.evidence)
    return tuple(out), tuple(dict.fromkeys(ev))


def _resolution(utts: list[_Utt], follow_ups: Sequence[FollowUp]) -> tuple[str, tuple[Evidence, ...], list[str]]:
    pos: list[_Utt] = []
    neg: list[_Utt] = []
    hits: list[str] = []
    for u in utts:
        low = u.text.lower()
        p = [m.group(0) for c in RESOLVED_CUES for m in re.finditer(c, low)]
        n = [m.group(0) for c in UNRESOLVED_CUES for m in re.finditer(c, low)]
        if p:
            pos.append(u)
        if n:
            neg.append(u)
        hits += p + n
    escalated = any(re.search(c, f.text.lower()) for f in follow_ups for c in ESCALATION_CUES)
    ev = tuple(u.evidence for u in sorted({*pos, *neg}, key=lambda u: u.start))
    if pos and neg:
        # Whichever came last is where the call ended up; both present means at best partly.
        return ("partly" if pos[-1].start > neg[-1].start else "not"), ev, hits
    if pos:
        return ("partly" if escalated else "resolved"), ev, hits
    if neg:
        return "not", ev, hits
    return UNKNOWN, (), []


def _entities(utts: list[_Utt], evs: Sequence[Event]) -> tuple[tuple[Entity, ...], tuple[Evidence, ...]]:
    out: list[Entity] = []
    ev: list[Evidence] = []

    def add(ent: Entity, u: _Utt | None = None) -> None:
        if any(e.kind == ent.kind and e.value == ent.value for e in out):
            return
        out.append(ent)
        if u is not None:
            ev.append(u.evidence)

    for u in utts:
        for run in digit_runs(u.text):
            if len(run.digits) < MIN_NUMBER_DIGITS:
                continue
            before = u.text[max(0, run.start - 40) : run.start]
            kind = next((k for k, pat in NUMBER_CONTEXT if pat.search(before)), None)
            if kind:
                add(Entity(kind, run.digits, "transcript", round(u.start, 2)), u)
        for m in AMOUNT_PATTERN.finditer(u.text):
            add(Entity("amount", m.group(1).strip(), "transcript", round(u.start, 2)), u)
        for m in DATE_PATTERN.finditer(u.text):
            add(Entity("date", m.group(1).lower(), "transcript", round(u.start, 2)), u)
    for node, digits, t in _ivr_inputs(evs):
        kind = next((k for key, k in DTMF_NODE_KINDS if key in node.lower()), "ivr_input")
        add(Entity(kind, digits, "dtmf", round(t, 2)))
    return tuple(out), tuple(dict.fromkeys(ev))


def _ivr_inputs(evs: Sequence[Event]) -> list[tuple[str, str, float]]:
    """(node, digits, t) collected by the IVR: a collect step's digits, else the keys since enter."""
    out: list[tuple[str, str, float]] = []
    node: str | None = None
    keyed = ""
    for e in evs:
        if isinstance(e, IvrStep):
            if e.action == IvrAction.ENTER:
                node, keyed = e.node, ""
            elif e.action == IvrAction.COLLECT:
                value = e.detail.get("digits") or e.detail.get("value") or keyed
                if value:
                    out.append((e.node, str(value), e.t))
                node, keyed = None, ""
        elif isinstance(e, DtmfDigit) and node is not None:
            keyed += e.digit
    return out


def _key_phrases(utts: list[_Utt], cue_hits: list[str], rules: SummaryRules) -> tuple[str, ...]:
    phrases: list[str] = []
    for hit in dict.fromkeys(h.lower().strip() for h in cue_hits):
        stems = _stems(hit)
        # "is not work" and "not working" are one phrase twice: keep the first.
        if not any(hit in p or p in hit or len(stems & _stems(p)) >= 2 for p in phrases):
            phrases.append(hit)
    words: Counter[str] = Counter()
    for u in utts:
        for w in re.findall(r"[a-z][a-z']+", u.text.lower()):
            if w not in STOPWORDS and len(w) > 3:
                words[w] += 1
    for w, n in words.most_common():
        if n < rules.min_key_word_count or len(phrases) >= rules.max_key_phrases:
            break
        if not any(w in p for p in phrases):
            phrases.append(w)
    return tuple(phrases[: rules.max_key_phrases])


def _stems(phrase: str) -> set[str]:
    return {w[:4] for w in phrase.split()}


def _dead_air(evs: Sequence[Event], duration: float) -> tuple[float, int]:
    total, count, open_start = 0.0, 0, None
    for e in evs:
        if isinstance(e, DeadAirStarted):
            open_start = e.start or e.t
        elif isinstance(e, DeadAirEnded):
            total += e.duration or (e.end - e.start)
            count += 1
            open_start = None
    if open_start is not None and duration > open_start:
        total += duration - open_start
        count += 1
    return total, count


def _ivr(evs: Sequence[Event]) -> tuple[tuple[str, ...], float]:
    path: list[str] = []
    end = 0.0
    for e in evs:
        if isinstance(e, IvrStep):
            if e.action == IvrAction.ENTER and (not path or path[-1] != e.node):
                path.append(e.node)
            end = e.t
    return tuple(path), end
