"""Durable webhook outbox: after-call summaries POSTed to a CRM or ticketing URL, never dropped.

Each summary is stored in an on-disk SQLite outbox before anything is sent, then POSTed as JSON
with ``X-Callcenter-Signature: sha256=<HMAC-SHA256 hex of the body>`` and ``Idempotency-Key:
<call_id>`` (receivers deduplicate on it). Failures are retried with exponential backoff and stay
visible (``pending()``, ``failed()`` with the last error). With ``max_attempts`` a delivery that
keeps failing is parked, still in ``failed()``, until ``retry_failed()``; without it, it is retried
forever. A summary whose key was already delivered is not sent again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from speech.owner_only import owner_only_file
from summaries.summary import CallSummary

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Callcenter-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
OUTBOX_FILE = "webhook-outbox.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    delivered_at REAL
)
"""


@dataclass(frozen=True)
class Delivery:
    """One outbox entry as seen from outside."""

    key: str
    status: str
    """``pending``, ``delivered`` or ``parked`` (gave up after ``max_attempts``; see ``retry_failed``)."""
    attempts: int
    last_error: str | None
    next_attempt_at: float
    created_at: float


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Receiver side: constant-time check of a signature header."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


class WebhookOutbox:
    """Asyncio delivery loop over an on-disk outbox."""

    def __init__(
        self,
        url: str,
        secret: str,
        spool_dir: str | Path,
        max_attempts: int | None = None,
        *,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 300.0,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.secret = secret
        self.spool_dir = Path(spool_dir)
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self._transport = transport
        self._db: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the outbox and start delivering (including what a previous run left)."""
        if self._task is not None:
            return
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._open()
        self._wake = asyncio.Event()
        self._client = httpx.AsyncClient(timeout=self.timeout_s, transport=self._transport)
        self._task = asyncio.create_task(self._run(), name="webhook-outbox")

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop delivering; undelivered entries stay on disk. Idempotent.

        Entries already due get up to ``grace_s`` (default: the HTTP timeout) for their attempt,
        so a summary enqueued just before a short-lived process (``callcenter replay``) exits is
        sent now rather than by the next run, and a POST in flight is not cut off after the
        receiver has it (which would send it twice). A failing attempt is not retried here.
        """
        task = self._task
        if task is not None and not task.done():
            cutoff = time.time()
            deadline = time.monotonic() + (self.timeout_s if grace_s is None else grace_s)
            while time.monotonic() < deadline:
                if not await asyncio.to_thread(self._due_count, cutoff):
                    break
                await asyncio.sleep(0.02)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        with self._db_lock:
            db, self._db = self._db, None
            if db is not None:
                db.close()

    def _open(self) -> None:
        with self._db_lock:
            if self._db is None:
                path = self.spool_dir / OUTBOX_FILE
                owner_only_file(path)  # owner-only; WAL copies it
                db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute(_SCHEMA)
                self._db = db

    def _sql(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._db_lock:
            if self._db is None:
                raise RuntimeError("webhook outbox is not open")
            return self._db.execute(sql, params).fetchall()

    # -- API ----------------------------------------------------------------------------------

    async def enqueue(self, summary: CallSummary | dict[str, Any], *, key: str | None = None) -> str:
        """Store the summary for delivery; returns its idempotency key (the call id)."""
        data = summary.to_dict() if isinstance(summary, CallSummary) else dict(summary)
        key = key or str(data.get("call_id") or "")
        if not key:
            raise ValueError("a summary needs a call_id (or pass key=) to be delivered idempotently")
        body = json.dumps({"type": "call.summary", "call_id": key, "summary": data},
                          separators=(",", ":"), sort_keys=True).encode()
        if self._db is None:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            self._open()
        now = time.time()
        await asyncio.to_thread(
            self._sql,
            "INSERT INTO outbox (key, body, created_at, next_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET body = excluded.body WHERE status != 'delivered'",
            (key, body, now, now),
        )
        if self._wake is not None:
            self._wake.set()
        return key

    def pending(self) -> list[Delivery]:
        """Entries not delivered yet and still being retried."""
        return self._select("status = 'pending'")

    def failed(self) -> list[Delivery]:
        """Undelivered entries whose last attempt failed (being retried, or parked), with the error."""
        return self._select("status != 'delivered' AND last_error IS NOT NULL")

    def delivered(self) -> list[Delivery]:
        return self._select("status = 'delivered'")

    async def retry_failed(self) -> int:
        """Put parked entries back in the queue, due now; returns how many."""
        self._open()  # also before start(): an operator's command acts on the file
        rows = await asyncio.to_thread(
            self._sql, "UPDATE outbox SET status = 'pending', attempts = 0, next_at = ? "
            "WHERE status = 'parked' RETURNING key", (time.time(),),
        )
        if self._wake is not None:
            self._wake.set()
        return len(rows)

    async def retry_now(self) -> int:
        """Make every undelivered entry due now (parked ones start counting attempts afresh);
        returns how many. For an operator's "deliver now" after an outage."""
        self._open()  # also before start(): an operator's command acts on the file
        rows = await asyncio.to_thread(
            self._sql, "UPDATE outbox SET attempts = CASE WHEN status = 'parked' THEN 0 ELSE attempts END, "
            "status = 'pending', next_at = ? WHERE status != 'delivered' RETURNING key", (time.time(),),
        )
        if self._wake is not None:
            self._wake.set()
        return len(rows)

    def _due_count(self, cutoff: float) -> int:
        if self._db is None:
            return 0
        return int(self._sql("SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND next_at <= ?",
                             (cutoff,))[0][0])

    async def drain(self, timeout_s: float) -> bool:
        """Wait until nothing is pending (or the timeout); True when all were delivered."""
        deadline = time.monotonic() + timeout_s
        while self.pending():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def _select(self, where: str) -> list[Delivery]:
        if self._db is None:
            self._open()
        rows = self._sql(
            "SELECT key, status, attempts, last_error, next_at, created_at FROM outbox "
            f"WHERE {where} ORDER BY created_at, key"
        )
        return [Delivery(*r) for r in rows]

    # -- delivery loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            now = time.time()
            due = await asyncio.to_thread(
                self._sql,
                "SELECT key, body, attempts FROM outbox WHERE status = 'pending' AND next_at <= ? "
                "ORDER BY next_at, created_at LIMIT 1", (now,),
            )
            if due:
                await self._attempt(*due[0])
                continue
            nxt = await asyncio.to_thread(self._sql, "SELECT MIN(next_at) FROM outbox WHERE status = 'pending'")
            wait = None if nxt[0][0] is None else max(0.0, nxt[0][0] - time.time())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def _attempt(self, key: str, body: bytes, attempts: int) -> None:
        assert self._client is not None
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self.secret, body),
                   IDEMPOTENCY_HEADER: key}
        error: str | None = None
        try:
            resp = await self._client.post(self.url, content=body, headers=headers)
            if not 200 <= resp.status_code < 300:
                error = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        attempts += 1
        if error is None:
            await asyncio.to_thread(
                self._sql, "UPDATE outbox SET status = 'delivered', attempts = ?, delivered_at = ?, "
                "last_error = NULL WHERE key = ?", (attempts, time.time(), key),
            )
            return
        delay = min(self.backoff_base_s * 2 ** (attempts - 1), self.backoff_max_s)
        parked = self.max_attempts is not None and attempts >= self.max_attempts
        log.warning("webhook delivery failed (attempt %d, %s)%s", attempts, error.split(":")[0],
                    "; parked" if parked else "")
        await asyncio.to_thread(
            self._sql, "UPDATE outbox SET attempts = ?, last_error = ?, next_at = ?, status = ? WHERE key = ?",
            (attempts, error, time.time() + delay, "parked" if parked else "pending", key),
        )
