"""`callcenter replay --jobs N` (issue 14, batch QA at scale): the real CLI in a subprocess, real
worker processes (and real Ray actors when Ray is installed), the real SQLite store written by
several processes at once. What is compared is what a QA engineer relies on: the same output in
the same order, the same verdicts and exit codes, the same records in the store."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import psutil
import pytest

from live.broker import EmbeddedBroker, find_mosquitto
from telephony.net import free_port
from tests.conftest import FIXTURES
from tests.test_replay_cli import cli

pytestmark = pytest.mark.slow

SHORT = ["dtmf_menu_8k_ulaw.wav", "dead_air_8k_alaw.wav", "calm_billing_8k_ulaw.wav"]
"""Short G.711 fixtures (14-20 s each) with expectation files."""


def batch(folder: Path, names: list[str], *, expectations: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(FIXTURES / name, folder / name)
        if expectations:
            base = re.sub(r"_8k_(ulaw|alaw)$", "", Path(name).stem)
            shutil.copy(FIXTURES / f"{base}.expect.json", folder / f"{base}.expect.json")
    return folder


def corrupt(path: Path) -> Path:
    good = (FIXTURES / SHORT[0]).read_bytes()
    path.write_bytes(good[:44] + b"\x00garbage" * 50)  # a WAV header over nothing it describes
    return path


def comparable(stdout: str) -> list[str]:
    """Output lines without what differs between two runs of one file: call ids, wall times."""
    lines = []
    for line in stdout.splitlines():
        if "x real time)" in line:
            continue
        lines.append(re.sub(r"replay-[0-9a-f]{12}", "replay-ID", line))
    return lines


def store_rows(data_dir: Path) -> list[tuple]:
    """The stored calls as a QA lead reads them back, ids left out: per caller its summary
    fields and what was said."""
    with sqlite3.connect(data_dir / "callcenter.db") as conn:
        calls = conn.execute(
            "select id, caller, duration, end_reason, reason, resolution, tone_end from calls order by caller"
        ).fetchall()
        rows = []
        for call_id, *fields in calls:
            said = conn.execute("select party, text from transcripts where call_id = ? order by t_start",
                                (call_id,)).fetchall()
            rows.append((*fields, tuple(said)))
        return rows


def test_jobs_2_prints_checks_and_stores_what_jobs_1_does(tmp_path: Path) -> None:
    """Whisper (the default engine) on three short calls, checked against their expectations."""
    calls = batch(tmp_path / "calls", SHORT, expectations=True)
    one = cli("replay", "--check", "--jobs", "1", str(calls), data_dir=tmp_path / "one", timeout=900)
    two = cli("replay", "--check", "--jobs", "2", str(calls), data_dir=tmp_path / "two", timeout=900)
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-2000:]
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-2000:]
    assert two.stdout.count("QA: PASS") == len(SHORT)
    headers = [ln for ln in two.stdout.splitlines() if ln.startswith("== ")]
    assert headers == [f"== {calls / name}" for name in sorted(SHORT)]  # input order, whatever finished first
    assert comparable(two.stdout) == comparable(one.stdout)
    assert store_rows(tmp_path / "two") == store_rows(tmp_path / "one")
    assert len(store_rows(tmp_path / "two")) == len(SHORT)
    assert "progress: 3/3 files, 0 failed" in two.stderr  # not a terminal: plain lines


def test_json_lines_stay_grouped_per_file_in_input_order(tmp_path: Path) -> None:
    calls = batch(tmp_path / "calls", SHORT)
    res = cli("replay", "--json", "--engine", "none", "--no-store", "--jobs", "2", str(calls),
              data_dir=tmp_path / "var")
    assert res.returncode == 0, res.stderr[-2000:]
    import json

    files = [json.loads(line)["file"] for line in res.stdout.splitlines()]
    grouped = [f for i, f in enumerate(files) if i == 0 or files[i - 1] != f]
    assert grouped == [str(calls / name) for name in sorted(SHORT)]


def test_a_corrupt_file_fails_alone_and_the_batch_goes_on(tmp_path: Path) -> None:
    calls = batch(tmp_path / "calls", SHORT)
    corrupt(calls / "b_corrupt.wav")
    res = cli("replay", "--engine", "none", "--jobs", "2", str(calls), data_dir=tmp_path / "var")
    assert res.returncode == 2, res.stderr[-2000:]
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "b_corrupt.wav" in errors[0], res.stderr
    assert "3 of 4 recordings OK" in res.stderr
    assert "progress: 4/4 files, 1 failed" in res.stderr
    headers = [ln[3:] for ln in res.stdout.splitlines() if ln.startswith("== ")]
    assert [Path(h).name for h in headers] == sorted([*SHORT, "b_corrupt.wav"])
    assert res.stdout.count("call ended") == 3
    assert len(store_rows(tmp_path / "var")) == 3


def test_an_expectation_failure_exits_1_from_the_pool(tmp_path: Path) -> None:
    calls = batch(tmp_path / "calls", SHORT[:2])
    (calls / "dtmf_menu.expect.json").write_text('{"schema": 1, "dtmf": "999"}')
    (calls / "dead_air.expect.json").write_text('{"schema": 1}')
    res = cli("replay", "--check", "--engine", "none", "--no-store", "--jobs", "2", str(calls),
              data_dir=tmp_path / "var")
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    assert res.stdout.count("QA: PASS") == 1 and res.stdout.count("QA: FAIL") == 1
    assert "999" in res.stdout and "1234#4512" in res.stdout


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """stderr on a pseudo-terminal: one rich bar with files done, failures and speed."""
    calls = batch(tmp_path / "calls", SHORT[:2])
    corrupt(calls / "c_corrupt.wav")
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLCENTER_", "NO_COLOR"))}
    env["TERM"] = "xterm"
    proc = subprocess.Popen(
        [sys.executable, "-m", "callcenter", "--data-dir", str(tmp_path / "var"), "replay", "--engine", "none",
         "--no-store", "--jobs", "2", str(calls)],
        stdout=subprocess.PIPE, stderr=follower, env=env, text=True,
    )
    os.close(follower)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # EIO: the last writer closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=600)
    reader.join(timeout=30)
    os.close(leader)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    assert proc.returncode == 2
    assert re.search(r"3/3\s+files\s+1 failed\s+[0-9.]+ audio h per wall h", screen), screen[-2000:]
    assert "progress:" not in screen  # the bar, not the plain lines
    assert out.count("== ") == 3


def test_a_worker_that_dies_takes_only_its_file(tmp_path: Path) -> None:
    """A worker process killed in the middle of a file (SIGKILL, as the OOM killer would): that
    file fails with a clear error, a new worker replays the rest, every good call is stored."""
    from callcenter.replay_pool import ProcessBackend
    from callcenter.replay_worker import ReplayJob, WorkerOptions
    from callcenter.settings import load_settings

    stuck = tmp_path / "stuck.wav"
    os.mkfifo(stuck)  # reading it blocks until someone writes: the worker is caught mid-file
    good = batch(tmp_path / "calls", SHORT[:2])
    settings = load_settings(None, {"asr.engine": "none", "data_dir": str(tmp_path / "var")}, environ={})
    backend = ProcessBackend(WorkerOptions(settings), 1)
    jobs = [ReplayJob(0, stuck), *(ReplayJob(i + 1, good / n) for i, n in enumerate(SHORT[:2]))]

    def kill_the_reader() -> None:
        while True:  # a non-blocking open for writing succeeds once a reader has the FIFO open
            try:
                fd = os.open(stuck, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                threading.Event().wait(0.1)
        servers = [c for c in psutil.Process().children() if "forkserver" in " ".join(c.cmdline())]
        workers = [p for server in servers for p in server.children()]
        assert len(workers) == 1, workers
        workers[0].kill()
        os.close(fd)

    async def run() -> list:
        killer = asyncio.create_task(asyncio.to_thread(kill_the_reader))
        outcomes = [o async for o in backend.outcomes(jobs)]
        await killer
        return outcomes

    outcomes = sorted(asyncio.run(run()), key=lambda o: o.index)
    assert [o.index for o in outcomes] == [0, 1, 2]
    assert outcomes[0].result.error is not None and "died" in outcomes[0].result.error
    assert str(stuck) in outcomes[0].result.error
    assert all(o.result.ok and o.result.call_id for o in outcomes[1:])
    assert len(store_rows(tmp_path / "var")) == 2


def _write_calls(db: str, spool: str, worker: int, calls: int) -> None:
    """One writer process: calls from one new caller number, through the durable writer."""
    from speech.events import CallEnded, CallStarted
    from summaries.durable_writer import DurableWriter
    from summaries.store import CrmStore

    store = CrmStore(f"sqlite:///{db}")
    store.start()
    writer = DurableWriter(store, spool)
    writer.start()
    for i in range(calls):
        cid = f"w{worker}-{i}"
        writer.write([CallStarted(call_id=cid, t=0.0, source="replay", caller="5550100", callee="qa",
                                  started_at="2026-12-07T03:00:00+00:00"),
                      CallEnded(call_id=cid, t=1.0, reason="end_of_recording")], None)
    assert writer.flush() == 0
    writer.stop()
    store.stop()


def test_the_sqlite_store_holds_with_several_writer_processes(tmp_path: Path) -> None:
    """Four processes store 25 calls each at once, all from one caller who is new to the store
    (the contact row every one of them wants to insert first): every call lands, once, with
    nothing left in the spool."""
    import multiprocessing

    from summaries.store import CrmStore

    db, spool = tmp_path / "c.db", tmp_path / "spool"
    store = CrmStore(f"sqlite:///{db}")
    store.start()  # migrated once, as the replay parent does before its workers start
    store.stop()
    ctx = multiprocessing.get_context("forkserver")
    procs = [ctx.Process(target=_write_calls, args=(str(db), str(spool), n, 25)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from calls").fetchone() == (100,)
        assert conn.execute("select count(*) from contacts").fetchone() == (1,)
        assert conn.execute("select count(distinct contact_id) from calls").fetchone() == (1,)
    assert not list(spool.glob("*.call.json"))


@pytest.mark.broker
@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto binary missing (apt-get install mosquitto)")
def test_publish_from_the_pool_loses_no_event(tmp_path: Path) -> None:
    """``--publish --jobs 2`` to a real mosquitto: each call's ``events`` topic carries every
    event the command printed for that call, in the same order."""
    import json

    import aiomqtt

    calls = batch(tmp_path / "calls", SHORT)
    port = free_port()

    async def run() -> tuple[subprocess.CompletedProcess, dict[str, list[str]]]:
        seen: dict[str, list[str]] = {}
        async with EmbeddedBroker(port=port, backend="mosquitto"), \
                aiomqtt.Client("127.0.0.1", port, identifier="qa-listener", timeout=10) as client:
            await client.subscribe("callcenter/calls/+/events", qos=1)
            env = {"CALLCENTER_MQTT__HOST": "127.0.0.1", "CALLCENTER_MQTT__PORT": str(port)}
            res = await asyncio.to_thread(cli, "replay", "--json", "--publish", "--engine", "none", "--no-store",
                                          "--jobs", "2", str(calls), data_dir=tmp_path / "var", env=env)

            async def collect() -> None:
                async for msg in client.messages:
                    event = json.loads(bytes(msg.payload))  # type: ignore[arg-type]
                    seen.setdefault(event["call_id"], []).append(event["type"])
                    if sum(types[-1:] == ["summary"] for types in seen.values()) == len(SHORT):
                        return

            await asyncio.wait_for(collect(), timeout=120)
        return res, seen

    res, published = asyncio.run(run())
    assert res.returncode == 0, res.stderr[-2000:]
    printed: dict[str, list[str]] = {}
    for line in res.stdout.splitlines():
        event = json.loads(line)
        printed.setdefault(event["call_id"], []).append(event["type"])
    assert len(printed) == len(SHORT)
    assert published == printed


def test_ray_backend_gives_the_same_batch(tmp_path: Path) -> None:
    """A local Ray instance (2 CPUs, started for the batch): same output, store and exit code."""
    pytest.importorskip("ray", reason="Ray not installed (pip install 'callcenter[ray]')")
    calls = batch(tmp_path / "calls", SHORT)
    corrupt(calls / "b_corrupt.wav")
    local = cli("replay", "--engine", "none", "--jobs", "2", str(calls), data_dir=tmp_path / "local")
    on_ray = cli("replay", "--engine", "none", "--backend", "ray", "--jobs", "2", str(calls),
                 data_dir=tmp_path / "ray", timeout=600)
    assert on_ray.returncode == local.returncode == 2, on_ray.stderr[-3000:]
    assert comparable(on_ray.stdout) == comparable(local.stdout)
    assert store_rows(tmp_path / "ray") == store_rows(tmp_path / "local")
    assert "3 of 4 recordings OK" in on_ray.stderr
