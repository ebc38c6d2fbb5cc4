"""CRM tables (SQLAlchemy 2.0 declarative): contacts, calls, transcripts, events, summaries, tasks,
QA scorecards and reviewers' overrides.

The schema itself is created and changed only by the alembic migrations in
``summaries/migrations``; these classes must match the latest one (a test checks that).
Times are stored as naive UTC (SQLite keeps no zone); call-clock times are float seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    first_seen: Mapped[datetime | None] = mapped_column(DateTime)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime)

    calls: Mapped[list[Call]] = relationship(back_populates="contact")


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    caller: Mapped[str] = mapped_column(String(64), default="")
    callee: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(16), default="")
    started_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    end_reason: Mapped[str] = mapped_column(String(32), default="")
    reason: Mapped[str] = mapped_column(String(32), default="unknown", index=True)
    resolution: Mapped[str] = mapped_column(String(16), default="unknown")
    tone_end: Mapped[str] = mapped_column(String(16), default="unknown", index=True)
    tone_peak: Mapped[str] = mapped_column(String(16), default="unknown")
    agent_id: Mapped[str] = mapped_column(String(32), default="", index=True)
    """The first agent who answered ("" if none): KPIs group by it."""
    queue: Mapped[str] = mapped_column(String(64), default="", index=True)
    """The first queue the call entered ("" if none)."""
    recording: Mapped[str | None] = mapped_column(String(1024))
    """Path of the call's recording on the host that took it (None: not recorded)."""
    created_at: Mapped[datetime] = mapped_column(DateTime)

    contact: Mapped[Contact | None] = relationship(back_populates="calls")
    utterances: Mapped[list[Utterance]] = relationship(
        cascade="all, delete-orphan", order_by="Utterance.t_start", passive_deletes=True
    )
    events: Mapped[list[EventRow]] = relationship(
        cascade="all, delete-orphan", order_by="EventRow.seq", passive_deletes=True
    )
    summary: Mapped[SummaryRow | None] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    tasks: Mapped[list[FollowUpTask]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    scores: Mapped[list[QaScoreRow]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class Utterance(Base):
    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    party: Mapped[str] = mapped_column(String(16))
    t_start: Mapped[float] = mapped_column(Float)
    t_end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    original_text: Mapped[str | None] = mapped_column(Text)
    """Unredacted text, only when the store keeps originals."""
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    words: Mapped[list[Any]] = mapped_column(JSON, default=list)


class EventRow(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    t: Mapped[float] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    original: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The unredacted event, only when the store keeps originals."""


class SummaryRow(Base):
    __tablename__ = "summaries"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    producer: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class FollowUpTask(Base):
    __tablename__ = "follow_up_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    owner: Mapped[str] = mapped_column(String(16), default="agent")
    text: Mapped[str] = mapped_column(Text)
    due_hint: Mapped[str] = mapped_column(String(64), default="unknown")
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    agent_id: Mapped[str] = mapped_column(String(32), default="", index=True)
    """The agent who promised it (the call's agent), "" when unknown."""
    due_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    """The due date resolved from ``due_hint`` and the call's start (None: no date said)."""
    t: Mapped[float] = mapped_column(Float, default=0.0)
    """Call time the promise was heard (evidence)."""
    done_at: Mapped[datetime | None] = mapped_column(DateTime)


class QaScoreRow(Base):
    """One call's scorecard on one evaluation form (automatic answers; overrides apply on read)."""

    __tablename__ = "qa_scores"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    form_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    form_version: Mapped[str] = mapped_column(String(32), default="")
    score: Mapped[float | None] = mapped_column(Float)
    """Percent of the applicable points (None: nothing applied)."""
    final: Mapped[bool] = mapped_column(Boolean, default=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class QaOverride(Base):
    """A reviewer's answer to one question of one call's scorecard: append-only history."""

    __tablename__ = "qa_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    form_id: Mapped[str] = mapped_column(String(64))
    question_id: Mapped[str] = mapped_column(String(64))
    answer: Mapped[str] = mapped_column(String(16))
    previous: Mapped[str] = mapped_column(String(16), default="")
    """The answer it replaced (the automatic one, or the previous override)."""
    automatic: Mapped[str] = mapped_column(String(16), default="")
    """The automatic answer at the time of the override (calibration compares the two)."""
    reviewer: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)

