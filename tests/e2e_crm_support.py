"""Helpers of the end-to-end CRM tests: the database as an attacker sees it, the webhook outbox,
and `callcenter api` in a subprocess."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from summaries.webhook import OUTBOX_FILE
from telephony.net import free_port

TOKEN = "e2e-api-token"


def dump_database(url: str) -> str:
    """Every row of every table, as text (what an attacker with the database would see)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                raw = conn.connection.driver_connection
                assert isinstance(raw, sqlite3.Connection)
                return "\n".join(raw.iterdump())
            tables = conn.execute(text("select tablename from pg_tables where schemaname = 'public'")).scalars()
            return "\n".join(
                repr(row) for t in list(tables) for row in conn.execute(text(f'select * from "{t}"'))
            )
    finally:
        engine.dispose()


def original_dtmf(url: str, call_id: str) -> tuple[str, str]:
    """(keys in the redacted ``data`` column, keys in the ``original`` column) of one call."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("select data, original from events where call_id = :c and type = 'dtmf' order by seq"),
                {"c": call_id},
            ).all()
    finally:
        engine.dispose()
    load = lambda v: json.loads(v) if isinstance(v, str) else v  # noqa: E731  (sqlite gives text)
    data = "".join(load(d)["digit"] for d, _ in rows)
    orig = "".join((load(o) or {}).get("digit", "") for _, o in rows)  # JSON null: nothing kept
    return data, orig


def outbox_rows(data_dir: Path) -> list[tuple[str, str, bytes]]:
    db = data_dir / "webhook-outbox" / OUTBOX_FILE
    with sqlite3.connect(db) as conn:
        return conn.execute("select key, status, body from outbox").fetchall()


class ApiProcess:
    """`callcenter api` in a subprocess on a free port."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        full = {k: v for k, v in os.environ.items() if not k.startswith(("CALLCENTER_", "VOSK_"))}
        full.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "callcenter", "--data-dir", str(data_dir), "api", "--port", str(self.port)],
            env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(self.base + "/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"callcenter api did not start: {self.proc.stderr.read()[-2000:]}")
                time.sleep(0.1)

    def get(self, path: str, token: str | None = TOKEN, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.base + path, params=params, headers=headers, timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
