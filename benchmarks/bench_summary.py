"""Time from CallEnded to the stored summary (SQLite, PostgreSQL) and to webhook delivery.

    .venv/bin/python benchmarks/bench_summary.py [--calls 50] [--pg-url URL]

Each call is a scripted ~5-minute conversation (about 50 utterances, IVR, tone, dead air). The
clock starts when the call's events are handed over at CallEnded; "stored" is when the store
transaction has committed; "webhook" is when the receiver process (tests/webhook_receiver.py,
HMAC checked) has logged the delivery. Prints p50/p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text

from speech.frames import Party
from speech.ports import free_port
from summaries.after_call import AfterCallChain
from summaries.durable_writer import DurableWriter
from summaries.redact import Redactor
from summaries.sample_calls import billing_call, utterance
from summaries.store import CrmStore
from summaries.summarizer import summarize
from summaries.webhook import WebhookOutbox

ROOT = Path(__file__).resolve().parent.parent
LINES = [
    (Party.CALLER, "I also wanted to ask about the fee on my last statement"),
    (Party.AGENT, "let me check that for you it looks like a late payment fee"),
    (Party.CALLER, "but I paid on time my card is 4111 1111 1111 1111"),
    (Party.AGENT, "I see the payment arrived one day late I have waived the fee this time"),
]


def long_call(call_id: str) -> list:
    ev = billing_call(call_id=call_id)
    end = ev.pop()  # CallEnded
    t = 40.0
    for i in range(12):
        for party, line in LINES:
            ev += utterance(call_id, party, t, line)
            t += 5.0 + (i % 3)
    ev.append(dataclasses.replace(end, t=t + 2, duration=t + 2))
    return ev


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def bench_store(url: str, calls: int, tmp: Path, label: str) -> tuple[str, list[float]]:
    store = CrmStore(url)
    writer = DurableWriter(store, tmp / f"spool-{label}")
    store.start()
    writer.start()
    chain = AfterCallChain(Redactor(), writer=writer)
    out = []
    for i in range(calls):
        ev = long_call(f"{label}-{i}")
        t0 = time.perf_counter()
        await chain.process(ev)
        out.append((time.perf_counter() - t0) * 1000)
    assert not writer.spooled()
    writer.stop()
    store.stop()
    return label, out


def start_receiver(port: int, secret: str, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "webhook_receiver.py"), "--port", str(port),
                             "--secret", secret, "--log", str(log)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


async def bench_webhook(calls: int, tmp: Path) -> list[float]:
    port, secret, log = free_port(), "bench", tmp / "hooks.jsonl"
    proc = start_receiver(port, secret, log)
    hook = WebhookOutbox(f"http://127.0.0.1:{port}/hook", secret, tmp / "outbox", backoff_base_s=0.1)
    await hook.start()
    chain = AfterCallChain(Redactor(), webhook=hook)
    started: dict[str, float] = {}
    try:
        for i in range(calls):
            cid = f"hook-{i}"
            ev = long_call(cid)
            started[cid] = time.time()
            await chain.process(ev)
            await hook.drain(30)  # one call at a time: latency, not throughput
    finally:
        await hook.stop()
        proc.terminate()
        proc.wait(10)
    rec = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rec) == calls and len({r["key"] for r in rec}) == calls
    return [(r["t"] - started[r["key"]]) * 1000 for r in rec]


def pg_database(admin_url: str) -> tuple[str, Callable[[], None]] | None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as c:
            name = f"crm_bench_{uuid.uuid4().hex[:8]}"
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        print(f"PostgreSQL skipped: {type(exc).__name__}")
        return None

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin_url.rsplit("/", 1)[0] + f"/{name}", drop


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    sample = long_call("x")
    n_utt = sum(e.type.value == "transcript.final" for e in sample)
    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t = []
        for i in range(args.calls):
            ev = long_call(f"s{i}")
            t0 = time.perf_counter()
            summarize(Redactor().redact_events(ev))
            t.append((time.perf_counter() - t0) * 1000)
        rows.append(("redact + summarize (no I/O)", t))
        rows.append(await bench_store(f"sqlite:///{tmp / 'crm.db'}", args.calls, tmp, "CallEnded -> stored, SQLite"))
        pg = pg_database(args.pg_url)
        if pg:
            url, drop = pg
            try:
                rows.append(await bench_store(url, args.calls, tmp, "CallEnded -> stored, PostgreSQL"))
            finally:
                drop()
        rows.append(("CallEnded -> webhook delivered", await bench_webhook(args.calls, tmp)))
    print(f"\n{args.calls} calls, {len(sample)} events / {n_utt} utterances each\n")
    print(f"{'path':<36} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'mean ms':>8}")
    for label, v in rows:
        print(f"{label:<36} {pct(v, .5):8.1f} {pct(v, .95):8.1f} {max(v):8.1f} {statistics.fmean(v):8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
