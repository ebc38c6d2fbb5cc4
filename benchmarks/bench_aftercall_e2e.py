"""Replay's CallEnded to the row in PostgreSQL and to the webhook receiver, through the real CLI.

    .venv/bin/python benchmarks/bench_aftercall_e2e.py [--calls 20] [--wav F] [--engine none]

One ``callcenter replay --json`` process replays the file ``--calls`` times (a batch, as a QA run
does) into a throwaway database on PostgreSQL at 127.0.0.1:5432, with the webhook pointing at
tests/webhook_receiver.py (HMAC checked) in its own process. The clock starts when the
``call.ended`` line of a call reaches this process (stdout unbuffered); "stored" is the first poll
(every 5 ms) that sees the call's row; "webhook" is the receiver's logged arrival time. Prints
p50/p95/max in milliseconds. ``--engine none`` (default) keeps the ASR out: its cost comes before
CallEnded, not after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from speech.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SECRET = "bench-secret"
POLL_S = 0.005


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--wav", type=Path, default=ROOT / "audio_fixtures" / "dtmf_menu.wav")
    ap.add_argument("--engine", default="none", choices=["none", "pocketsphinx"])
    args = ap.parse_args()

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"crm_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-aftercall-"))
    port = free_port()
    log = tmp / "deliveries.jsonl"
    receiver = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "webhook_receiver.py"), "--port", str(port), "--secret", SECRET,
         "--log", str(log)], stdout=subprocess.PIPE, text=True,
    )
    assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env.update({"PYTHONUNBUFFERED": "1", "CALLCENTER_STORE__URL": url,
                "CALLCENTER_STORE__WEBHOOK_URL": f"http://127.0.0.1:{port}/hook",
                "CALLCENTER_STORE__WEBHOOK_SECRET": SECRET})
    ended: dict[str, float] = {}
    stored: dict[str, float] = {}
    done = threading.Event()

    def poll_db() -> None:
        engine = create_engine(url)
        with engine.connect() as conn:
            while not done.is_set():
                waiting = [c for c in ended if c not in stored]
                if waiting:
                    try:
                        found = conn.execute(text("select id from calls where id = any(:ids)"),
                                             {"ids": waiting}).scalars().all()
                    except Exception:  # noqa: BLE001 - table not migrated yet
                        conn.rollback()
                        found = []
                    now = time.time()
                    for c in found:
                        stored[c] = now
                    conn.rollback()
                time.sleep(POLL_S)
        engine.dispose()

    poller = threading.Thread(target=poll_db, daemon=True)
    poller.start()
    cmd = [sys.executable, "-m", "callcenter", "--data-dir", str(tmp / "var"), "replay", "--json",
           "--jobs", "1",  # one process: events stream as each call plays (a pool prints per file)
           "--engine", args.engine, *[str(args.wav)] * args.calls]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"call.ended"' in line:
            ended[json.loads(line)["call_id"]] = time.time()
    rc = proc.wait()
    deadline = time.time() + 30
    while time.time() < deadline and len(stored) < len(ended):
        time.sleep(0.05)
    done.set()
    poller.join()
    receiver.terminate()
    receiver.wait()
    hooks = {r["key"]: r["t"] for r in map(json.loads, log.read_text().splitlines())} if log.exists() else {}
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()

    to_db = [(stored[c] - t) * 1000 for c, t in ended.items() if c in stored]
    to_hook = [(hooks[c] - t) * 1000 for c, t in ended.items() if c in hooks]
    print(f"replay exit {rc}; {len(ended)} calls ended, {len(to_db)} stored, {len(to_hook)} delivered "
          f"(engine {args.engine}, {args.wav.name})")
    print(f"{'CallEnded ->':<24}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for label, values in (("row in PostgreSQL", to_db), ("webhook received", to_hook)):
        if values:
            print(f"{label:<24}{statistics.median(values):>10.1f}{pct(values, 0.95):>10.1f}{max(values):>10.1f}")


if __name__ == "__main__":
    main()
