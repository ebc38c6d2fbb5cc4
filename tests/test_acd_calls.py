"""The ACD with the whole service: agents register at the Kamailio front, callers queue, workers ring
and bridge them.

Real SIP on 127.0.0.1: ``callcenter serve`` (Kamailio front with its registrar, 2 workers,
whisper), agents' phones (``telephony.test_agent``, digest-registered) and callers
(``telephony.test_caller``), each its own process. Scenarios run one after the other on one
service: two agents and three callers (the third waits, hears its position, and gets the agent
who finished wrap-up first), an agent's blind transfer to another agent, a feature code, and a
worker killed and restarted with agents registered.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

import pytest
import pytest_asyncio

from callcenter.serve import Service, start_service, stop_service
from callcenter.settings import load_settings
from speech.events import AgentStatus
from speech.ports import consecutive_free_ports
from summaries.store import CrmStore
from telephony.acd.directory import Directory, make_agent, save_directory
from telephony.acd.store import AcdStore
from telephony.kamailio import kamailio_binary
from tests.sip_tools import free_port
from tests.test_serve_calls import place_call, short_timeout_flow, wait_record

pytestmark = [
    pytest.mark.sip,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
]

PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2"}
WRAP_UP_S = 4.0
AGENT_TALKS_S = 7.0
"""Each agent hangs up this long after answering (then wrap-up)."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("acd")
    data = tmp / "data"
    data.mkdir()
    save_directory(Directory(agents=tuple(make_agent(i, pw, skills=("agents",), rounds=1000)
                                          for i, pw in PASSWORDS.items())), data / "agents.yaml")
    settings = load_settings(overrides={
        "data_dir": str(data), "sip.port": free_port(), "sip.worker_base_port": consecutive_free_ports(2),
        "sip.workers": 2, "sip.front": "kamailio", "mqtt.enabled": False, "console.enabled": False,
        "asr.engine": "whisper", "ivr.flow": str(short_timeout_flow(tmp)),
        "acd.wrap_up_s": WRAP_UP_S, "acd.ring_timeout_s": 6.0, "acd.announce_first_s": 2.0,
        "acd.announce_every_s": 4.0, "acd.registrar_poll_s": 0.5,
    }, environ={})
    service = await start_service(settings, log_dir=tmp / "logs")
    try:
        yield service
    finally:
        await stop_service(service)


async def start_agent(svc: Service, agent_id: str, *args: str) -> asyncio.subprocess.Process:
    uri = f"sip:{agent_id}@{svc.settings.sip.host}:{svc.settings.sip.port}"
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "telephony.test_agent", uri, "--password", PASSWORDS[agent_id], *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)


async def agent_result(proc: asyncio.subprocess.Process, timeout_s: float = 90.0) -> dict[str, Any]:
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    assert lines, f"test agent printed no result: {err.decode()[-1500:]}"
    return json.loads(lines[-1])


async def wait_state(svc: Service, agent_id: str, state: AgentStatus, timeout_s: float = 20.0) -> None:
    store = AcdStore(svc.settings.store_url)
    try:
        deadline = time.monotonic() + timeout_s
        while (row := store.agent(agent_id)) is None or row.state is not state:
            assert time.monotonic() < deadline, (agent_id, row)
            await asyncio.sleep(0.2)
    finally:
        store.close()


def events_of(svc: Service, call_id: str) -> list[dict[str, Any]]:
    store = CrmStore(svc.settings.store_url)
    store.start()
    try:
        detail = store.get_call(call_id)
        assert detail is not None, call_id
        return list(detail.events)
    finally:
        store.stop()


def queue_steps(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["action"], e.get("agent_id", "")) for e in events if e["type"] == "queue.update"]


async def test_two_agents_three_callers_the_third_waits_then_gets_the_first_free_agent(svc: Service) -> None:
    alice = await start_agent(svc, "alice", "--calls", "2", "--hangup-after", str(AGENT_TALKS_S))
    await wait_state(svc, "alice", AgentStatus.READY)
    await asyncio.sleep(0.5)  # so alice has been idle longest
    bob = await start_agent(svc, "bob", "--calls", "1", "--hangup-after", str(AGENT_TALKS_S + 3))
    await wait_state(svc, "bob", AgentStatus.READY)

    async def caller(delay: float) -> dict[str, Any]:
        await asyncio.sleep(delay)
        return await place_call(svc.sip_uri, "--dtmf", "0", "--dtmf-first", "--hangup-after", "45")

    results = await asyncio.gather(caller(0.0), caller(1.5), caller(3.0))
    agents = await asyncio.gather(agent_result(alice), agent_result(bob))
    assert all(r["answered"] for r in results), results
    records = [await wait_record(svc, r["call_id"]) for r in results]
    assert all(rec["stored"] for rec in records)
    steps = [queue_steps(events_of(svc, r["call_id"])) for r in results]
    connected = [[a for act, a in s if act == "connected"] for s in steps]
    assert connected[0] == ["alice"] and connected[1] == ["bob"], steps  # longest idle first
    third = steps[2]
    assert ("connected", "alice") in third, third  # alice finished (and wrapped up) first
    positions = [e for e in events_of(svc, results[2]["call_id"])
                 if e["type"] == "queue.update" and e["action"] == "position"]
    assert positions and positions[0]["position"] == 1, positions
    waited = [e["wait_s"] for e in events_of(svc, results[2]["call_id"])
              if e["type"] == "queue.update" and e["action"] == "connected"][0]
    assert waited > AGENT_TALKS_S, waited  # the first call plus alice's wrap-up
    alice_res, bob_res = agents
    assert alice_res["registered"] and len([c for c in alice_res["calls"] if c["answered"]]) == 2, alice_res
    assert bob_res["registered"] and len([c for c in bob_res["calls"] if c["answered"]]) == 1, bob_res
    # the agents heard their callers' IVR-free audio path: a bridged call, not silence
    assert all(c["frames_heard"] > 100 for c in alice_res["calls"] + bob_res["calls"])


async def transfer_call(svc: Service, bob_hangs_up_s: float, *alice_args: str,
                        ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """Bob on a break (so alice takes the caller), alice's phone scripted with ``alice_args``
    (a transfer to bob): the caller's result, alice's, bob's, and the call's stored events."""
    bob = await start_agent(svc, "bob", "--hangup-after", str(bob_hangs_up_s))
    await wait_state(svc, "bob", AgentStatus.READY)
    store = AcdStore(svc.settings.store_url)
    try:
        assert store.set_state("bob", AgentStatus.NOT_READY, "break")
    finally:
        store.close()
    alice = await start_agent(svc, "alice", *alice_args)
    await wait_state(svc, "alice", AgentStatus.READY)
    caller = await place_call(svc.sip_uri, "--dtmf", "0", "--dtmf-first", "--hangup-after", "40")
    alice_res, bob_res = await asyncio.gather(agent_result(alice), agent_result(bob))
    assert caller["hangup_by"] == "remote", caller  # bob hung up: the caller's call ended
    await wait_record(svc, caller["call_id"])
    events = events_of(svc, caller["call_id"])
    assert [e["agent_id"] for e in events if e["type"] == "party.joined"] == ["alice", "bob"], events
    assert [(e["agent_id"], e["reason"]) for e in events if e["type"] == "party.left"] == [
        ("alice", "transfer"), ("bob", "hangup")]
    return caller, alice_res, bob_res, events


async def test_agent_transfers_the_caller_to_another_agent(svc: Service) -> None:
    front = f"{svc.settings.sip.host}:{svc.settings.sip.port}"
    _, alice_res, bob_res, events = await transfer_call(
        svc, 5, "--transfer-to", f"sip:bob@{front}", "--transfer-after", "3")
    assert alice_res["calls"] and alice_res["calls"][0]["answered"], alice_res
    assert bob_res["calls"] and bob_res["calls"][0]["answered"], bob_res
    assert ("transferred", "alice") in queue_steps(events)


async def test_attended_transfer_alice_consults_bob_then_hands_the_caller_over(svc: Service) -> None:
    front = f"{svc.settings.sip.host}:{svc.settings.sip.port}"
    _, alice_res, bob_res, events = await transfer_call(
        svc, 9, "--consult", f"sip:bob@{front}", "--transfer-after", "2")
    a, b = alice_res["calls"][0], bob_res["calls"][0]
    assert a["answered"] and a["consulted"] and a["held"], alice_res  # she held the caller, consulted
    assert b["answered"] and b["replaced"], bob_res  # bob's consultation became the caller's call
    holds = [e for e in events if e["type"] == "hold.ended"]
    assert len(holds) == 1 and holds[0]["duration"] > 0.5, holds  # music while alice consulted


async def test_feature_code_sets_the_agent_not_ready_and_ready(svc: Service) -> None:
    # alice's desk phone stays registered; she dials the codes from a second device
    phone = await start_agent(svc, "alice", "--wait-call", "60")
    try:
        await wait_state(svc, "alice", AgentStatus.READY)
        res = await agent_result(await start_agent(svc, "alice", "--dial", "*2"))
        assert res["registered"] and res["dialed"] is not None, res
        await wait_state(svc, "alice", AgentStatus.NOT_READY, timeout_s=10)
        await agent_result(await start_agent(svc, "alice", "--dial", "*1"))
        await wait_state(svc, "alice", AgentStatus.READY, timeout_s=10)
    finally:
        phone.kill()
        await phone.wait()


async def test_a_worker_dying_mid_call_ends_both_legs_and_frees_the_agent(svc: Service) -> None:
    alice = await start_agent(svc, "alice", "--hangup-after", "60")
    await wait_state(svc, "alice", AgentStatus.READY)
    caller = asyncio.create_task(place_call(svc.sip_uri, "--dtmf", "0", "--dtmf-first", "--hangup-after", "60"))
    await wait_state(svc, "alice", AgentStatus.ON_CALL)
    await asyncio.sleep(2)
    busy = [s for s in svc.worker_stats() if s["active_calls"] >= 1]
    assert len(busy) == 1, svc.worker_stats()
    started = time.monotonic()
    os.kill(busy[0]["pid"], signal.SIGKILL)
    res, alice_res = await asyncio.gather(caller, agent_result(alice))
    assert res["hangup_by"] == "remote", res  # the front sent both sides a BYE ...
    call = alice_res["calls"][0]
    assert call["answered"] and call["end_reason"] == "remote", call
    assert time.monotonic() - started < 30  # ... long before their own 60 s hang-ups
    record = await wait_record(svc, res["call_id"])
    assert record["end_reason"] == "worker_lost" and record["stored"], record
    store = AcdStore(svc.settings.store_url)
    try:  # serve freed her in the store (she then logs out as her phone goes away)
        row = store.agent("alice")
        assert row is not None and row.state is not AgentStatus.ON_CALL, row
    finally:
        store.close()
    deadline = time.monotonic() + 90
    while svc.health()["status"] != "ok":
        assert time.monotonic() < deadline, svc.health()
        await asyncio.sleep(0.5)


async def test_a_restarted_worker_still_reaches_registered_agents(svc: Service) -> None:
    alice = await start_agent(svc, "alice", "--calls", "2", "--hangup-after", "3", "--wait-call", "90")
    await wait_state(svc, "alice", AgentStatus.READY)
    for stats in svc.worker_stats():
        os.kill(stats["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 90
    while not ((h := svc.health())["status"] == "ok" and all(w["restarts"] >= 1 for w in h["workers"])):
        assert time.monotonic() < deadline, h
        await asyncio.sleep(0.5)
    first = await place_call(svc.sip_uri, "--dtmf", "0", "--dtmf-first", "--hangup-after", "12")
    second = await place_call(svc.sip_uri, "--dtmf", "0", "--dtmf-first", "--hangup-after", "18")
    res = await agent_result(alice)
    assert len([c for c in res["calls"] if c["answered"]]) == 2, res
    for call in (first, second):
        await wait_record(svc, call["call_id"])
        assert ("connected", "alice") in queue_steps(events_of(svc, call["call_id"]))

