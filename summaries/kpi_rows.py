"""Read the rows the KPIs need: calls with their summaries and QA scores from the CRM store, and
the ACD's ``acd_queue`` rows where the CRM lacks queue facts.

``summaries`` may not import ``telephony``, so the ACD's table is read by name (reflected, when
it exists in the same database). Blocking: call from a thread.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, MetaData, Table, create_engine, inspect, make_url, select

from summaries.kpis import CallInput
from summaries.schema import Call, QaScoreRow, SummaryRow

ACD_QUEUE = "acd_queue"
SUMMARY_KEYS = ("queue", "talk_ratio", "hold", "handle_time", "duration", "dead_air_total_s",
                "talk_over_count", "tone_by_party", "tone_start", "tone_end", "categories", "key_phrases")
"""The summary fields the KPIs read: extracted in the database, so the evidence, transcript
spans and tone arcs of a stored summary are never parsed for a dashboard."""


class KpiRows:
    """Reads :class:`CallInput` rows of a date range (widened by the caller for repeat contacts)."""

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0) -> None:
        args: dict[str, Any] = {}
        if make_url(url).get_backend_name() == "sqlite":
            args = {"timeout": connect_timeout_s}
        else:
            args = {"connect_timeout": int(connect_timeout_s)}
        self.engine: Engine = create_engine(url, connect_args=args)

    def close(self) -> None:
        self.engine.dispose()

    def calls(self, start: date | None, end: date | None) -> list[CallInput]:
        """Calls started on days ``start``..``end`` (inclusive; None: open)."""
        parts = [SummaryRow.data[key].label(f"s_{key}") for key in SUMMARY_KEYS]
        q = (select(Call.id, Call.started_at, Call.created_at, Call.contact_id, Call.caller, Call.agent_id,
                    Call.queue, Call.reason, Call.resolution, Call.duration,
                    SummaryRow.call_id.label("has_summary"), *parts)
             .outerjoin(SummaryRow, SummaryRow.call_id == Call.id))
        if start is not None:
            q = q.where(Call.started_at >= datetime.combine(start, time.min))
        if end is not None:
            q = q.where(Call.started_at < datetime.combine(end + timedelta(days=1), time.min))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            ids = [r.id for r in rows]
            quality = self._quality(conn, ids)
            acd = self._acd(conn, ids)
        out = []
        for r in rows:
            status, wait = acd.get(r.id, ("", None))
            out.append(CallInput(
                call_id=r.id, started_at=r.started_at or r.created_at,
                contact=str(r.contact_id) if r.contact_id is not None else (r.caller or ""),
                agent_id=r.agent_id or "", queue=r.queue or "", reason=r.reason or "unknown",
                resolution=r.resolution or "unknown", duration=float(r.duration or 0.0),
                summary=_summary(r), acd_status=status, acd_wait_s=wait, quality=quality.get(r.id)))
        return out

    @staticmethod
    def _quality(conn: Any, ids: list[str]) -> dict[str, float]:
        """Mean stored score of each call's scorecards (every form that applied)."""
        scores: dict[str, list[float]] = defaultdict(list)
        for chunk in _chunks(ids):
            q = select(QaScoreRow.call_id, QaScoreRow.score).where(
                QaScoreRow.call_id.in_(chunk), QaScoreRow.score.is_not(None))
            for call_id, score in conn.execute(q):
                scores[call_id].append(float(score))
        return {k: sum(v) / len(v) for k, v in scores.items()}

    @staticmethod
    def _acd(conn: Any, ids: list[str]) -> dict[str, tuple[str, float | None]]:
        """``call_id -> (status, wait)`` from the ACD's queue table, when it lives here."""
        if not inspect(conn).has_table(ACD_QUEUE):
            return {}
        table = Table(ACD_QUEUE, MetaData(), autoload_with=conn)
        out: dict[str, tuple[str, float | None]] = {}
        for chunk in _chunks(ids):
            q = select(table.c.call_id, table.c.status, table.c.enqueued_at, table.c.left_at).where(
                table.c.call_id.in_(chunk))
            for r in conn.execute(q):
                wait = max(0.0, r.left_at - r.enqueued_at) if r.left_at else None
                out[r.call_id] = (r.status, wait)
        return out


def _summary(row: Any) -> dict[str, Any] | None:
    if row.has_summary is None:
        return None
    return {key: value for key in SUMMARY_KEYS if (value := getattr(row, f"s_{key}")) is not None}


def _chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]
