"""Roles of ``serve`` on several hosts: settings, the plan per role, and the front's watch over
remote workers against a real Kamailio (a remote worker here is a minimal SIP responder that
answers the dispatcher's OPTIONS; the real multi-host run is ``test_multihost.py``)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiomqtt
import pytest

from callcenter.remote_watch import RemoteWatch, dispatcher_states
from callcenter.roles import RoleError, check_role, local_worker_ports, plan_role, remote_workers
from callcenter.settings import SettingsError, load_settings
from callcenter.worker import worker_name
from live.bridge import BridgedBroker, BridgeTarget
from live.broker import EmbeddedBroker, find_mosquitto
from telephony.kamailio import KamailioFront, Worker, kamailio_binary
from tests.sip_tools import free_port

PG = "postgresql+psycopg://cc@10.0.0.1/cc"


def settings(**overrides: object):
    return load_settings(overrides={"data_dir": "/tmp/cc-roles-unused", **overrides}, environ={})


def test_remote_workers_must_be_host_port() -> None:
    s = settings(**{"sip.remote_workers": ["10.0.0.2:5070", "10.0.0.3:5071"]})
    assert [w.uri for w in remote_workers(s)] == ["sip:10.0.0.2:5070", "sip:10.0.0.3:5071"]
    for bad in (["10.0.0.2"], ["10.0.0.2:x"], [":5070"], ["10.0.0.2:70000"]):
        with pytest.raises(SettingsError, match="remote_workers"):
            settings(**{"sip.remote_workers": bad})


def test_worker_role_needs_shared_store_broker_and_own_address() -> None:
    base = {"sip.bind_host": "10.0.0.2", "store.url": PG, "mqtt.host": "10.0.0.1"}
    check_role(settings(**base), "workers")
    with pytest.raises(RoleError, match="store.url"):
        check_role(settings(**{**base, "store.url": None}), "workers")
    with pytest.raises(RoleError, match="store.url"):
        check_role(settings(**{**base, "store.url": "sqlite:////tmp/x.db"}), "workers")
    with pytest.raises(RoleError, match="mqtt.host"):
        check_role(settings(**{**base, "mqtt.host": None}), "workers")
    check_role(settings(**{**base, "mqtt.host": None, "mqtt.enabled": False}), "workers")
    with pytest.raises(RoleError, match="bind_host"):
        check_role(settings(**{**base, "sip.bind_host": None}), "workers")


def test_front_role_needs_workers_a_front_and_shared_sinks() -> None:
    with pytest.raises(RoleError):
        check_role(settings(), "front")  # no local and no remote workers
    remote = {"sip.remote_workers": ["10.0.0.2:5070"], "store.url": PG, "mqtt.host": "10.0.0.1"}
    if kamailio_binary() is not None:
        check_role(settings(**remote), "front")
    with pytest.raises(RoleError, match="Kamailio"):
        check_role(settings(**{**remote, "sip.front": "none"}), "all")
    with pytest.raises(RoleError, match="store.url"):  # a SQLite file is not shared by the hosts
        check_role(settings(**{**remote, "store.url": None}), "front")
    with pytest.raises(RoleError, match="mqtt.host"):  # nor is the embedded broker on 127.0.0.1
        check_role(settings(**{**remote, "mqtt.host": None}), "front")


def test_plan_per_role() -> None:
    remote = settings(**{"sip.remote_workers": ["10.0.0.2:5070"]})
    assert plan_role(remote, "front", (2, True)) == (0, True)  # remote workers only
    assert plan_role(settings(**{"sip.workers": 1}), "front", (1, False)) == (1, True)
    assert plan_role(remote, "all", (1, False)) == (1, True)  # one local worker behind the front
    assert plan_role(settings(), "all", (2, True)) == (2, True)  # one host: unchanged
    host = settings(**{"sip.bind_host": "10.0.0.2", "sip.workers": 3, "sip.worker_base_port": 6000})
    count, use_front = plan_role(host, "workers", (0, False))
    assert (count, use_front) == (3, False)
    assert local_worker_ports(host, count, use_front) == [6000, 6001, 6002]  # never the dialed port
    assert local_worker_ports(settings(), 1, False) == [settings().sip.port]
    assert host.sip.worker_host == "10.0.0.2" and settings().sip.worker_host == "127.0.0.1"


def test_worker_names_in_the_shared_store_name_their_host() -> None:
    assert worker_name(settings(), 1) == "worker1"
    assert worker_name(settings(**{"sip.bind_host": "10.0.0.2"}), 1) == "worker1@10.0.0.2"


DISPATCHER_LIST = """{
\tNRSETS: 1
\tRECORDS: {
\t\tSET: {
\t\t\tID: 1
\t\t\tTARGETS: {
\t\t\t\tDEST: {
\t\t\t\t\tURI: sip:10.0.0.2:5070
\t\t\t\t\tFLAGS: IP
\t\t\t\t\tPRIORITY: 0
\t\t\t\t}
\t\t\t\tDEST: {
\t\t\t\t\tURI: sip:127.0.0.1:5070
\t\t\t\t\tFLAGS: AP
\t\t\t\t\tPRIORITY: 0
\t\t\t\t}
\t\t\t}
\t\t}
\t}
}
"""


def test_dispatcher_states_are_read_from_kamcmd_output() -> None:
    assert dispatcher_states(DISPATCHER_LIST) == {"sip:10.0.0.2:5070": "IP", "sip:127.0.0.1:5070": "AP"}


# -- the watch against a real Kamailio ---------------------------------------------------------------


class OptionsResponder(asyncio.DatagramProtocol):
    """Answers every SIP request with 200 (what a live worker does to the dispatcher's pings)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.pings = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        lines = data.decode(errors="replace").split("\r\n")
        if not lines or lines[0].startswith("SIP/2.0"):
            return
        self.pings += 1
        keep = [ln for ln in lines[1:] if ln.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq")]
        reply = "\r\n".join(["SIP/2.0 200 OK", *keep, "Content-Length: 0", "", ""])
        self.transport.sendto(reply.encode(), addr)  # type: ignore[attr-defined]


async def wait_state(watch: RemoteWatch, uri: str, state: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while watch.state[uri].state != state:
        assert time.monotonic() < deadline, f"{uri} not {state} within {timeout_s} s: {watch.health()}"
        await asyncio.sleep(0.1)


@pytest.mark.sip
@pytest.mark.slow
@pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)")
async def test_watch_follows_a_remote_worker_that_goes_silent_and_comes_back(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    port = free_port()
    worker = Worker("127.0.0.1", port)
    transport, responder = await loop.create_datagram_endpoint(OptionsResponder, local_addr=("127.0.0.1", port))
    silent = Worker("127.0.0.1", free_port())  # never answers: stays "starting", never "lost"
    front = KamailioFront("127.0.0.1", free_port(), [worker, silent], tmp_path, transports=("udp",))
    watch = RemoteWatch(front, [worker, silent], lost_after_s=2.0, poll_s=0.2)
    await front.start()
    try:
        assert watch.state[worker.uri].state == "starting"
        watch.start()
        deadline = time.monotonic() + 20
        while dispatcher_states(await front.rpc("dispatcher.list")).get(worker.uri) != "AP":
            assert time.monotonic() < deadline, "the live responder was never active and probed"
            await asyncio.sleep(0.2)
        await wait_state(watch, worker.uri, "serving", 20)
        assert responder.pings >= 1

        # drained on purpose (kamcmd dispatcher.set_state d): no new calls, but not lost
        await front.rpc("dispatcher.set_state", "d", "1", worker.uri)
        await wait_state(watch, worker.uri, "disabled", 20)
        await asyncio.sleep(2 * watch.lost_after_s)
        assert watch.state[worker.uri].state == "disabled" and watch.health()[0]["outages"] == 0
        await front.rpc("dispatcher.set_state", "a", "1", worker.uri)
        await wait_state(watch, worker.uri, "serving", 20)

        transport.close()  # the host goes silent
        await wait_state(watch, worker.uri, "unreachable", 20)
        await wait_state(watch, worker.uri, "lost", 20)
        health = watch.health()[0]
        assert health["outages"] == 1 and health["calls_ended"] == 0  # no dialogs were up
        assert watch.state[silent.uri].state == "starting" and watch.health()[1]["outages"] == 0

        transport, responder = await loop.create_datagram_endpoint(OptionsResponder, local_addr=("127.0.0.1", port))
        await wait_state(watch, worker.uri, "serving", 20)
        assert watch.health()[0]["outages"] == 1
    finally:
        await watch.stop()
        transport.close()
        await front.stop()


# -- a worker host's bridged broker -------------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto not installed (apt-get install mosquitto)")
async def test_bridge_queues_call_events_until_the_one_broker_is_reachable(tmp_path: Path) -> None:
    """Events published on a worker host while the front's broker is down reach it once it is up
    (call topics only); the publisher never sees the outage."""
    local_port, remote_port = free_port(), free_port()
    bridge = BridgedBroker("127.0.0.1", local_port, BridgeTarget("127.0.0.1", remote_port, name="cc-test-host"),
                           tmp_path / "bridge")
    remote = EmbeddedBroker("127.0.0.1", remote_port, backend="mosquitto")
    await bridge.start()
    try:
        async with aiomqtt.Client("127.0.0.1", local_port, identifier="worker") as pub:
            for i in range(3):  # the one broker is not up yet
                await pub.publish(f"callcenter/calls/c{i}/events", f'{{"n": {i}}}', qos=1, retain=True)
            await pub.publish("callcenter/agents/a1/state", "{}", qos=1, retain=True)  # not a call topic
        await remote.start()
        got: dict[str, bytes] = {}
        async with aiomqtt.Client("127.0.0.1", remote_port, identifier="console") as sub:
            await sub.subscribe("callcenter/#", qos=1)

            async def collect() -> None:
                async for msg in sub.messages:
                    got[str(msg.topic)] = bytes(msg.payload)  # type: ignore[arg-type]
                    if len(got) == 3:
                        return

            await asyncio.wait_for(collect(), 60)  # the bridge retries every 1-10 s
        assert got == {f"callcenter/calls/c{i}/events": f'{{"n": {i}}}'.encode() for i in range(3)}
    finally:
        await bridge.stop()
        await remote.stop()


def test_serve_refuses_a_worker_host_without_a_shared_store(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.cli import main

    for name in [n for n in os.environ if n.startswith("CALLCENTER_")]:
        monkeypatch.delenv(name)
    rc = main(["serve", "--role", "workers", "--bind-host", "127.0.0.2", "--mqtt-host", "127.0.0.1",
               "--data-dir", str(tmp_path)])
    assert rc == 2
    assert "store.url" in capsys.readouterr().err


def test_worker_host_sizes_from_its_capacity_plan() -> None:
    """``serve --role workers`` with ``sip.workers`` unset plans from the recognizer's cost like one
    machine does (its front is on another host, so no local Kamailio is needed)."""
    from callcenter.capacity import capacity_for

    host = settings(**{"sip.bind_host": "10.0.0.2", "sip.front": "none", "capacity.cores": 2,
                       "capacity.asr_cpu_per_audio_s": 0.05, "capacity.floor_cpu_per_call": 0.04})
    plan = asyncio.run(capacity_for(host, 4, behind_remote_front=True))
    assert plan is not None and plan.calls == 24 and plan.workers == 6
    assert plan_role(host, "workers", (0, False), plan) == (6, False)
    assert asyncio.run(capacity_for(host, 4)) is None  # one host with no front: one worker
    fixed = settings(**{"sip.bind_host": "10.0.0.2", "sip.workers": 3})
    assert plan_role(fixed, "workers", (0, False), plan) == (3, False)  # a set count wins
