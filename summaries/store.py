"""The CRM store: calls, their transcripts, events, summaries and follow-up tasks, by contact.

SQLAlchemy 2.0 over SQLite (default) or PostgreSQL (by URL). ``start`` brings the schema to the
latest alembic migration; ``save_call`` writes everything about one call in one transaction and
is idempotent on the call id (a second save replaces the first). Every call is redacted on its
way in (``summaries.ingest``), whoever writes it. Blocking: call it from a thread
(``asyncio.to_thread``) or through ``DurableWriter``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, and_, case, create_engine, event, func, make_url, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from speech.events import CallStarted, Event, FinalTranscript, QaScorecard
from speech.frames import Party
from speech.owner_only import owner_only_file
from summaries.due_dates import resolve_due
from summaries.ingest import IngestRedactor, StoreRedaction
from summaries.redact import MASKED_DIGIT
from summaries.schema import (
    Call,
    Contact,
    EventRow,
    FollowUpTask,
    QaOverride,
    QaScoreRow,
    SummaryRow,
    Utterance,
)
from summaries.summary import UNKNOWN, CallSummary

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MAX_PAGE = 500


class StoreError(RuntimeError):
    """The store is not started or the database refused the operation."""


@dataclass(frozen=True)
class CallRow:
    """One line of a call list."""

    call_id: str
    caller: str
    started_at: str | None
    duration: float
    reason: str
    resolution: str
    tone_end: str
    end_reason: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class UtteranceRow:
    party: str
    t_start: float
    t_end: float
    text: str
    confidence: float
    original_text: str | None = None


@dataclass(frozen=True)
class TaskRow:
    id: int
    call_id: str
    contact: str | None
    owner: str
    text: str
    due_hint: str
    status: str
    created_at: str
    agent_id: str = ""
    """The agent who promised it ("" for the caller's own next steps or an unknown agent)."""
    due_at: str | None = None
    """When it is due (ISO, UTC), resolved from ``due_hint`` and the call's start; None: no date said."""
    overdue: bool = False
    """Open and past ``due_at`` when it was read."""
    done_at: str | None = None
    t: float = 0.0
    """Call time the promise was heard (evidence)."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CallDetail:
    """Everything stored about one call."""

    call: CallRow
    summary: CallSummary | None
    producer: str
    transcript: list[UtteranceRow]
    events: list[dict[str, Any]]
    tasks: list[TaskRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.call.to_dict(),
            "producer": self.producer,
            "summary": self.summary.to_dict() if self.summary else None,
            "transcript": [dict(u.__dict__) for u in self.transcript],
            "events": self.events,
            "tasks": [t.to_dict() for t in self.tasks],
        }


@dataclass(frozen=True)
class StoredUtterance:
    """One stored final transcript with its words as ``(word, start, end)`` in call seconds."""

    party: str
    t_start: float
    t_end: float
    text: str
    words: tuple[tuple[str, float, float], ...]


@dataclass(frozen=True)
class StoredRecording:
    """What playing a call's recording needs: its path (None: not recorded), the first agent
    who answered it (who may listen to it) and the transcript (where the redacted words are)."""

    call_id: str
    path: str | None
    agent_id: str
    utterances: tuple[StoredUtterance, ...]
    masked_keys: tuple[tuple[float, float], ...] = ()
    """Keypad presses whose digits the store masked (part of a card number): ``(t, duration)``."""


@dataclass(frozen=True)
class ContactDetail:
    number: str
    first_seen: str | None
    last_seen: str | None
    calls: list[CallRow]
    open_tasks: list[TaskRow]

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "call_count": len(self.calls),
            "calls": [c.to_dict() for c in self.calls],
            "open_tasks": [t.to_dict() for t in self.open_tasks],
        }


PG_NETWORK_ARGS: dict[str, int] = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                                   "keepalives_count": 3, "tcp_user_timeout": 15000}
"""libpq options: a database cut off mid-query (a worker host whose link went down) fails the
query within ~15 s instead of TCP's ~15 min, so the writer spools the call and retries."""


class CrmStore:
    """Calls and summaries in a relational database."""

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0, echo: bool = False,
                 secure_ivr_nodes: Iterable[str] = (), keep_original_pii: bool = False) -> None:
        """``secure_ivr_nodes``/``keep_original_pii``: as in the summary and store settings, so a
        call arriving by any path is redacted as a live one is."""
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.echo = echo
        self.ingest = IngestRedactor(secure_ivr_nodes=secure_ivr_nodes, keep_original=keep_original_pii)
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    @property
    def dialect(self) -> str:
        return self.url.split(":", 1)[0].split("+", 1)[0]

    def start(self) -> None:
        """Connect and migrate the schema to the latest revision (idempotent)."""
        if self._engine is not None:
            return
        engine = self._make_engine()
        try:
            with engine.begin() as conn:
                cfg = Config()
                cfg.set_main_option("script_location", str(MIGRATIONS))
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except Exception:
            engine.dispose()
            raise
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def stop(self) -> None:
        """Close all connections; safe to call twice."""
        engine, self._engine, self._sessions = self._engine, None, None
        if engine is not None:
            engine.dispose()

    @property
    def started(self) -> bool:
        return self._engine is not None

    def _make_engine(self) -> Engine:
        if self.dialect == "sqlite":
            owner_only_file(make_url(self.url).database)
            engine = create_engine(self.url, echo=self.echo, connect_args={"timeout": self.connect_timeout_s})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA journal_mode=WAL")
                cur.close()

            return engine
        args: dict[str, Any] = {}
        if self.dialect == "postgresql":
            args["connect_timeout"] = max(1, int(self.connect_timeout_s))
            args.update(PG_NETWORK_ARGS)
        return create_engine(self.url, echo=self.echo, pool_pre_ping=True, connect_args=args)

    def _session(self) -> Session:
        if self._sessions is None:
            raise StoreError("store is not started")
        return self._sessions()

    # -- writing ------------------------------------------------------------------------------

    def redact(self, events: Iterable[Event], summary: CallSummary | None = None,
               originals: Mapping[int, dict[str, Any]] | None = None) -> StoreRedaction:
        """The call as ``save_call`` would store it (idempotent: redacted input stays as is)."""
        return self.ingest.redact(events, summary, originals)

    def save_call(
        self,
        events: Iterable[Event],
        summary: CallSummary | None,
        *,
        originals: Mapping[int, dict[str, Any]] | None = None,
        recording: str | None = None,
    ) -> str:
        """Store one call in one transaction; saving the same call id again replaces it.

        ``originals`` (index in ``events`` → unredacted event dict, from ``Redactor.redact_call``
        with ``keep_original``) go into the separate ``original`` columns; ``recording`` is the
        path of the call's recording on this host (the call review page plays it).
        """
        red = self.redact(events, summary, originals)
        evs, summary, originals = red.events, red.summary, red.originals
        call_id = (summary.call_id if summary and summary.call_id else "") or next(
            (e.call_id for e in evs if e.call_id), ""
        ) or uuid.uuid4().hex
        started = next((e for e in evs if isinstance(e, CallStarted)), None)
        caller = (started.caller if started else "") or (summary.caller if summary else "")
        started_at = _parse_time(started.started_at if started else (summary.started_at if summary else ""))
        now = _utcnow()
        if caller:
            self._ensure_contact(caller, started_at or now)
        with self._session() as s, s.begin():
            old = s.get(Call, call_id)
            kept: list[dict[str, Any]] = []  # reviewers' overrides outlive a re-delivered call
            if old is not None:
                kept = [_columns(o) for o in s.scalars(select(QaOverride).where(QaOverride.call_id == call_id))]
                s.delete(old)
                s.flush()
            contact = None
            if caller:
                contact = s.scalar(select(Contact).where(Contact.number == caller))
                if contact is None:
                    contact = Contact(number=caller, first_seen=started_at or now, last_seen=started_at or now)
                    s.add(contact)
                    s.flush()
                else:
                    seen = started_at or now
                    contact.first_seen = min(filter(None, (contact.first_seen, seen)))
                    contact.last_seen = max(filter(None, (contact.last_seen, seen)))
            call = Call(
                id=call_id,
                contact=contact,
                caller=caller,
                callee=(started.callee if started else "") or (summary.callee if summary else ""),
                source=started.source if started else "",
                started_at=started_at,
                duration=summary.duration if summary else 0.0,
                end_reason=summary.end_reason if summary else "",
                reason=summary.reason if summary else UNKNOWN,
                resolution=summary.resolution if summary else UNKNOWN,
                tone_end=summary.tone_end if summary else UNKNOWN,
                tone_peak=summary.tone_peak if summary else UNKNOWN,
                agent_id=(summary.queue.agent_ids[0] if summary and summary.queue.agent_ids else ""),
                queue=summary.queue.name if summary else "",
                recording=recording,
                created_at=now,
            )
            s.add(call)
            scores: dict[str, QaScoreRow] = {}
            for i, ev in enumerate(evs):
                if isinstance(ev, QaScorecard) and ev.final:
                    # a wrap-up product like the summary: its own table, not the call's event log
                    # (which ends with call.ended); the live scorecards stay in the log
                    if ev.form_id:
                        scores[ev.form_id] = QaScoreRow(
                            form_id=ev.form_id, form_version=str(ev.scorecard.get("form_version", "")),
                            score=ev.score, final=True, data=ev.scorecard, updated_at=now)
                    continue
                original = originals.get(i)
                call.events.append(EventRow(seq=i, type=ev.type.value, t=float(ev.t), data=ev.to_dict(), original=original))
                if isinstance(ev, FinalTranscript) and ev.text.strip():
                    call.utterances.append(Utterance(
                        party=(ev.party or Party.CALLER).value,
                        t_start=float(ev.start), t_end=float(ev.end), text=ev.text,
                        original_text=original.get("text") if original else None,
                        confidence=float(ev.confidence),
                        words=ev.to_dict()["words"],
                    ))
            if summary is not None:
                call.summary = SummaryRow(producer=summary.producer, data=summary.to_dict(), created_at=now)
                for f in (*summary.follow_ups, *summary.next_steps):
                    call.tasks.append(FollowUpTask(
                        contact_id=contact.id if contact else None, owner=f.owner, text=f.text,
                        due_hint=f.due, status="open", created_at=now, t=float(f.t),
                        due_at=resolve_due(f.due, started_at or now),
                        agent_id=call.agent_id if f.owner == "agent" else "",
                    ))
            call.scores.extend(scores.values())
            s.flush()
            s.add_all(QaOverride(**o) for o in kept)
        return call_id

    def _ensure_contact(self, number: str, seen: datetime) -> None:
        """Insert a new caller's contact row in its own transaction. Several writers (replay
        worker processes, hosts sharing PostgreSQL) storing calls from one new number at once
        would otherwise each insert it in their call's transaction, and all but one fail on the
        unique number."""
        try:
            with self._session() as s, s.begin():
                if s.scalar(select(Contact.id).where(Contact.number == number)) is None:
                    s.add(Contact(number=number, first_seen=seen, last_seen=seen))
        except IntegrityError:
            pass  # another writer inserted it first: it exists, which is all this is for

    # -- reading ------------------------------------------------------------------------------

    def list_calls(self, limit: int = 50, offset: int = 0) -> list[CallRow]:
        return self.search(limit=limit, offset=offset)

    def count_calls(self) -> int:
        with self._session() as s:
            return int(s.scalar(select(func.count()).select_from(Call)) or 0)

    def search(
        self,
        text: str | None = None,
        caller: str | None = None,
        date_from: datetime | str | None = None,
        date_to: datetime | str | None = None,
        tone: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[CallRow]:
        """Calls newest first. ``text`` matches transcripts and the reason (case-insensitive);
        ``tone`` matches the tone at the end or at the peak of the call."""
        q = select(Call)
        if text:
            pattern = f"%{_escape_like(text)}%"
            in_transcript = select(Utterance.call_id).where(Utterance.text.ilike(pattern, escape="\\"))
            q = q.where(or_(Call.id.in_(in_transcript), Call.reason.ilike(pattern, escape="\\")))
        if caller:
            q = q.where(Call.caller == caller)
        if date_from is not None:
            q = q.where(Call.started_at >= _as_naive_utc(date_from))
        if date_to is not None:
            q = q.where(Call.started_at <= _as_naive_utc(date_to))
        if tone:
            q = q.where(or_(Call.tone_end == tone, Call.tone_peak == tone))
        q = q.order_by(Call.started_at.desc(), Call.id).limit(max(1, min(limit, MAX_PAGE))).offset(max(0, offset))
        with self._session() as s:
            return [_row(c) for c in s.scalars(q)]

    def get_call(self, call_id: str) -> CallDetail | None:
        with self._session() as s:
            call = s.scalar(
                select(Call).where(Call.id == call_id).options(
                    selectinload(Call.utterances), selectinload(Call.events),
                    selectinload(Call.summary), selectinload(Call.tasks),
                )
            )
            if call is None:
                return None
            number = call.caller or None
            return CallDetail(
                call=_row(call),
                summary=CallSummary.from_dict(call.summary.data) if call.summary else None,
                producer=call.summary.producer if call.summary else "",
                transcript=[
                    UtteranceRow(u.party, u.t_start, u.t_end, u.text, u.confidence, u.original_text)
                    for u in call.utterances
                ],
                events=[e.data for e in call.events],
                tasks=[_task(t, number) for t in call.tasks],
            )

    def recording_of(self, call_id: str) -> StoredRecording | None:
        """Where the call's recording is, whose call it was, and its transcript words (with
        the redaction tags' timings), for playback with redacted spans silent; None: unknown."""
        with self._session() as s:
            call = s.scalar(select(Call).where(Call.id == call_id).options(selectinload(Call.utterances)))
            if call is None:
                return None
            keys = s.execute(select(EventRow.t, EventRow.data).where(EventRow.call_id == call_id,
                                                                      EventRow.type == "dtmf"))
            return StoredRecording(
                call_id=call.id, path=call.recording, agent_id=call.agent_id or "",
                utterances=tuple(
                    StoredUtterance(u.party, u.t_start, u.t_end, u.text,
                                    tuple((str(w.get("word", "")), float(w.get("start", 0.0)), float(w.get("end", 0.0)))
                                          for w in (u.words or []) if isinstance(w, dict)))
                    for u in call.utterances),
                masked_keys=tuple((float(t), float(d.get("duration") or 0.0)) for t, d in keys
                                  if d.get("digit") == MASKED_DIGIT),
            )

    def get_contact(self, number: str) -> ContactDetail | None:
        with self._session() as s:
            contact = s.scalar(select(Contact).where(Contact.number == number))
            if contact is None:
                return None
            calls = s.scalars(select(Call).where(Call.contact_id == contact.id).order_by(Call.started_at.desc()))
            tasks = s.scalars(
                select(FollowUpTask).where(FollowUpTask.contact_id == contact.id, FollowUpTask.status == "open")
                .order_by(FollowUpTask.id)
            )
            return ContactDetail(
                number=contact.number,
                first_seen=_iso(contact.first_seen),
                last_seen=_iso(contact.last_seen),
                calls=[_row(c) for c in calls],
                open_tasks=[_task(t, number) for t in tasks],
            )

    def list_tasks(self, status: str | None = "open", limit: int = 100, offset: int = 0, *,
                   agent: str | None = None, overdue: bool | None = None,
                   now: datetime | None = None) -> list[TaskRow]:
        """Tasks, overdue first, then by due date (undated last), then oldest first. ``agent``
        keeps one agent's promises; ``overdue`` True/False keeps only open tasks past / not past
        their due date at ``now`` (default: the current time)."""
        now = _as_naive_utc(now) if now is not None else _utcnow()
        late = and_(FollowUpTask.status == "open", FollowUpTask.due_at.is_not(None), FollowUpTask.due_at < now)
        q = select(FollowUpTask, Contact.number).outerjoin(Contact, FollowUpTask.contact_id == Contact.id)
        if status:
            q = q.where(FollowUpTask.status == status)
        if agent is not None:
            q = q.where(FollowUpTask.agent_id == agent)
        if overdue is True:
            q = q.where(late)
        elif overdue is False:
            q = q.where(~late)
        q = q.order_by(case((late, 0), else_=1), FollowUpTask.due_at.is_(None), FollowUpTask.due_at, FollowUpTask.id)
        q = q.limit(max(1, min(limit, MAX_PAGE))).offset(max(0, offset))
        with self._session() as s:
            return [_task(t, number, now) for t, number in s.execute(q)]

    def get_task(self, task_id: int) -> TaskRow | None:
        with self._session() as s:
            row = s.execute(select(FollowUpTask, Contact.number).outerjoin(Contact, FollowUpTask.contact_id == Contact.id)
                            .where(FollowUpTask.id == task_id)).first()
            return _task(row[0], row[1]) if row else None

    def set_task_done(self, task_id: int, done: bool = True, *, now: datetime | None = None) -> TaskRow | None:
        """Mark a task done (keeping the first ``done_at``) or open again; None: no such task."""
        with self._session() as s, s.begin():
            task = s.get(FollowUpTask, task_id)
            if task is None:
                return None
            if done and task.status != "done":
                task.status, task.done_at = "done", _as_naive_utc(now) if now is not None else _utcnow()
            elif not done:
                task.status, task.done_at = "open", None
        return self.get_task(task_id)


    # -- QA scorecards (issue 16) ---------------------------------------------------------------

    def save_scorecard(self, call_id: str, card: Mapping[str, Any], *, final: bool = True) -> None:
        """Store (replace) a call's scorecard on one form; the call must be stored."""
        form_id = str(card["form_id"])
        with self._session() as s, s.begin():
            if s.get(Call, call_id) is None:
                raise KeyError(call_id)
            row = s.get(QaScoreRow, (call_id, form_id))
            if row is None:
                row = QaScoreRow(call_id=call_id, form_id=form_id)
                s.add(row)
            row.form_version = str(card.get("form_version", ""))
            row.score = card.get("score")
            row.final = final
            row.data = dict(card)
            row.updated_at = _utcnow()

    def get_scorecards(self, call_id: str) -> list[dict[str, Any]]:
        """The call's stored (automatic) scorecards, one per form, with ``final`` and ``updated_at``."""
        with self._session() as s:
            rows = s.scalars(select(QaScoreRow).where(QaScoreRow.call_id == call_id).order_by(QaScoreRow.form_id))
            return [{**r.data, "final": r.final, "updated_at": _iso(r.updated_at)} for r in rows]

    def add_override(self, call_id: str, form_id: str, question_id: str, answer: str, *,
                     reviewer: str, reason: str) -> dict[str, Any]:
        """Append a reviewer's answer to one question (history is never rewritten). Raises
        ``KeyError`` when the call has no scorecard on the form or the form no such question."""
        with self._session() as s, s.begin():
            row = s.get(QaScoreRow, (call_id, form_id))
            if row is None:
                raise KeyError(f"no scorecard on form {form_id}")
            automatic = next((str(a.get("auto_answer", a.get("answer", ""))) for a in row.data.get("answers", ())
                              if a.get("question_id") == question_id), None)
            if automatic is None:
                raise KeyError(f"no question {question_id} on form {form_id}")
            last = s.scalar(select(QaOverride).where(
                QaOverride.call_id == call_id, QaOverride.form_id == form_id, QaOverride.question_id == question_id,
            ).order_by(QaOverride.id.desc()).limit(1))
            o = QaOverride(call_id=call_id, form_id=form_id, question_id=question_id, answer=answer,
                           previous=last.answer if last is not None else automatic, automatic=automatic,
                           reviewer=reviewer, reason=reason, created_at=_utcnow())
            s.add(o)
            s.flush()
            return _override(o)

    def list_overrides(self, call_id: str | None = None, form_id: str | None = None) -> list[dict[str, Any]]:
        """Overrides oldest first (a call's history, or all of them for calibration)."""
        q = select(QaOverride)
        if call_id is not None:
            q = q.where(QaOverride.call_id == call_id)
        if form_id is not None:
            q = q.where(QaOverride.form_id == form_id)
        with self._session() as s:
            return [_override(o) for o in s.scalars(q.order_by(QaOverride.id))]

    def calibration_rows(self, form_id: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        """Per scored call and question: the automatic answer and the reviewers' latest (final)
        one, for the calibration view; only calls with at least one override (the reviewed ones)."""
        q = select(QaScoreRow).where(QaScoreRow.call_id.in_(select(QaOverride.call_id)))
        if form_id is not None:
            q = q.where(QaScoreRow.form_id == form_id)
        with self._session() as s:
            latest: dict[tuple[str, str, str], QaOverride] = {}
            oq = select(QaOverride).order_by(QaOverride.id)
            for row_o in s.scalars(oq if form_id is None else oq.where(QaOverride.form_id == form_id)):
                latest[(row_o.call_id, row_o.form_id, row_o.question_id)] = row_o
            out: list[dict[str, Any]] = []
            for row in s.scalars(q.order_by(QaScoreRow.call_id, QaScoreRow.form_id).limit(limit)):
                for a in row.data.get("answers", ()):
                    auto = str(a.get("auto_answer", a.get("answer", "")))
                    o = latest.get((row.call_id, row.form_id, str(a.get("question_id"))))
                    out.append({"call_id": row.call_id, "form_id": row.form_id, "question_id": a.get("question_id"),
                                "automatic": auto, "final": o.answer if o is not None else auto,
                                "overridden": o is not None, "reviewer": o.reviewer if o is not None else "",
                                "reason": o.reason if o is not None else ""})
            return out

def _row(c: Call) -> CallRow:
    return CallRow(c.id, c.caller, _iso(c.started_at), c.duration, c.reason, c.resolution, c.tone_end, c.end_reason)


def _task(t: FollowUpTask, number: str | None, now: datetime | None = None) -> TaskRow:
    overdue = t.status == "open" and t.due_at is not None and t.due_at < (now or _utcnow())
    return TaskRow(t.id, t.call_id, number, t.owner, t.text, t.due_hint, t.status, _iso(t.created_at) or "",
                   agent_id=t.agent_id or "", due_at=_iso(t.due_at), overdue=overdue, done_at=_iso(t.done_at),
                   t=float(t.t or 0.0))


def _override(o: QaOverride) -> dict[str, Any]:
    return {"id": o.id, "call_id": o.call_id, "form_id": o.form_id, "question_id": o.question_id,
            "answer": o.answer, "previous": o.previous, "automatic": o.automatic, "reviewer": o.reviewer,
            "reason": o.reason, "created_at": _iso(o.created_at)}


def _columns(o: QaOverride) -> dict[str, Any]:
    """An override row as constructor arguments (to re-insert it)."""
    return {c.key: getattr(o, c.key) for c in QaOverride.__table__.columns}


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _parse_time(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return _as_naive_utc(datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        return None


def _as_naive_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _iso(value: datetime | None) -> str | None:
    return value.replace(tzinfo=UTC).isoformat() if value else None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def __getattr__(name: str) -> Any:
    # ``DurableWriter`` lives in its own module (it imports this one); re-exported lazily here.
    if name == "DurableWriter":
        from summaries.durable_writer import DurableWriter

        return DurableWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
