"""The after-call summary: one frozen record, JSON both ways, with evidence for every field.

Every field that comes from what people said carries the transcript spans that support it
(``evidence[field]``), so a reviewer can jump to the audio and a noisy recognizer's guess is
never presented without its source. Whatever cannot be told stays ``"unknown"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

UNKNOWN = "unknown"

REASONS = ("billing", "technical_support", "cancellation", "account", "complaint", "sales", UNKNOWN)
RESOLUTIONS = ("resolved", "partly", "not", UNKNOWN)


@dataclass(frozen=True, slots=True)
class Evidence:
    """A transcript span that supports a field."""

    t_start: float
    t_end: float
    party: str
    text: str


@dataclass(frozen=True, slots=True)
class FollowUp:
    """Something someone will do after the call; ``due`` is the spoken hint ("tomorrow")."""

    text: str
    due: str = UNKNOWN
    owner: str = "agent"
    """``agent`` for promises, ``caller`` for what the caller was asked to do."""
    t: float = 0.0


@dataclass(frozen=True, slots=True)
class Entity:
    """A value mentioned or keyed in: ``kind`` is account_number, order_number, amount, date..."""

    kind: str
    value: str
    source: str = "transcript"
    """``transcript`` or ``dtmf``."""
    t: float = 0.0


@dataclass(frozen=True, slots=True)
class ToneMark:
    t: float
    label: str
    score: float


@dataclass(frozen=True, slots=True)
class ToneAlertNote:
    t: float
    kind: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PartyTone:
    """One party's tone over the call: first and last label, and the worst label heard."""

    start: str = UNKNOWN
    end: str = UNKNOWN
    worst: str = UNKNOWN


@dataclass(frozen=True, slots=True)
class HoldStats:
    """Holds of the call; one still open at hang-up counts up to the end of the call."""

    count: int = 0
    total_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ResponseGaps:
    """Caller stops, agent starts: the silences in between (agent turns that follow a caller turn
    within ``SummaryRules.max_response_gap_s``, without a hold between). ``count`` 0: none seen."""

    count: int = 0
    mean_s: float = 0.0
    max_s: float = 0.0


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The call's way through the ACD: the first queue, all queues, the wait, who answered."""

    name: str = ""
    """The first queue the caller entered ("" if none)."""
    queues: tuple[str, ...] = ()
    """Every queue the call went through (entered, overflowed or was transferred to), in order."""
    wait_s: float = 0.0
    """Time waited in queues before agents answered, plus an unanswered wait at the end."""
    agent_ids: tuple[str, ...] = ()
    """Agents who joined, in order."""
    transfers: int = 0


@dataclass(frozen=True, slots=True)
class SupervisionStep:
    """A supervisor joined, switched mode or left (or a request failed: ``requested`` and
    ``reason`` say what and why)."""

    t: float
    supervisor_id: str
    mode: str
    previous: str
    agent_id: str = ""
    reason: str = ""
    requested: str = ""


@dataclass(frozen=True, slots=True)
class CueNote:
    """A de-escalation cue and what followed it (``assist.cue`` and ``assist.cue_outcome``)."""

    t: float
    trigger: str
    reasons: tuple[str, ...] = ()
    acknowledged: bool | None = None
    """Whether the agent acknowledged the caller within the window; None: not decided, or no
    agent spoke on the call."""
    ack_t: float | None = None
    tension: str = UNKNOWN
    """The caller's tension after the cue: eased, steady, rose or unknown."""
    scores: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleNote:
    """A live rule that fired (``rule.matched``)."""

    t: float
    rule: str
    categories: tuple[str, ...] = ()
    message: str = ""


@dataclass(frozen=True, slots=True)
class ChecklistNote:
    """The script checklist at the end of the call: item id → call time said (None: never)."""

    queue: str = ""
    items: dict[str, float | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ArticleNote:
    """A suggested knowledge article the agent marked (``assist.feedback``; the last mark counts):
    helpful means the article was used on the call."""

    article_id: str
    title: str = ""
    helpful: bool = True
    t: float = 0.0
    agent_id: str = ""


@dataclass(frozen=True)
class CallSummary:
    """What happened on a call, for the CRM, the webhook and the console."""

    call_id: str = ""
    producer: str = "offline"
    """Which summarizer produced it: ``offline`` or ``llm:<model>``."""
    caller: str = ""
    callee: str = ""
    started_at: str = ""
    reason: str = UNKNOWN
    reason_phrase: str = ""
    actions_taken: tuple[str, ...] = ()
    resolution: str = UNKNOWN
    next_steps: tuple[FollowUp, ...] = ()
    follow_ups: tuple[FollowUp, ...] = ()
    entities: tuple[Entity, ...] = ()
    key_phrases: tuple[str, ...] = ()
    tone_start: str = UNKNOWN
    tone_end: str = UNKNOWN
    tone_peak: str = UNKNOWN
    tone_arc: tuple[ToneMark, ...] = ()
    tone_alerts: tuple[ToneAlertNote, ...] = ()
    dead_air_total_s: float = 0.0
    dead_air_count: int = 0
    talk_ratio: dict[str, float] = field(default_factory=dict)
    """Party → share of speech; with an agent, counted only while the agent was connected."""
    talk_over_count: int = 0
    talk_over_by: dict[str, int] = field(default_factory=dict)
    """Party → talk-overs that party started."""
    hold: HoldStats = field(default_factory=HoldStats)
    agent_response_gap_s: ResponseGaps = field(default_factory=ResponseGaps)
    tone_by_party: dict[str, PartyTone] = field(default_factory=dict)
    """Party → its tone; only parties with tone updates."""
    queue: QueueStats = field(default_factory=QueueStats)
    supervision: tuple[SupervisionStep, ...] = ()
    """Supervisors' listen, whisper, barge and leave steps, in order (their voice is in no
    transcript, talk ratio or talk-over: it is never analyzed)."""
    dtmf: str = ""
    ivr_path: tuple[str, ...] = ()
    duration: float = 0.0
    handle_time: float = 0.0
    """Time with an agent or caller speaking after the IVR, i.e. duration minus IVR time."""
    end_reason: str = UNKNOWN
    categories: tuple[str, ...] = ()
    """Categories the live rules tagged the call with, sorted."""
    rules: tuple[RuleNote, ...] = ()
    cues: tuple[CueNote, ...] = ()
    """De-escalation cues: why, whether the agent acknowledged, where the caller's tension went."""
    checklist: ChecklistNote | None = None
    articles: tuple[ArticleNote, ...] = ()
    """Knowledge articles the agent marked helpful ("article X used") or not, in mark order."""
    evidence: dict[str, tuple[Evidence, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["evidence"] = {k: [asdict(e) for e in v] for k, v in self.evidence.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallSummary:
        """Rebuild from ``to_dict`` output; unknown keys are ignored, missing ones default."""
        known = set(cls.__dataclass_fields__)
        d = {k: v for k, v in data.items() if k in known}
        if "next_steps" in d:
            d["next_steps"] = tuple(FollowUp(**_pick(FollowUp, x)) for x in d["next_steps"] or ())
        if "follow_ups" in d:
            d["follow_ups"] = tuple(FollowUp(**_pick(FollowUp, x)) for x in d["follow_ups"] or ())
        if "entities" in d:
            d["entities"] = tuple(Entity(**_pick(Entity, x)) for x in d["entities"] or ())
        if "tone_arc" in d:
            d["tone_arc"] = tuple(
                ToneMark(*x) if isinstance(x, list | tuple) else ToneMark(**_pick(ToneMark, x))
                for x in d["tone_arc"] or ()
            )
        if "tone_alerts" in d:
            d["tone_alerts"] = tuple(
                ToneAlertNote(x["t"], x["kind"], tuple(x.get("reasons", ()))) for x in d["tone_alerts"] or ()
            )
        for key in ("actions_taken", "key_phrases", "ivr_path"):
            if key in d:
                d[key] = tuple(d[key] or ())
        if "evidence" in d:
            d["evidence"] = {
                k: tuple(Evidence(**_pick(Evidence, e)) for e in v) for k, v in (d["evidence"] or {}).items()
            }
        if "talk_ratio" in d:
            d["talk_ratio"] = dict(d["talk_ratio"] or {})
        if "talk_over_by" in d:
            d["talk_over_by"] = dict(d["talk_over_by"] or {})
        if "hold" in d:
            d["hold"] = HoldStats(**_pick(HoldStats, d["hold"] or {}))
        if "agent_response_gap_s" in d:
            d["agent_response_gap_s"] = ResponseGaps(**_pick(ResponseGaps, d["agent_response_gap_s"] or {}))
        if "queue" in d:
            d["queue"] = _queue_stats(d["queue"] or {})
        if "supervision" in d:
            d["supervision"] = tuple(SupervisionStep(**_pick(SupervisionStep, x)) for x in d["supervision"] or ())
        if "categories" in d:
            d["categories"] = tuple(d["categories"] or ())
        if "rules" in d:
            d["rules"] = tuple(RuleNote(**{**_pick(RuleNote, x), "categories": tuple(x.get("categories", ()))})
                               for x in d["rules"] or ())
        if "cues" in d:
            d["cues"] = tuple(CueNote(**{**_pick(CueNote, x), "reasons": tuple(x.get("reasons", ())),
                                         "scores": tuple(x.get("scores", ()))}) for x in d["cues"] or ())
        if "articles" in d:
            d["articles"] = tuple(ArticleNote(**_pick(ArticleNote, x)) for x in d["articles"] or ())
        if d.get("checklist") is not None:
            d["checklist"] = ChecklistNote(**_pick(ChecklistNote, d["checklist"]))
        if "tone_by_party" in d:
            d["tone_by_party"] = {k: PartyTone(**_pick(PartyTone, v)) for k, v in (d["tone_by_party"] or {}).items()}
        return cls(**d)


def _queue_stats(data: dict[str, Any]) -> QueueStats:
    q = _pick(QueueStats, data)
    for key in ("queues", "agent_ids"):
        if key in q:
            q[key] = tuple(q[key] or ())
    return QueueStats(**q)


def _pick(cls: type[DataclassInstance], data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
