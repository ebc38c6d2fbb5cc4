"""The shared ACD store: who is next, who is free, one agent per call across processes.

On a real SQLite file (and PostgreSQL when it runs here): agents from the directory, registrar
contacts, longest-idle selection, head-of-line order across workers, ring → on call →
wrap-up → ready, no-answer → not ready, a dead worker's calls, and many processes racing for
one agent (exactly one wins).
"""

from __future__ import annotations

import multiprocessing
import uuid
from pathlib import Path

import pytest
import sqlalchemy

from speech.events import AgentStatus
from telephony.acd.directory import (
    Directory,
    DirectoryError,
    check_password,
    load_directory,
    make_agent,
    save_directory,
    sip_ha1,
)
from telephony.acd.store import AcdStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _directory(*ids: str, skills: tuple[str, ...] = ("agents",), contact: bool = False) -> Directory:
    return Directory(agents=tuple(
        make_agent(i, f"pw-{i}", skills=skills, rounds=1000,
                   contact=f"sip:{i}@127.0.0.1:7000" if contact else None) for i in ids))


@pytest.fixture
def store(tmp_path: Path):
    clock = Clock()
    s = AcdStore(f"sqlite:///{tmp_path / 'acd.db'}", clock=clock)
    s.clock = clock  # type: ignore[attr-defined]
    yield s
    s.close()


def _register(store: AcdStore, *ids: str) -> None:
    store.set_registrations({i: f"sip:{i}@127.0.0.1:6{n:03d}" for n, i in enumerate(ids)}, ready_on_register=True)


def test_registration_makes_agents_ready_and_unregistration_logs_them_out(store) -> None:
    store.sync_directory(_directory("alice", "bob"))
    assert {r.agent_id: r.state for r in store.agents()} == {"alice": AgentStatus.LOGGED_OUT, "bob": AgentStatus.LOGGED_OUT}
    changes = store.set_registrations({"alice": "sip:alice@127.0.0.1:6000"}, ready_on_register=True)
    assert [(c.agent_id, c.state, c.reason) for c in changes] == [("alice", AgentStatus.READY, "registered")]
    changes = store.set_registrations({}, ready_on_register=True)
    assert [(c.agent_id, c.state) for c in changes] == [("alice", AgentStatus.LOGGED_OUT)]
    assert store.agent("alice").registered is False


def test_longest_idle_ready_agent_with_the_skill_rings(store) -> None:
    store.sync_directory(Directory(agents=(
        make_agent("alice", "a", skills=("agents",), rounds=1000),
        make_agent("bob", "b", skills=("agents", "billing"), rounds=1000),
        make_agent("carol", "c", skills=("billing",), rounds=1000))))
    _register(store, "alice", "bob", "carol")
    store.clock.now += 5
    store.enqueue("c1", "billing", "w0")
    claims = store.claim("c1", "billing")
    assert [c.agent_id for c in claims] == ["bob"]  # bob and carol serve billing; bob idle longest (name breaks the tie)
    assert store.agent("bob").state is AgentStatus.RINGING
    store.answered("bob", "c1")
    store.leave("c1", "connected", "bob")
    store.clock.now += 60
    store.call_ended("bob", "c1", wrap_up_s=10)
    assert store.agent("bob").state is AgentStatus.WRAP_UP
    store.enqueue("c2", "billing", "w1")
    assert [c.agent_id for c in store.claim("c2", "billing")] == ["carol"]
    store.unring("carol", "c2", no_answer=True)
    assert (store.agent("carol").state, store.agent("carol").reason) == (AgentStatus.NOT_READY, "no_answer")
    store.requeue("c2")
    assert store.claim("c2", "billing") == []  # bob still in wrap-up, carol not ready
    store.clock.now += 11
    assert [c.agent_id for c in store.claim("c2", "billing")] == ["bob"]  # wrap-up over


def test_only_the_head_of_the_queue_takes_an_agent_and_positions_count(store) -> None:
    store.sync_directory(_directory("alice"))
    for i, call in enumerate(("c1", "c2", "c3")):
        store.clock.now += 1
        assert store.enqueue(call, "agents", f"w{i}") == i + 1
    _register(store, "alice")
    assert store.claim("c3", "agents") == [] and store.claim("c2", "agents") == []
    assert [c.agent_id for c in store.claim("c1", "agents")] == ["alice"]
    store.leave("c1", "connected", "alice")
    assert store.position("c2") == 1 and store.position("c3") == 2
    store.clock.now += 30
    assert store.leave("c2", "abandoned") == pytest.approx(31.0)  # joined at 1002, left at 1033
    assert store.position("c3") == 1
    assert [a["call_id"] for a in store.abandoned("agents")] == ["c2"]
    snap = store.snapshot("agents")
    assert snap.waiting == 1 and snap.callers[0]["call_id"] == "c3" and snap.agents == {"ringing": 1}


def test_ring_all_claims_every_free_agent_and_agents_set_their_state(store) -> None:
    store.sync_directory(_directory("alice", "bob", "carol"))
    _register(store, "alice", "bob", "carol")
    assert store.set_state("carol", AgentStatus.NOT_READY, "break") is not None
    store.enqueue("c1", "agents", "w0")
    assert sorted(c.agent_id for c in store.claim("c1", "agents", all_ready=True)) == ["alice", "bob"]
    assert store.set_state("alice", AgentStatus.NOT_READY, "break") is None  # ringing: refused
    with pytest.raises(ValueError):
        store.set_state("bob", AgentStatus.ON_CALL)


def test_a_dead_workers_calls_are_lost_and_its_agents_freed(store) -> None:
    store.sync_directory(_directory("alice", "bob"))
    _register(store, "alice", "bob")
    store.enqueue("c1", "agents", "worker0")
    store.claim("c1", "agents")
    store.enqueue("c2", "agents", "worker0")
    changes = store.release_worker("worker0")
    assert [(c.agent_id, c.state) for c in changes] == [("alice", AgentStatus.READY)]
    assert store.position("c2") == 0
    assert store.snapshot("agents").waiting == 0


def test_static_contacts_count_as_registered(store) -> None:
    changes = store.sync_directory(_directory("desk", contact=True))
    assert [(c.agent_id, c.state) for c in changes] == [("desk", AgentStatus.READY)]
    store.set_registrations({}, ready_on_register=True, static=("desk",))
    assert store.agent("desk").available


def test_callback_requests_are_kept(store) -> None:
    store.enqueue("c1", "agents", "w0")
    store.leave("c1", "callback")
    store.add_callback("c1", "agents", "sip:+15551234567@carrier")
    assert [(c["call_id"], c["queue"], c["done"]) for c in store.callbacks()] == [("c1", "agents", False)]


def test_expected_wait_from_agents_and_recent_waits(store) -> None:
    store.sync_directory(_directory("alice", "bob"))
    _register(store, "alice", "bob")
    assert store.expected_wait_s("agents", 3, default_handle_s=120) == pytest.approx(180.0)
    store.enqueue("c1", "agents", "w0")
    store.clock.now += 40
    store.leave("c1", "connected", "alice")
    assert store.expected_wait_s("agents", 2, default_handle_s=120) == pytest.approx(80.0)


def _race(url: str, call_id: str, barrier, out) -> None:
    s = AcdStore(url)
    barrier.wait()
    out.put((call_id, [c.agent_id for c in s.claim(call_id, "agents")]))
    s.close()


def _race_for_one_agent(url: str) -> list[tuple[str, list[str]]]:
    seed = AcdStore(url)
    seed.sync_directory(_directory("alice"))
    _register(seed, "alice")
    calls = [f"c{i}" for i in range(6)]
    for n, c in enumerate(calls):
        seed.enqueue(c, "agents", f"w{n}", enqueued_at=1000.0)  # same time: order by call id
    seed.close()
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(len(calls)), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(url, c, barrier, out)) for c in calls]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    return results


def test_processes_racing_for_one_agent_one_wins(tmp_path: Path) -> None:
    results = _race_for_one_agent(f"sqlite:///{tmp_path / 'race.db'}")
    winners = [c for c, agents in results if agents]
    assert winners == ["c0"], results  # the head of the line, and only it


def test_processes_racing_for_one_agent_one_wins_postgres() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            schema = f"acd_{uuid.uuid4().hex[:8]}"
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
            conn.commit()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432 ({type(exc).__name__})")
    try:
        results = _race_for_one_agent(f"{url}?options=-csearch_path%3D{schema}")
        assert [c for c, agents in results if agents] == ["c0"], results
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            conn.commit()
        engine.dispose()


def test_directory_file_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    save_directory(_directory("alice"), path)
    assert path.stat().st_mode & 0o777 == 0o600
    d = load_directory(path)
    alice = d.get("alice")
    assert alice is not None and alice.ha1 == sip_ha1("alice", "callcenter", "pw-alice")
    assert check_password("pw-alice", alice.password_hash) and not check_password("nope", alice.password_hash)
    path.write_text("agents:\n  - id: Bad/Id\n    skills: [agents]\n")
    with pytest.raises(DirectoryError, match=r"agents\.yaml: agents\.0\.id"):
        load_directory(path)
    path.write_text("agents:\n  - id: bob\n  - id: bob\n")
    with pytest.raises(DirectoryError, match="duplicate id bob"):
        load_directory(path)
    assert load_directory(tmp_path / "missing.yaml").agents == ()
