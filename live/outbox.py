"""A bounded on-disk FIFO of MQTT publications that survives process restarts.

The publisher appends here and returns at once; its sender deletes a row only after the broker
acknowledged it, so a broker outage or a crash loses nothing that was appended. SQLite in WAL
mode with ``synchronous=NORMAL`` keeps an append at tens of microseconds (no fsync per commit;
a power cut may lose the last commits, a process crash does not). When more than ``max_items``
rows wait, the oldest are dropped, counted and logged: the newest state matters most to agents.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from live.topics import Message
from speech.owner_only import owner_only_file

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Outbox:
    """FIFO of :class:`Message` rows in one SQLite file; thread-safe, one process at a time."""

    def __init__(self, path: Path, max_items: int = 100_000) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.path = Path(path)
        self.max_items = max_items
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only before SQLite opens it (its WAL files copy the mode): events hold personal data.
        owner_only_file(self.path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._pending: int = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self._dropped = int(self.get_meta("dropped") or 0)

    @property
    def pending(self) -> int:
        """Rows waiting for the broker."""
        return self._pending

    @property
    def dropped(self) -> int:
        """Rows dropped by the overflow policy, over the file's whole life."""
        return self._dropped

    def __len__(self) -> int:
        return self._pending

    def append(self, messages: Iterable[Message], *, meta: dict[str, str] | None = None) -> int:
        """Append in one transaction (with optional ``meta`` updates); returns rows dropped."""
        rows = [(m.topic, m.payload, m.qos, int(m.retain)) for m in messages]
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO outbox (topic, payload, qos, retain) VALUES (?, ?, ?, ?)", rows
                )
                for key, value in (meta or {}).items():
                    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
                excess = self._pending + len(rows) - self.max_items
                if excess > 0:
                    db.execute(
                        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                        (excess,),
                    )
                    db.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('dropped', ?)",
                        (str(self._dropped + excess),),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            dropped = max(excess, 0)
            self._pending += len(rows) - dropped
            self._dropped += dropped
        if dropped:
            log.warning(
                "outbox full (%d rows): dropped the %d oldest, %d dropped in all",
                self.max_items, dropped, self._dropped,
            )
        return dropped

    def peek(self, limit: int = 100) -> list[tuple[int, Message]]:
        """The oldest ``limit`` rows with their ids, oldest first; nothing is removed."""
        with self._lock:
            cur = self._conn().execute(
                "SELECT id, topic, payload, qos, retain FROM outbox ORDER BY id LIMIT ?", (limit,)
            )
            return [(r[0], Message(r[1], bytes(r[2]), r[3], bool(r[4]))) for r in cur.fetchall()]

    def delete(self, row_id: int) -> None:
        """Remove one row once the broker has it."""
        with self._lock:
            cur = self._conn().execute("DELETE FROM outbox WHERE id = ?", (row_id,))
            self._pending -= cur.rowcount

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        """Close the file; idempotent."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("outbox is closed")
        return self._db
