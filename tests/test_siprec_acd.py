"""A recorded (SIPREC) call in the ACD store: a ready agent on the PBX's call is on_call (reason
``siprec``) while it lasts, so a queue call does not ring them; other states are left alone."""

from __future__ import annotations

from speech.events import AgentStatus
from telephony.acd.directory import Directory, make_agent
from telephony.acd.store import AcdStore
from tests.test_supervision_units import store  # noqa: F401 - the sqlite/postgres store fixture


def _agents(s: AcdStore, ids: tuple[str, str] = ("alice", "bob")) -> None:
    """Two registered, ready agents (the PostgreSQL database is shared by this module's tests:
    each test takes its own ids)."""
    s.sync_directory(Directory(agents=tuple(make_agent(a, "pw", skills=("sales",), rounds=1000)
                                            for a in ids)), ready_on_register=True)
    s.set_registrations({a: f"sip:{a}@127.0.0.1:{5071 + i}" for i, a in enumerate(ids)}, ready_on_register=True)


def test_a_ready_agent_on_a_recorded_call_is_not_rung_for_a_queue_call(store: AcdStore) -> None:  # noqa: F811
    _agents(store)
    store.set_state("bob", AgentStatus.NOT_READY, "break")
    change = store.recorded_call_started("alice", "rec-1")
    assert change is not None and (change.state, change.previous, change.reason) == (
        AgentStatus.ON_CALL, AgentStatus.READY, "siprec")
    alice = store.agent("alice")
    assert alice is not None and (alice.state, alice.reason, alice.call_id) == (AgentStatus.ON_CALL, "siprec", "rec-1")
    # not ready, or already on a call: left as they are
    assert store.recorded_call_started("bob", "rec-2") is None
    assert store.recorded_call_started("alice", "rec-2") is None
    bob = store.agent("bob")
    assert bob is not None and (bob.state, bob.reason) == (AgentStatus.NOT_READY, "break")
    # a queue call finds nobody while alice is on the PBX's call
    store.enqueue("q-1", "sales", "worker0")
    assert store.claim("q-1", "sales") == []
    # the agent cannot make themselves ready in the middle of it
    assert store.set_state("alice", AgentStatus.READY) is None
    # the end of another call id changes nothing; the end of hers makes her ready, not in wrap-up
    assert store.recorded_call_ended("alice", "rec-2") is None
    ended = store.recorded_call_ended("alice", "rec-1")
    assert ended is not None and (ended.state, ended.previous) == (AgentStatus.READY, AgentStatus.ON_CALL)
    alice = store.agent("alice")
    assert alice is not None and (alice.state, alice.call_id, alice.calls_taken) == (AgentStatus.READY, "", 0)
    claims = store.claim("q-1", "sales")
    assert [c.agent_id for c in claims] == ["alice"]


def test_a_dead_workers_recorded_call_frees_its_agent(store: AcdStore) -> None:  # noqa: F811
    """A recorded call is in no queue: ``serve`` passes the dead worker's spooled calls."""
    _agents(store, ("carol", "dave"))
    assert store.recorded_call_started("carol", "rec-9") is not None
    assert store.recorded_call_started("dave", "rec-other") is not None
    assert store.release_worker("worker3") == []  # without its live calls nothing says carol is on it
    changes = store.release_worker("worker3", ["rec-9"])
    assert [(c.agent_id, c.state, c.reason) for c in changes] == [("carol", AgentStatus.READY, "worker_lost")]
    dave = store.agent("dave")
    assert dave is not None and dave.state is AgentStatus.ON_CALL  # another worker's call goes on
