"""Measures of the conversation itself, for calls with an agent bridged to the caller.

Built from the detectors' and the ACD's events (speech spans, talk-overs, tone updates, holds,
queue steps, parties joining and leaving), never from transcript words, so they hold whatever
the recognizer made of the audio. The call's IVR part and its queue wait are not conversation:
talk ratio counts only while an agent was connected, and a hold is neither a response gap nor
(in the live stage) dead air.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from speech.events import (
    Event,
    HoldEnded,
    HoldStarted,
    PartyJoined,
    PartyLeft,
    QueueAction,
    QueueUpdate,
    SpeechEnded,
    SupervisionChanged,
    TalkOver,
    ToneUpdate,
)
from speech.frames import Party
from summaries.summary import (
    UNKNOWN,
    HoldStats,
    PartyTone,
    QueueStats,
    ResponseGaps,
    SupervisionStep,
)
from summaries.summary_rules import TONE_ORDER

PARTIES = (Party.CALLER.value, Party.AGENT.value)
"""The parties every per-party map names, even with a zero."""
UNANSWERED = (QueueAction.ABANDONED, QueueAction.CALLBACK)
"""Queue steps that end a wait no agent answered."""
AGENT_TARGET = "agent:"
"""Prefix of a transfer target that is an agent, not a queue."""

Span = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Turn:
    """One stretch of speech of one party (a VAD utterance, or a final transcript's span)."""

    party: str
    start: float
    end: float


def speech_turns(evs: Sequence[Event], transcribed: Sequence[Turn]) -> list[Turn]:
    """Speech spans from VAD (``SpeechEnded``), else the transcripts' spans; by start time."""
    ends = [e for e in evs if isinstance(e, SpeechEnded)]
    if not ends:
        return sorted(transcribed, key=lambda t: t.start)
    turns = [Turn((e.party or Party.CALLER).value, e.start, e.start + e.duration) for e in ends]
    return sorted(turns, key=lambda t: t.start)


def connected_windows(evs: Sequence[Event], end: float) -> list[Span]:
    """When at least one agent was on the call: from a PartyJoined(agent) while none was, to the
    PartyLeft that left none (or the end of the call). Empty for calls no agent joined."""
    windows: list[Span] = []
    present: Counter[str] = Counter()
    since: float | None = None
    for e in evs:
        if isinstance(e, PartyJoined) and e.party == Party.AGENT:
            present[e.agent_id] += 1
            since = e.t if since is None else since
        elif isinstance(e, PartyLeft) and e.party == Party.AGENT and present[e.agent_id] > 0:
            present[e.agent_id] -= 1
            if since is not None and not +present:
                windows.append((since, e.t))
                since = None
    if since is not None:
        windows.append((since, max(since, end)))
    return windows


def talk_ratio(turns: Sequence[Turn], windows: Sequence[Span]) -> dict[str, float]:
    """Each party's share of the speech; with ``windows``, only speech inside them counts."""
    spoken: dict[str, float] = dict.fromkeys(PARTIES, 0.0)
    for turn in turns:
        span = (turn.start, turn.end)
        spoken[turn.party] = spoken.get(turn.party, 0.0) + (_overlap(span, windows) if windows else _length(span))
    total = sum(spoken.values())
    if total <= 0:
        return {p: 0.0 for p in PARTIES}
    return {p: round(spoken[p] / total, 3) for p in PARTIES}


def _length(span: Span) -> float:
    return max(0.0, span[1] - span[0])


def _overlap(span: Span, windows: Sequence[Span]) -> float:
    return sum(max(0.0, min(span[1], w1) - max(span[0], w0)) for w0, w1 in windows)


def talk_over_by(evs: Sequence[Event]) -> dict[str, int]:
    """Party → talk-overs it started."""
    counts = Counter(e.started_by.value for e in evs if isinstance(e, TalkOver))
    return {p: counts[p] for p in PARTIES} | dict(counts)


def hold_spans(evs: Sequence[Event], end: float) -> list[Span]:
    """Every hold's (start, end); one still open at the end of the call lasts until it."""
    spans: list[Span] = []
    opened: float | None = None
    for e in evs:
        if isinstance(e, HoldStarted) and opened is None:
            opened = e.t
        elif isinstance(e, HoldEnded):
            start = opened if opened is not None else (e.start or e.t - e.duration)
            spans.append((start, max(start, e.t)))
            opened = None
    if opened is not None:
        spans.append((opened, max(opened, end)))
    return spans


def hold_stats(holds: Sequence[Span]) -> HoldStats:
    return HoldStats(count=len(holds), total_s=round(sum(b - a for a, b in holds), 2))


def response_gaps(turns: Sequence[Turn], holds: Sequence[Span], max_gap_s: float) -> ResponseGaps:
    """From the end of a caller's turn to the start of the agent's next one, when the agent speaks
    next (the caller's turn is the last to have ended), within ``max_gap_s`` and with no hold in
    between. A backchannel inside an agent's turn is not a turn the agent answers."""
    gaps: list[float] = []
    last: Turn | None = None
    for turn in turns:
        if turn.party == Party.AGENT.value and last is not None and last.party == Party.CALLER.value:
            gap = turn.start - last.end
            held = any(a < turn.start and b > last.end for a, b in holds)
            if 0.0 <= gap <= max_gap_s and not held:
                gaps.append(gap)
        if last is None or turn.end >= last.end:
            last = turn
    if not gaps:
        return ResponseGaps()
    return ResponseGaps(count=len(gaps), mean_s=round(sum(gaps) / len(gaps), 2), max_s=round(max(gaps), 2))


def tone_by_party(evs: Sequence[Event]) -> dict[str, PartyTone]:
    """Per party with tone updates: its first and last label, and its worst (label order, then score)."""
    by_party: dict[str, list[ToneUpdate]] = {}
    for e in evs:
        if isinstance(e, ToneUpdate):
            by_party.setdefault((e.party or Party.CALLER).value, []).append(e)
    out: dict[str, PartyTone] = {}
    for party, tones in by_party.items():
        worst = max(tones, key=lambda e: (TONE_ORDER.get(e.label, 1), e.score))
        out[party] = PartyTone(start=tones[0].label or UNKNOWN, end=tones[-1].label or UNKNOWN, worst=worst.label or UNKNOWN)
    return out


def supervision_steps(evs: Sequence[Event]) -> tuple[SupervisionStep, ...]:
    """Every ``SupervisionChanged`` of the call, as the record keeps them."""
    return tuple(
        SupervisionStep(t=round(e.t, 2), supervisor_id=e.supervisor_id, mode=e.mode.value,
                        previous=e.previous.value, agent_id=e.agent_id, reason=e.reason,
                        requested=e.requested.value if e.requested is not None else "")
        for e in evs if isinstance(e, SupervisionChanged))


def queue_stats(evs: Sequence[Event]) -> QueueStats:
    """The queues the call went through, how long it waited, who answered and how often it was
    transferred. A transfer may show as a QueueUpdate(transferred), a PartyLeft(transfer) or both:
    the larger of the two counts is taken, so neither emitter's habit double counts."""
    updates = [e for e in evs if isinstance(e, QueueUpdate)]
    joins = [e for e in evs if isinstance(e, PartyJoined) and e.party == Party.AGENT]
    queues = _queues(updates, joins)
    answered = [e.wait_s for e in updates if e.action == QueueAction.CONNECTED] or [e.wait_s for e in joins]
    unanswered = updates[-1].wait_s if updates and updates[-1].action in UNANSWERED else 0.0
    transfers = max(
        sum(e.action == QueueAction.TRANSFERRED for e in updates),
        sum(isinstance(e, PartyLeft) and e.party == Party.AGENT and e.reason == "transfer" for e in evs),
    )
    return QueueStats(
        name=queues[0] if queues else "",
        queues=tuple(queues),
        wait_s=round(sum(answered) + unanswered, 2),
        agent_ids=tuple(dict.fromkeys(e.agent_id for e in joins if e.agent_id)),
        transfers=transfers,
    )


def _queues(updates: Sequence[QueueUpdate], joins: Sequence[PartyJoined]) -> list[str]:
    """Queue names in order of appearance: each update's queue and a queue it moves the call to."""
    names: list[str] = []
    steps: list[QueueUpdate | PartyJoined] = sorted([*updates, *joins], key=lambda e: e.t)
    for e in steps:
        target = e.target if isinstance(e, QueueUpdate) and e.action in (QueueAction.OVERFLOW, QueueAction.TRANSFERRED) else ""
        for name in (e.queue, "" if target.startswith(AGENT_TARGET) else target):
            if name and name not in names:
                names.append(name)
    return names
