"""DurableWriter: calls survive a database that is down (real PostgreSQL stopped and restarted)
or locked (SQLite held by another writer), and are written later; nothing is lost."""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from speech.ports import free_port
from summaries.durable_writer import DurableWriter
from summaries.sample_calls import angry_tech_call, billing_call
from summaries.store import CrmStore
from summaries.summarizer import summarize


def _wait(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_locked_sqlite_spools_then_writes(tmp_path):
    db = tmp_path / "crm.db"
    store = CrmStore(f"sqlite:///{db}", connect_timeout_s=0.2)
    writer = DurableWriter(store, tmp_path / "spool", backoff_base_s=0.05, backoff_max_s=0.2)
    writer.start()
    try:
        first = billing_call()
        writer.write(first, summarize(first))
        assert writer.spooled() == [] and store.count_calls() == 1

        locker = sqlite3.connect(db, timeout=0)
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        calls = [billing_call(call_id=f"locked-{i}") for i in range(3)]
        for ev in calls:
            writer.write(ev, summarize(ev))
        assert len(writer.spooled()) == 3
        assert "OperationalError" in writer.last_error
        locker.rollback()
        locker.close()

        assert _wait(lambda: not writer.spooled()), "retry thread did not drain the spool"
        assert store.count_calls() == 4
        assert store.get_call("locked-2").summary.reason == "billing"
    finally:
        writer.stop()
        writer.stop()
        store.stop()


def test_spool_left_by_a_previous_run_is_written_on_start(tmp_path):
    spool = tmp_path / "spool"
    down = CrmStore(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    w1 = DurableWriter(down, spool)
    ev = angry_tech_call()
    w1.write(ev, summarize(ev))  # cannot even open the database
    assert len(w1.spooled()) == 1
    files = list(spool.iterdir())
    assert all(not f.name.endswith(".tmp") for f in files)  # only complete files

    up = CrmStore(f"sqlite:///{tmp_path / 'crm.db'}")
    w2 = DurableWriter(up, spool)
    w2.start()
    try:
        assert _wait(lambda: not w2.spooled())
        assert up.get_call("call-tech") is not None
    finally:
        w2.stop()
        up.stop()


# -- a throwaway PostgreSQL server that we can stop and start ------------------------------------

def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class TmpPostgres:
    """initdb into a temp dir and run it as the ``postgres`` user on a random loopback port."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="crm-pg-", dir="/tmp"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self._as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                           "--auth=trust", "--no-sync", "-E", "UTF8"])

    def _as_postgres(self, cmd: list[str]) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + cmd, check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts,
                           "-l", str(self.dir / "log"), "-w", "start"])

    def stop(self) -> None:
        self._as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def cleanup(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_down_then_up_loses_nothing(tmp_path):
    if _pg_bin() is None or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL server binaries (pg_ctl, initdb) or runuser not installed")
    pg = TmpPostgres()
    store = CrmStore(pg.url, connect_timeout_s=1)
    writer = DurableWriter(store, tmp_path / "spool", backoff_base_s=0.1, backoff_max_s=0.5)
    try:
        # Down from the start: nothing listens on the port yet.
        ev0 = billing_call(call_id="before-start")
        writer.write(ev0, summarize(ev0))
        assert len(writer.spooled()) == 1
        pg.start()
        writer.start()
        assert _wait(lambda: not writer.spooled(), 30)
        assert store.count_calls() == 1

        pg.stop()  # goes down while the store holds pooled connections
        for i in range(3):
            ev = angry_tech_call(call_id=f"while-down-{i}")
            writer.write(ev, summarize(ev))
        assert len(writer.spooled()) == 3 and writer.last_error
        pg.start()
        assert _wait(lambda: not writer.spooled(), 30), writer.last_error
        assert store.count_calls() == 4
        assert {c.call_id for c in store.list_calls()} == {"before-start", *(f"while-down-{i}" for i in range(3))}
        assert writer.flush() == 0
    finally:
        writer.stop()
        store.stop()
        pg.cleanup()
