"""Contact-center KPIs from stored calls: per-call facts, then aggregates per agent, queue or day.

Pure functions over :class:`CallInput` rows (``summaries.kpi_rows`` reads them from the CRM
store and the ACD's ``acd_queue`` table). Definitions, per call:

- **answered**: an ACD agent joined, or (a replayed two-party recording) the agent side spoke.
- **queued**: the call entered an ACD queue. **abandoned**: queued and hung up before an agent
  answered: not answered, and the ACD's last row for it is ``abandoned`` (or still ``waiting``/
  ``ringing``, or there is no row); a ``callback`` request, an ``overflow`` out of the ACD or a
  ``lost`` worker is not the caller giving up.
- **wait** (speed of answer): seconds in queues before an agent answered (summary, else ACD row).
- **handle time** = talk + hold + wrap-up, for answered calls only: talk + hold is the time after
  the IVR minus the queue wait; hold is the summary's hold total; wrap-up is the ACD's fixed
  ``acd.wrap_up_s`` once per ACD agent who answered. The ACD keeps each agent's *current* state
  only (``acd_agents.wrap_until``), no history, and holds every agent in wrap-up for exactly that
  setting after a call, so the setting is the per-call wrap-up.
- **first-contact resolution**: no later call from the same caller on the same reason within
  ``kpi.fcr_window_days`` (None when the caller is unknown or the call was not answered).
- **repeat contact**: an earlier call from the same caller on the same reason within the window.
- **dead-air share**: dead-air seconds / call duration. **talk-over**: the summary's count.
- **tone start → end**: the caller's first and last tone labels.
- **predicted CSAT**: :func:`predict_csat`, every term returned.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any, Literal

from summaries.kpi_settings import KpiSettings

GroupBy = Literal["agent", "queue", "day", "all"]
GROUPS: tuple[GroupBy, ...] = ("agent", "queue", "day", "all")
TONE_RANK = {"calm": 0, "neutral": 1, "tense": 2, "angry": 3}
CSAT_FORMULA = ("predicted CSAT = clamp(base + tone_end + resolution + wait + repeat_contact + dead_air, "
                "0, 100)")


@dataclass(frozen=True, slots=True)
class CallInput:
    """One stored call as the KPIs need it (no transcript text, caller only as a grouping key)."""

    call_id: str
    started_at: datetime | None
    contact: str = ""
    """Who called, as a key for repeat contacts ("" unknown); never shown."""
    agent_id: str = ""
    queue: str = ""
    reason: str = "unknown"
    resolution: str = "unknown"
    duration: float = 0.0
    summary: Mapping[str, Any] | None = None
    """The stored summary dict (``CallSummary.to_dict``), None when the call has none."""
    acd_status: str = ""
    """The ACD's last ``acd_queue.status`` for the call ("" no row)."""
    acd_wait_s: float | None = None
    quality: float | None = None
    """Mean QA score (percent) over the call's scorecards, None when none applies."""


@dataclass(frozen=True, slots=True)
class CsatTerm:
    name: str
    value: float
    """Contribution in points."""
    why: str


@dataclass(frozen=True, slots=True)
class CallFacts:
    """One call's KPI facts (what ``/api/kpis/calls`` returns)."""

    call_id: str
    day: str
    started_at: str
    agent_id: str
    queue: str
    reason: str
    resolution: str
    answered: bool
    queued: bool
    abandoned: bool
    wait_s: float
    talk_s: float
    hold_s: float
    wrap_up_s: float
    handle_s: float
    transfers: int
    fcr: bool | None
    repeat_contact: bool
    duration: float
    dead_air_s: float
    dead_air_share: float
    talk_over: int
    tone_start: str
    tone_end: str
    quality: float | None
    csat: float
    csat_terms: tuple[CsatTerm, ...] = ()
    topics: tuple[str, ...] = ()
    """``reason:x``, ``category:y``, ``phrase:z`` (rising topics)."""

    def to_dict(self) -> dict[str, Any]:
        """Flat (``asdict`` deep-copies, which costs more than computing the facts)."""
        out = {f: getattr(self, f) for f in _FACT_FIELDS}
        out["csat_terms"] = {t.name: t.value for t in self.csat_terms}
        return out


_FACT_FIELDS = tuple(f.name for f in fields(CallFacts) if f.name != "topics")


@dataclass(frozen=True, slots=True)
class GroupKpis:
    """Aggregates of a group of calls (an agent, a queue, a day or all)."""

    key: str
    calls: int
    answered: int
    queued: int
    abandoned: int
    abandon_rate: float | None
    aht_s: float | None
    talk_s: float | None
    hold_s: float | None
    wrap_up_s: float | None
    asa_s: float | None
    transfers: int
    transfer_rate: float | None
    fcr_rate: float | None
    dead_air_share: float | None
    talk_over_per_call: float | None
    tone_improved: float | None
    tone_worsened: float | None
    csat: float | None
    quality: float | None
    quality_calls: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Period:
    """Days ``start``..``end`` inclusive (None: open)."""

    start: date | None = None
    end: date | None = None

    def holds(self, day: str) -> bool:
        return bool(day) and (self.start is None or day >= self.start.isoformat()) and (
            self.end is None or day <= self.end.isoformat())


@dataclass(frozen=True, slots=True)
class Topic:
    kind: str
    topic: str
    current_calls: int
    current_share: float
    previous_calls: int
    previous_share: float
    change: float
    """Share points gained (current - previous)."""


@dataclass(frozen=True, slots=True)
class Bin:
    start_s: float
    end_s: float
    calls: int


# -- per call ----------------------------------------------------------------------------------


def call_facts(rows: Iterable[CallInput], settings: KpiSettings, wrap_up_s: float) -> list[CallFacts]:
    """Facts of every call, oldest first (repeat contacts need all rows of the window)."""
    ordered = sorted(rows, key=lambda r: (r.started_at or datetime.min, r.call_id))
    window = timedelta(days=settings.fcr_window_days)
    by_key: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for r in ordered:
        if r.contact and r.started_at is not None:
            by_key[(r.contact, r.reason)].append(r.started_at)
    return [_facts(r, settings, wrap_up_s, by_key, window) for r in ordered]


def _facts(r: CallInput, settings: KpiSettings, wrap_up_s: float,
           by_key: Mapping[tuple[str, str], list[datetime]], window: timedelta) -> CallFacts:
    s = r.summary or {}
    q = s.get("queue") or {}
    agents = [a for a in q.get("agent_ids") or () if a] or ([r.agent_id] if r.agent_id else [])
    agent_spoke = float((s.get("talk_ratio") or {}).get("agent", 0.0) or 0.0) > 0
    answered = bool(agents) or agent_spoke
    queued = bool(r.queue or q.get("name") or r.acd_status)
    abandoned = queued and not answered and (r.acd_status in ("", "abandoned", "waiting", "ringing"))
    wait = float(q["wait_s"]) if "wait_s" in q else (r.acd_wait_s or 0.0)
    duration = float(s.get("duration", r.duration) or r.duration or 0.0)
    hold = float((s.get("hold") or {}).get("total_s", 0.0) or 0.0)
    connected = max(0.0, float(s.get("handle_time", duration) or 0.0) - wait) if answered else 0.0
    hold = min(hold, connected)
    wrap = float(wrap_up_s) * len(agents) if answered else 0.0
    dead = float(s.get("dead_air_total_s", 0.0) or 0.0)
    share = dead / duration if duration > 0 else 0.0
    caller_tone = (s.get("tone_by_party") or {}).get("caller") or {}
    tone_start = str(caller_tone.get("start") or s.get("tone_start") or "unknown")
    tone_end = str(caller_tone.get("end") or s.get("tone_end") or "unknown")
    earlier = later = False
    if r.contact and r.started_at is not None:
        for t in by_key.get((r.contact, r.reason), ()):
            earlier = earlier or timedelta(0) < r.started_at - t <= window
            later = later or timedelta(0) < t - r.started_at <= window
    terms = predict_csat(settings, tone_end=tone_end, resolution=r.resolution, wait_s=wait,
                         repeat_contact=earlier, dead_air_share=share)
    topics = (f"reason:{r.reason}", *(f"category:{c}" for c in s.get("categories") or ()),
              *(f"phrase:{p}" for p in s.get("key_phrases") or ()))
    return CallFacts(
        call_id=r.call_id, day=r.started_at.date().isoformat() if r.started_at else "",
        started_at=r.started_at.isoformat() if r.started_at else "",
        agent_id=agents[0] if agents else "", queue=r.queue or str(q.get("name") or ""),
        reason=r.reason, resolution=r.resolution, answered=answered, queued=queued,
        abandoned=abandoned, wait_s=round(wait, 2), talk_s=round(connected - hold, 2),
        hold_s=round(hold, 2), wrap_up_s=round(wrap, 2), handle_s=round(connected + wrap, 2),
        transfers=int(q.get("transfers", 0) or 0),
        fcr=(not later) if answered and r.contact and r.started_at is not None else None,
        repeat_contact=earlier, duration=round(duration, 2), dead_air_s=round(dead, 2),
        dead_air_share=round(share, 4), talk_over=int(s.get("talk_over_count", 0) or 0),
        tone_start=tone_start, tone_end=tone_end,
        quality=None if r.quality is None else round(r.quality, 2),
        csat=round(min(100.0, max(0.0, sum(t.value for t in terms))), 2), csat_terms=terms,
        topics=tuple(dict.fromkeys(topics)),
    )


def predict_csat(settings: KpiSettings, *, tone_end: str, resolution: str, wait_s: float,
                 repeat_contact: bool, dead_air_share: float) -> tuple[CsatTerm, ...]:
    """The terms of the predicted satisfaction (their sum, clamped to 0-100, is the score)."""
    tone = {"calm": settings.csat_tone_calm, "neutral": settings.csat_tone_neutral,
            "tense": settings.csat_tone_tense, "angry": settings.csat_tone_angry}
    res = {"resolved": settings.csat_resolved, "partly": settings.csat_partly,
           "not": settings.csat_not_resolved}
    minutes = min(max(0.0, wait_s) / 60.0, settings.csat_wait_cap_min)
    pct = 100.0 * max(0.0, dead_air_share)
    return (
        CsatTerm("base", settings.csat_base, "every call"),
        CsatTerm("tone_end", tone.get(tone_end, 0.0), f"caller's last tone: {tone_end}"),
        CsatTerm("resolution", res.get(resolution, 0.0), f"resolution: {resolution}"),
        CsatTerm("wait", round(settings.csat_wait_per_min * minutes, 2) + 0.0, f"waited {minutes:.1f} min"),
        CsatTerm("repeat_contact", settings.csat_repeat_contact if repeat_contact else 0.0,
                 "repeats an earlier call" if repeat_contact else "no earlier call on this reason"),
        CsatTerm("dead_air", round(settings.csat_dead_air_per_pct * pct, 2) + 0.0, f"{pct:.1f} % dead air"),
    )


def formula(settings: KpiSettings) -> dict[str, Any]:
    """The satisfaction formula and its weights, as the API returns it."""
    return {"formula": CSAT_FORMULA, "weights": settings.model_dump(include={
        "csat_base", "csat_tone_calm", "csat_tone_neutral", "csat_tone_tense", "csat_tone_angry",
        "csat_resolved", "csat_partly", "csat_not_resolved", "csat_wait_per_min", "csat_wait_cap_min",
        "csat_repeat_contact", "csat_dead_air_per_pct"})}


# -- aggregates --------------------------------------------------------------------------------


def group_key(by: GroupBy) -> Callable[[CallFacts], str]:
    return {"agent": lambda f: f.agent_id, "queue": lambda f: f.queue,
            "day": lambda f: f.day, "all": lambda f: "all"}[by]


def aggregate(facts: Iterable[CallFacts], by: GroupBy) -> list[GroupKpis]:
    """One row per agent, queue or day (sorted by key), or one row for ``all``."""
    groups: dict[str, list[CallFacts]] = defaultdict(list)
    key = group_key(by)
    for f in facts:
        groups[key(f)].append(f)
    return [_group(k, groups[k]) for k in sorted(groups)]


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def _group(key: str, calls: Sequence[CallFacts]) -> GroupKpis:
    answered = [f for f in calls if f.answered]
    queued = [f for f in calls if f.queued]
    abandoned = sum(f.abandoned for f in calls)
    fcr = [f.fcr for f in calls if f.fcr is not None]
    toned = [f for f in calls if f.tone_start in TONE_RANK and f.tone_end in TONE_RANK]
    duration = sum(f.duration for f in calls)
    quality = [f.quality for f in calls if f.quality is not None]
    return GroupKpis(
        key=key, calls=len(calls), answered=len(answered), queued=len(queued), abandoned=abandoned,
        abandon_rate=_rate(abandoned, len(queued)),
        aht_s=_mean([f.handle_s for f in answered]), talk_s=_mean([f.talk_s for f in answered]),
        hold_s=_mean([f.hold_s for f in answered]), wrap_up_s=_mean([f.wrap_up_s for f in answered]),
        asa_s=_mean([f.wait_s for f in answered if f.queued]),
        transfers=sum(f.transfers for f in calls),
        transfer_rate=_rate(sum(f.transfers > 0 for f in answered), len(answered)),
        fcr_rate=_rate(sum(fcr), len(fcr)),
        dead_air_share=round(sum(f.dead_air_s for f in calls) / duration, 4) if duration > 0 else None,
        talk_over_per_call=_mean([float(f.talk_over) for f in calls]),
        tone_improved=_rate(sum(TONE_RANK[f.tone_end] < TONE_RANK[f.tone_start] for f in toned), len(toned)),
        tone_worsened=_rate(sum(TONE_RANK[f.tone_end] > TONE_RANK[f.tone_start] for f in toned), len(toned)),
        csat=_mean([f.csat for f in calls]), quality=_mean(quality), quality_calls=len(quality),
    )


# -- charts ------------------------------------------------------------------------------------


def handle_time_bins(facts: Iterable[CallFacts], bin_s: float) -> list[Bin]:
    """Histogram of answered calls' handle time, from 0 to the longest, empty bins included."""
    counts = Counter(int(f.handle_s // bin_s) for f in facts if f.answered)
    if not counts:
        return []
    return [Bin(round(i * bin_s, 2), round((i + 1) * bin_s, 2), counts.get(i, 0))
            for i in range(max(counts) + 1)]


def top_reasons(facts: Sequence[CallFacts], n: int) -> list[dict[str, Any]]:
    counts = Counter(f.reason for f in facts)
    return [{"reason": r, "calls": c, "share": round(c / len(facts), 4)}
            for r, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def previous_period(current: Period, facts: Sequence[CallFacts]) -> tuple[Period, Period]:
    """The current period (open ends resolved: to the last day with calls, 7 days long by
    default) and the one of the same length just before it."""
    days = sorted(f.day for f in facts if f.day)
    end = current.end or max(date.fromisoformat(days[-1]) if days else date.today(),
                             current.start or date.min)
    start = current.start or end - timedelta(days=6)
    length = (end - start).days + 1
    return Period(start, end), Period(start - timedelta(days=length), start - timedelta(days=1))


def rising_topics(facts: Sequence[CallFacts], period: Period, settings: KpiSettings) -> list[Topic]:
    """Reasons, categories and key phrases whose share of calls rose against the previous
    period of the same length, largest rise first."""
    cur, prev = previous_period(period, facts)
    now = [f for f in facts if cur.holds(f.day)]
    before = [f for f in facts if prev.holds(f.day)]
    c_now = Counter(t for f in now for t in f.topics)
    c_before = Counter(t for f in before for t in f.topics)
    out = []
    for topic, n in c_now.items():
        share = n / len(now)
        old = c_before.get(topic, 0)
        old_share = old / len(before) if before else 0.0
        if n >= settings.rising_min_calls and share > old_share:
            kind, _, name = topic.partition(":")
            out.append(Topic(kind, name, n, round(share, 4), old, round(old_share, 4),
                             round(share - old_share, 4)))
    out.sort(key=lambda t: (-t.change, -t.current_calls, t.kind, t.topic))
    return out[: settings.top_n]


def worst_dead_air(facts: Iterable[CallFacts], n: int) -> list[CallFacts]:
    """Calls with the most dead air (seconds), at most ``n``, only calls that had some."""
    return sorted((f for f in facts if f.dead_air_s > 0), key=lambda f: (-f.dead_air_s, f.call_id))[:n]

