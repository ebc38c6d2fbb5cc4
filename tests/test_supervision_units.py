"""Supervision without SIP: the mode → links mapping, the store's request table (the channel
between the console and the worker holding a call), and the desk's refusals."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callcenter.supervision import SupervisionDesk
from speech.events import Event, SupervisionChanged, SupervisorMode
from summaries.conversation import supervision_steps
from telephony.acd.directory import Directory, make_agent
from telephony.acd.store import AcdStore, SupervisionRequest
from telephony.items import CallFailed, EndpointFull
from telephony.leg import CallLeg
from telephony.supervision import DTMF_MODES, Role, link_changes, mode_links

C, A, S = Role.CALLER, Role.AGENT, Role.SUPERVISOR


# ---- mode → links ----------------------------------------------------------------------------
def test_each_mode_has_the_links_the_issue_names() -> None:
    assert mode_links(SupervisorMode.LISTEN) == {(C, S), (A, S)}
    assert mode_links(SupervisorMode.WHISPER) == {(C, S), (A, S), (S, A)}
    assert mode_links(SupervisorMode.BARGE) == {(C, S), (A, S), (S, A), (S, C)}
    assert mode_links(SupervisorMode.LEFT) == set()
    # nobody's audio ever reaches the caller from the supervisor except in barge
    assert all((S, C) not in mode_links(m) for m in SupervisorMode if m is not SupervisorMode.BARGE)


def test_switching_modes_only_touches_the_links_that_differ() -> None:
    off, on = link_changes(SupervisorMode.LISTEN, SupervisorMode.WHISPER)
    assert off == set() and on == {(S, A)}
    off, on = link_changes(SupervisorMode.BARGE, SupervisorMode.LISTEN)
    assert off == {(S, A), (S, C)} and on == set()
    off, on = link_changes(SupervisorMode.WHISPER, SupervisorMode.LEFT)
    assert off == {(C, S), (A, S), (S, A)} and on == set()
    assert DTMF_MODES == {"1": SupervisorMode.LISTEN, "2": SupervisorMode.WHISPER, "3": SupervisorMode.BARGE}


# ---- the store's request table -----------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AcdStore]:
    """The ACD store on SQLite, and on PostgreSQL (skipped when none answers on 5432)."""
    url = f"sqlite:///{tmp_path / 'acd.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = AcdStore(url)
    yield s
    s.close()


def _req(store: AcdStore, rid: int) -> SupervisionRequest:
    row = store.supervision_request(rid)
    assert row is not None
    return row


def test_a_request_is_taken_once_by_the_worker_holding_the_call(store: AcdStore) -> None:
    rid = store.request_supervision("call-1", "sue", "listen")
    assert _req(store, rid).status == "pending"
    assert store.take_supervision(["call-2"], "worker0") == []  # not its call
    taken = store.take_supervision(["call-1", "call-2"], "worker1")
    assert [(r.id, r.status, r.worker, r.mode) for r in taken] == [(rid, "taken", "worker1", "listen")]
    assert store.take_supervision(["call-1"], "worker0") == []  # never twice
    assert not store.expire_supervision(rid)  # a taken request is the worker's to finish
    store.finish_supervision(rid, ok=True)
    assert _req(store, rid).status == "done"
    assert [(r.call_id, r.supervisor_id, r.mode) for r in store.supervision()] == [("call-1", "sue", "listen")]


def test_a_request_no_worker_takes_expires_and_is_never_taken_after(store: AcdStore) -> None:
    rid = store.request_supervision("gone", "sue", "barge")
    assert store.expire_supervision(rid)
    row = _req(store, rid)
    assert (row.status, row.reason) == ("failed", "not_live")
    assert store.take_supervision(["gone"], "worker0") == []
    assert store.supervision("gone") == []


def test_current_supervision_is_the_latest_done_row_per_call_and_supervisor(store: AcdStore) -> None:
    for mode in ("listen", "whisper"):
        rid = store.request_supervision("c", "sue", mode)
        store.take_supervision(["c"], "w")
        store.finish_supervision(rid, ok=True)
    failed = store.request_supervision("c", "sue", "barge")
    store.take_supervision(["c"], "w")
    store.finish_supervision(failed, ok=False, reason="listen_only")
    store.note_supervision("c", "tom", "listen", "dtmf", "w")
    now = {(r.supervisor_id, r.mode) for r in store.supervision("c")}
    assert now == {("sue", "whisper"), ("tom", "listen")}  # the failed barge changed nothing
    store.note_supervision("c", "sue", "left", "hangup", "w")
    assert [(r.supervisor_id, r.mode, r.origin) for r in store.supervision("c")] == [("tom", "listen", "dtmf")]
    assert store.supervision("other") == []


# ---- the desk's refusals ---------------------------------------------------------------------
class _NoCalls:
    """An endpoint with no free line, or one that must not be used."""

    def __init__(self, free: int) -> None:
        self.free_slots = free
        self.dialed: list[str] = []

    async def place_call(self, uri: str, **_: Any) -> CallLeg:
        self.dialed.append(uri)
        raise AssertionError("must not dial")


class _ListenOnly:
    """A supervisable call with no agent leg (as a SIPREC recording is)."""

    call_id = "siprec-1"
    agent_id = "bob"

    def __init__(self, listen_only: bool) -> None:
        self.listen_only = listen_only
        self.events: list[Event] = []

    async def link(self, supervisor: CallLeg, old: SupervisorMode, new: SupervisorMode) -> None:
        raise AssertionError("no link without a supervisor leg")

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def now(self) -> float:
        return 12.5


async def test_the_desk_refuses_with_reasons_and_says_so_on_the_call(store: AcdStore) -> None:
    store.sync_directory(Directory(agents=(make_agent("sue", "pw", supervisor=True, rounds=1000),)),
                         ready_on_register=True)
    store.set_registrations({}, ready_on_register=True)
    call = _ListenOnly(listen_only=True)
    endpoint = _NoCalls(free=2)
    desk = SupervisionDesk(store=store, endpoint=endpoint, worker="w", front="127.0.0.1:5060", ring_timeout_s=1)
    desk.attach(call)
    try:
        barge = await desk.apply(call.call_id, "sue", SupervisorMode.BARGE, "console")
        listen = await desk.apply(call.call_id, "sue", SupervisorMode.LISTEN, "console")
        store.set_registrations({"sue": "sip:sue@127.0.0.1:5999"}, ready_on_register=True)
        endpoint.free_slots = 0
        full = await desk.apply(call.call_id, "sue", SupervisorMode.LISTEN, "console")
        gone = await desk.apply("other-call", "sue", SupervisorMode.LISTEN, "console")
    finally:
        await desk.close()
    assert (barge.ok, barge.reason) == (False, "listen_only")
    assert (listen.ok, listen.reason) == (False, "not_registered")
    assert (full.ok, full.reason) == (False, "no_slot")
    assert (gone.ok, gone.reason) == (False, "call_ended")
    assert endpoint.dialed == []
    events = [e for e in call.events if isinstance(e, SupervisionChanged)]
    assert [(e.requested, e.reason, e.mode) for e in events] == [
        (SupervisorMode.BARGE, "listen_only", SupervisorMode.LEFT),
        (SupervisorMode.LISTEN, "not_registered", SupervisorMode.LEFT),
        (SupervisorMode.LISTEN, "no_slot", SupervisorMode.LEFT)]
    assert all(e.agent_id == "bob" and e.t == 12.5 for e in events)
    steps = supervision_steps(events)
    assert [(s.requested, s.reason) for s in steps][0] == ("barge", "listen_only")


async def test_the_desk_polls_only_while_it_holds_calls(store: AcdStore) -> None:
    desk = SupervisionDesk(store=store, endpoint=_NoCalls(free=2), worker="w", front=None, ring_timeout_s=1,
                           poll_s=0.05)
    call = _ListenOnly(listen_only=True)
    rid = store.request_supervision(call.call_id, "nobody", "whisper")
    desk.attach(call)
    try:
        for _ in range(100):
            if _req(store, rid).status == "failed":
                break
            await asyncio.sleep(0.05)
        row = _req(store, rid)
        assert (row.status, row.reason, row.worker) == ("failed", "listen_only", "w")
        await desk.detach(call.call_id)
        await asyncio.sleep(0.2)
        assert desk._poller is not None and desk._poller.done()  # nothing to poll for
    finally:
        await desk.close()


# ---- the calls supervisors join: which links each asks the endpoint for --------------------
class _Leg:
    """Just what the link code reads of a ``CallLeg``."""

    def __init__(self, name: str) -> None:
        self.call_id = f"call-{name}"
        self.name = name
        self.ended = None


class _Links:
    """An endpoint's ``connect``, keeping the one-way links it would make."""

    def __init__(self) -> None:
        self.up: set[tuple[str, str]] = set()

    async def connect(self, src: Any, dst: Any, on: bool = True) -> None:
        if on:
            self.up.add((src.name, dst.name))
        else:
            self.up.discard((src.name, dst.name))


async def test_a_bridged_call_links_by_mode_and_follows_a_new_agent() -> None:
    from callcenter.supervision import BridgedCall

    links = _Links()
    caller, alice, bob, sue = _Leg("caller"), _Leg("alice"), _Leg("bob"), _Leg("sue")
    call = BridgedCall(caller=caller, endpoint=links, emit=lambda e: None, now=lambda: 0.0)  # type: ignore[arg-type]
    await call.set_agent(alice, "alice")  # type: ignore[arg-type]
    await call.link(sue, SupervisorMode.LEFT, SupervisorMode.WHISPER)  # type: ignore[arg-type]
    assert links.up == {("caller", "sue"), ("alice", "sue"), ("sue", "alice")}
    await call.set_agent(bob, "bob")  # type: ignore[arg-type]  # a transfer: sue now hears and coaches bob
    assert links.up == {("caller", "sue"), ("bob", "sue"), ("sue", "bob")} and call.agent_id == "bob"
    await call.link(sue, SupervisorMode.WHISPER, SupervisorMode.BARGE)  # type: ignore[arg-type]
    assert ("sue", "caller") in links.up
    await call.set_agent(None, "")  # the agent left: only the caller's links stay
    assert links.up == {("caller", "sue"), ("sue", "caller")}
    await call.link(sue, SupervisorMode.BARGE, SupervisorMode.LEFT)  # type: ignore[arg-type]
    assert links.up == set()


async def test_a_listen_only_call_only_ever_sends_its_audio_to_the_supervisor() -> None:
    from callcenter.supervision import ListenOnlyCall

    links = _Links()
    rec, sue = _Leg("siprec"), _Leg("sue")
    call = ListenOnlyCall(leg=rec, endpoint=links, emit=lambda e: None, now=lambda: 0.0, agent_id="bob")  # type: ignore[arg-type]
    assert call.listen_only and call.call_id == "call-siprec"
    await call.link(sue, SupervisorMode.LEFT, SupervisorMode.LISTEN)  # type: ignore[arg-type]
    assert links.up == {("siprec", "sue")}
    await call.link(sue, SupervisorMode.LISTEN, SupervisorMode.LEFT)  # type: ignore[arg-type]
    assert links.up == set()


# ---- silent monitoring: the agent's own feeds never carry supervisors' steps -------------------
def test_supervision_reaches_the_call_feeds_but_not_the_agents_own() -> None:
    from live.call_agents import CallAgents
    from live.console.state import LiveCalls
    from speech.events import PartyJoined
    from speech.frames import Party

    joined = PartyJoined(call_id="c1", t=1.0, party=Party.AGENT, agent_id="alice", queue="agents")
    step = SupervisionChanged(call_id="c1", t=2.0, supervisor_id="sue", mode=SupervisorMode.LISTEN,
                              agent_id="alice", reason="console")
    agents = CallAgents()
    assert agents.route(joined) == "alice" and agents.route(step) == ""  # not on agents/alice/call
    assert agents.agent_of("c1") == "alice"

    live = LiveCalls()
    live.ingest(joined.to_dict())
    live.ingest(step.to_dict())
    watcher = live.open_stream("c1")
    agent_stream, opening = live.open_agent_stream("alice")
    assert [f[1]["type"] for f in opening if f[0] == "event"] == ["party.joined"]
    later = dataclasses.replace(step, t=3.0, mode=SupervisorMode.WHISPER, previous=SupervisorMode.LISTEN)
    live.ingest(later.to_dict())
    assert agent_stream.queue.empty()
    assert watcher.queue.get_nowait() == [("event", later.to_dict())]  # the call view shows it
    assert [e["type"] for e in live.calls["c1"].events] == ["party.joined", "supervision", "supervision"]


def test_a_dead_workers_supervisors_are_off_its_calls(store: AcdStore) -> None:
    done = store.request_supervision("w-call", "sue", "barge")
    store.take_supervision(["w-call"], "worker7")
    store.finish_supervision(done, ok=True)
    ringing = store.request_supervision("w-call", "tom", "listen")
    store.take_supervision(["w-call"], "worker7")
    store.note_supervision("other-call", "ann", "listen", "dtmf", "worker8")
    assert {r.supervisor_id for r in store.supervision()} >= {"sue", "ann"}
    store.release_worker("worker7")
    assert [r.supervisor_id for r in store.supervision("w-call")] == []
    assert [r.supervisor_id for r in store.supervision("other-call")] == ["ann"]  # another worker's
    assert (_req(store, ringing).status, _req(store, ringing).reason) == ("failed", "worker_lost")


class _Failing:
    """An endpoint whose calls fail as the front or pjsua would make them fail."""

    free_slots = 2

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def place_call(self, uri: str, **_: Any) -> CallLeg:
        raise self.exc


@pytest.mark.parametrize(("exc", "reason"), [
    (CallFailed(408, "no answer"), "no_answer"),
    (CallFailed(603, "Decline"), "no_answer"),
    (CallFailed(480, "Temporarily Unavailable"), "not_registered"),
    (EndpointFull(486, "too many calls on this endpoint"), "no_slot"),
])
async def test_a_failed_dial_is_a_refusal_with_its_reason(store: AcdStore, exc: Exception, reason: str) -> None:
    store.sync_directory(Directory(agents=(make_agent("sue", "pw", supervisor=True, rounds=1000),)),
                         ready_on_register=True)
    store.set_registrations({"sue": "sip:sue@127.0.0.1:5999"}, ready_on_register=True)
    call = _ListenOnly(listen_only=False)
    desk = SupervisionDesk(store=store, endpoint=_Failing(exc), worker="w", front="127.0.0.1:5060", ring_timeout_s=1)
    desk.attach(call)
    try:
        outcome = await desk.apply(call.call_id, "sue", SupervisorMode.LISTEN, "console")
    finally:
        await desk.close()
    assert (outcome.ok, outcome.reason) == (False, reason)
    assert [(e.reason, e.requested) for e in call.events if isinstance(e, SupervisionChanged)] == [
        (reason, SupervisorMode.LISTEN)]
