"""The console's KPI tables over the CRM store (``live.console.dashboard.KpiSource``).

Lives in the composition root so that ``live`` never imports ``summaries``; it also brings the
ACD's wrap-up setting (``acd.wrap_up_s``) to the KPIs, which may not import ``telephony``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from datetime import date, timedelta
from typing import Any

from live.console.dashboard import KpiQuery, KpiTable
from summaries import kpis
from summaries.kpi_rows import KpiRows
from summaries.kpi_settings import KpiSettings

TREND = ("day", "calls", "answered", "abandon_rate", "aht_s", "asa_s", "fcr_rate", "csat", "quality",
         "dead_air_share")
Facts = tuple[list[kpis.CallFacts], list[kpis.CallFacts]]
DEAD_AIR = ("call_id", "day", "agent_id", "queue", "dead_air_s", "dead_air_share", "duration", "url")


class StoreKpis:
    def __init__(self, url: str, settings: KpiSettings, *, wrap_up_s: float, cache_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``cache_s``: the facts of a period are reused this long, so the dashboard's eight
        requests for one period read and compute them once."""
        self.rows = KpiRows(url)
        self.settings = settings
        self.wrap_up_s = wrap_up_s
        self.cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[date | None, date | None], tuple[float, Facts]] = {}

    def close(self) -> None:
        self.rows.close()

    def facts(self, query: KpiQuery) -> Facts:
        """(facts of the period, facts of everything read): calls around the period are read
        too, for repeat contacts (the FCR window) and for the previous period of rising topics."""
        key = (query.start, query.end)
        with self._lock:  # concurrent requests for one period wait for one computation
            now = self._clock()
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self.cache_s}
            if key not in self._cache:
                self._cache[key] = (now, self._compute(query))
            return self._cache[key][1]

    def _compute(self, query: KpiQuery) -> Facts:
        margin = timedelta(days=self.settings.fcr_window_days + 1)
        length = (query.end - query.start).days + 1 if query.start and query.end else 7
        start = query.start - margin - timedelta(days=length) if query.start else None
        end = query.end + margin if query.end else None
        everything = kpis.call_facts(self.rows.calls(start, end), self.settings, self.wrap_up_s)
        period = kpis.Period(query.start, query.end)
        return [f for f in everything if period.holds(f.day)], everything

    def table(self, query: KpiQuery) -> KpiTable:
        facts, everything = self.facts(query)
        meta: dict[str, Any] = {"table": query.table, "from": _iso(query.start), "to": _iso(query.end)}
        s = self.settings
        if query.table == "kpis":
            rows = [g.to_dict() for g in kpis.aggregate(facts, query.by)]
            meta |= {"by": query.by, "csat": kpis.formula(s), "wrap_up_s": self.wrap_up_s,
                     "fcr_window_days": s.fcr_window_days}
            return KpiTable(_names(kpis.GroupKpis), rows, meta)
        if query.table == "calls":
            cols = tuple(c for c in _names(kpis.CallFacts) if c != "topics")
            return KpiTable(cols, [f.to_dict() for f in facts], meta | {"csat": kpis.formula(s)})
        if query.table == "trend":
            rows = [{"day": g.key, **{k: v for k, v in g.to_dict().items() if k in TREND}}
                    for g in kpis.aggregate(facts, "day")]
            return KpiTable(TREND, rows, meta)
        if query.table == "handle_time":
            bins = kpis.handle_time_bins(facts, s.handle_time_bin_s)
            return KpiTable(("start_s", "end_s", "calls"), [asdict(b) for b in bins],
                            meta | {"bin_s": s.handle_time_bin_s})
        if query.table == "reasons":
            return KpiTable(("reason", "calls", "share"), kpis.top_reasons(facts, s.top_n), meta)
        if query.table == "rising":
            cur, prev = kpis.previous_period(kpis.Period(query.start, query.end), everything)
            topics = kpis.rising_topics(everything, kpis.Period(query.start, query.end), s)
            return KpiTable(_names(kpis.Topic), [asdict(t) for t in topics], meta | {
                "current": [_iso(cur.start), _iso(cur.end)], "previous": [_iso(prev.start), _iso(prev.end)]})
        if query.table == "dead_air":
            rows = [{**{k: v for k, v in f.to_dict().items() if k in DEAD_AIR}, "url": f"/calls/{f.call_id}"}
                    for f in kpis.worst_dead_air(facts, s.top_n)]
            return KpiTable(DEAD_AIR, rows, meta)
        raise ValueError(f"unknown KPI table {query.table!r}")


def _names(cls: Any) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
