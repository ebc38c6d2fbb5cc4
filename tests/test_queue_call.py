"""One caller's way through a queue (``telephony.acd.queue_call``), on a real ACD store.

The SIP side is scripted here (a caller leg that only ends when told, a dialer that answers,
refuses or rings out on cue): these are the queue's decisions (ring-all, overflow, callback,
no-answer, our own endpoint being full), which the SIP tests cannot stage one by one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from speech.events import AgentStatus, Event, QueueAction, QueueUpdate
from telephony.acd.directory import Directory, make_agent
from telephony.acd.queue_call import Connected, LeftQueue, QueueCall, QueueOptions
from telephony.acd.store import AcdStore
from telephony.items import CallFailed, EndpointFull
from telephony.settings import AcdSettings


class ScriptedLeg:
    """The caller's leg as ``QueueCall`` uses it: ends when ``hang_up`` is called."""

    def __init__(self, call_id: str = "c1") -> None:
        self.call_id = call_id
        self.remote_uri = "sip:+15550100@carrier"
        self.ended: object | None = None
        self._ended = asyncio.Event()
        self.hung_up = False

    def hang_up(self) -> None:
        self.ended = object()
        self._ended.set()

    async def wait_ended(self) -> object:
        await self._ended.wait()
        return self.ended

    async def hangup(self) -> None:
        self.hung_up = True
        self.hang_up()

    def stop_playback(self) -> None:
        pass


def dialer(script: dict[str, Callable[[], Any]]) -> Callable[..., Any]:
    """``uri`` → what happens: a leg (answered), or an exception (refused / rang out)."""

    async def dial(uri: str, ring_s: float, placed: Callable[[Any], None]) -> Any:
        agent = uri.split(":")[1].split("@")[0]
        outcome = script[agent]()
        if isinstance(outcome, BaseException):
            raise outcome
        delay, leg = outcome
        placed(leg)
        await asyncio.sleep(delay)
        return leg

    return dial


@pytest.fixture
def store(tmp_path: Path):
    s = AcdStore(f"sqlite:///{tmp_path / 'acd.db'}")
    s.sync_directory(Directory(agents=tuple(make_agent(i, "pw", skills=("agents", "billing"), rounds=1000)
                                            for i in ("alice", "bob"))))
    s.set_registrations({"alice": "sip:alice@127.0.0.1:6001", "bob": "sip:bob@127.0.0.1:6002"},
                        ready_on_register=True)
    yield s
    s.close()


def make_call(store: AcdStore, leg: ScriptedLeg, dial: Callable[..., Any], events: list[Event],
              **settings: Any) -> QueueCall:
    acd = AcdSettings(**{"poll_s": 0.05, "ring_timeout_s": 1.0, **settings})
    return QueueCall(call_id=leg.call_id, caller=leg, store=store, settings=acd,  # type: ignore[arg-type]
                     dial=dial, worker="w0", emit=events.append, now=lambda: 0.0)


def actions(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.action.value, e.agent_id) for e in events if isinstance(e, QueueUpdate)]


async def test_ring_all_the_first_to_answer_takes_the_call_the_other_is_freed(store) -> None:
    alice_leg, bob_leg = ScriptedLeg("alice-leg"), ScriptedLeg("bob-leg")
    dial = dialer({"alice": lambda: (0.3, alice_leg), "bob": lambda: (0.05, bob_leg)})
    events: list[Event] = []
    got = await make_call(store, ScriptedLeg(), dial, events, strategy="ring_all").wait_for_agent(
        QueueOptions("agents"))
    assert isinstance(got, Connected) and got.agent_id == "bob"
    assert alice_leg.hung_up  # her phone stopped ringing
    assert store.agent("bob").state is AgentStatus.ON_CALL
    assert store.agent("alice").state is AgentStatus.READY  # not her fault: back to ready
    assert ("ringing", "alice") in actions(events) and ("ringing", "bob") in actions(events)
    assert actions(events)[-1] == ("connected", "bob")


async def test_an_agent_who_does_not_answer_is_set_not_ready_and_the_next_rings(store) -> None:
    store.set_state("bob", AgentStatus.NOT_READY, "break")
    store.set_state("bob", AgentStatus.READY, "")  # bob is now the most recently idle
    leg = ScriptedLeg()
    bob_leg = ScriptedLeg("bob-leg")
    dial = dialer({"alice": lambda: CallFailed(408, "no answer"), "bob": lambda: (0.0, bob_leg)})
    events: list[Event] = []
    got = await make_call(store, leg, dial, events).wait_for_agent(QueueOptions("agents"))
    assert isinstance(got, Connected) and got.agent_id == "bob"
    alice = store.agent("alice")
    assert (alice.state, alice.reason) == (AgentStatus.NOT_READY, "no_answer")
    assert actions(events) == [("entered", ""), ("ringing", "alice"), ("no_answer", "alice"),
                               ("ringing", "bob"), ("connected", "bob")]


async def test_our_full_endpoint_is_not_the_agents_fault(store) -> None:
    store.set_state("bob", AgentStatus.NOT_READY, "break")
    tries = iter([EndpointFull(486, "too many calls"), (0.0, ScriptedLeg("alice-leg"))])
    events: list[Event] = []
    got = await make_call(store, ScriptedLeg(), dialer({"alice": lambda: next(tries)}), events).wait_for_agent(
        QueueOptions("agents"))
    assert isinstance(got, Connected) and got.agent_id == "alice"
    assert ("no_answer", "alice") not in actions(events)


async def test_max_wait_overflows_to_another_queue_keeping_the_callers_place(store) -> None:
    for agent in ("alice", "bob"):
        store.set_state(agent, AgentStatus.NOT_READY, "break")
    leg = ScriptedLeg()
    events: list[Event] = []
    call = make_call(store, leg, dialer({}), events)
    task = asyncio.create_task(call.wait_for_agent(QueueOptions("agents", max_wait_s=0.3, overflow="billing")))
    await asyncio.sleep(0.6)
    assert [a for a, _ in actions(events)][:2] == ["entered", "overflow"]
    assert store.snapshot("billing").waiting == 1 and store.snapshot("agents").waiting == 0
    leg.hang_up()
    got = await asyncio.wait_for(task, 5)
    assert isinstance(got, LeftQueue) and got.outcome == "abandoned" and got.queue == "billing"
    assert got.wait_s >= 0.3  # counted from the first queue


async def test_max_wait_leaves_a_callback_request(store) -> None:
    for agent in ("alice", "bob"):
        store.set_state(agent, AgentStatus.NOT_READY, "break")
    events: list[Event] = []
    got = await make_call(store, ScriptedLeg(), dialer({}), events).wait_for_agent(
        QueueOptions("agents", max_wait_s=0.2, callback=True))
    assert isinstance(got, LeftQueue) and got.outcome == "callback"
    assert [(c["call_id"], c["queue"]) for c in store.callbacks()] == [("c1", "agents")]
    assert actions(events)[-1][0] == QueueAction.CALLBACK.value
