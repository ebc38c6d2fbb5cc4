"""The agent's marks on suggested articles (helpful or not), kept per call until its summary.

The console (a separate process from the call's worker) writes marks here; when the call ends,
the worker reads them and adds them to the call's events as ``assist.feedback``, so the summary
says "article X used" and the stored call keeps them. One SQLite file in ``data_dir``, shared by
the console and the workers of one host (WAL mode: readers never wait for the writer).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from speech.events import AssistFeedback

SCHEMA = """
CREATE TABLE IF NOT EXISTS assist_feedback (
    call_id TEXT NOT NULL, article_id TEXT NOT NULL, title TEXT NOT NULL, helpful INTEGER NOT NULL,
    agent_id TEXT NOT NULL, marked_at REAL NOT NULL, PRIMARY KEY (call_id, article_id)
);
"""


@dataclass(frozen=True, slots=True)
class ArticleMark:
    call_id: str
    article_id: str
    title: str
    helpful: bool
    agent_id: str
    marked_at: float
    """Wall-clock Unix time of the (last) mark."""


class FeedbackStore:
    """Blocking: call from a thread (``asyncio.to_thread``), not on the event loop."""

    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(db_path), check_same_thread=False, timeout=10.0)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def mark(self, call_id: str, article_id: str, *, helpful: bool, title: str = "", agent_id: str = "",
             at: float | None = None) -> ArticleMark:
        """Record (or change) the mark of one article on one call; the last mark counts."""
        mark = ArticleMark(call_id, article_id, title, helpful, agent_id, time.time() if at is None else at)
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO assist_feedback VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (call_id, article_id) "
                "DO UPDATE SET title = excluded.title, helpful = excluded.helpful, "
                "agent_id = excluded.agent_id, marked_at = excluded.marked_at",
                (call_id, article_id, title, int(helpful), agent_id, mark.marked_at))
        return mark

    def for_call(self, call_id: str) -> list[ArticleMark]:
        with self._lock:
            rows = self._db.execute(
                "SELECT call_id, article_id, title, helpful, agent_id, marked_at FROM assist_feedback "
                "WHERE call_id = ? ORDER BY marked_at, article_id", (call_id,)).fetchall()
        return [ArticleMark(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows]


def feedback_events(marks: list[ArticleMark], call_id: str, t: float) -> list[AssistFeedback]:
    """The marks as events at call time ``t`` (the call's end: the console marks on the wall
    clock, which the call clock of a replay does not share)."""
    return [AssistFeedback(call_id=call_id, t=t, article_id=m.article_id, title=m.title, helpful=m.helpful,
                           agent_id=m.agent_id) for m in marks]
