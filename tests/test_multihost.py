"""Workers on several hosts, for real: hosts are network namespaces joined by a bridge.

    caller ns (.10) ──┐
    worker host A (.11: ``serve --role workers``, 1 worker) ──┤ bridge (.1): the front host
    worker host B (.12: ``serve --role workers``, 1 worker) ──┘   (``serve --role front``: Kamailio,
                                                                     PostgreSQL, mosquitto)

Calls from the caller namespace reach workers on both hosts through the front; RTP flows straight
between caller and worker. Then host A's link goes down mid-call:
- new calls go to host B only (the dispatcher's OPTIONS pings mark A inactive);
- A's callers get a BYE from the front once A is lost (``sip.remote_lost_after_s``), not dead air;
- A's worker still ends those calls itself (its IVR runs on in silence) and, with the store out
  of reach, spools their records; when the link is back they reach the shared PostgreSQL store
  and their live events the broker (through A's bridged mosquitto, which queued them), A rejoins
  the dispatcher and takes calls again.
No record is lost: every call placed is in the shared store at the end.

Needs root (``ip netns``), kamailio, PostgreSQL server binaries and mosquitto; skips otherwise.
``asr.engine = none`` keeps it within 2 shared cores (recognition is not what is tested here).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml

from callcenter.remote_watch import dispatcher_states
from callcenter.serve import Service, start_service, stop_service
from callcenter.settings import load_settings
from callcenter.worker import call_record_path
from ivr.flow import SAMPLE_FLOW
from live.broker import EmbeddedBroker, find_mosquitto
from summaries.store import CrmStore
from telephony.acd.directory import Directory, make_agent
from telephony.acd.store import AcdStore
from telephony.kamailio import kamailio_binary
from tests.test_store_durable import TmpPostgres, _pg_bin

pytestmark = [
    pytest.mark.sip,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.broker,
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto not installed (apt-get install mosquitto)"),
    pytest.mark.skipif(_pg_bin() is None or shutil.which("runuser") is None,
                       reason="PostgreSQL server binaries (initdb, pg_ctl) or runuser not installed"),
]

LOST_AFTER_S = 3.0
CALL_HOLD_S = 30
"""Callers of the first wave hang up after this; host A's are BYE'd by the front long before."""
MENU_TIMEOUT_S = 25
"""The IVR ends a silent call ~37 s after the answer (welcome, prompt, timeout, goodbye)."""
WAIT_S = 180


# -- the network: a bridge on the front host, one namespace per other host ---------------------------


class Net:
    """A /24 on a bridge in this namespace (the front host, ``.1``) and a namespace per other
    host on a veth pair: ``caller`` .10, ``a`` .11, ``b`` .12. ``cut``/``restore`` take a host's
    link down and up (its processes keep running, like a host behind a failed switch port)."""

    HOSTS = {"caller": 10, "a": 11, "b": 12}

    def __init__(self) -> None:
        tag = f"{os.getpid() % 65536:04x}"
        self.bridge = f"ccbr{tag}"
        self.subnet = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}"
        self.front_ip = f"{self.subnet}.1"
        self.ns = {h: f"cc{tag}{h}" for h in self.HOSTS}
        self.veth = {h: f"cc{tag}v{h}" for h in self.HOSTS}
        self.ip = {h: f"{self.subnet}.{n}" for h, n in self.HOSTS.items()}
        self.made: list[list[str]] = []  # undo commands, last first

    def exec(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[host]]

    def up(self) -> None:
        self._ip("link", "add", self.bridge, "type", "bridge", undo=["link", "del", self.bridge])
        self._ip("addr", "add", f"{self.front_ip}/24", "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        for host in self.HOSTS:
            ns, veth = self.ns[host], self.veth[host]
            self._ip("netns", "add", ns, undo=["netns", "del", ns])
            self._ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
                     undo=["link", "del", veth])
            self._ip("link", "set", veth, "master", self.bridge, "up")
            self._ip("-n", ns, "addr", "add", f"{self.ip[host]}/24", "dev", "eth0")
            self._ip("-n", ns, "link", "set", "eth0", "up")
            self._ip("-n", ns, "link", "set", "lo", "up")

    def cut(self, host: str) -> None:
        self._ip("link", "set", self.veth[host], "down")

    def restore(self, host: str) -> None:
        self._ip("link", "set", self.veth[host], "up")

    def down(self) -> None:
        for undo in reversed(self.made):
            subprocess.run(["ip", *undo], capture_output=True, timeout=30)
        self.made.clear()

    def _ip(self, *args: str, undo: list[str] | None = None) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)
        if undo is not None:
            self.made.append(undo)


def netns_unavailable() -> str | None:
    if shutil.which("ip") is None:
        return "iproute2 (ip) not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    probe = f"ccprobe{os.getpid()}"
    res = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        return f"ip netns add is not permitted here: {res.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return None


@pytest.fixture(scope="module")
def net():
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    n = Net()
    try:
        n.up()
        yield n
    finally:
        n.down()


class SharedPostgres(TmpPostgres):
    """The throwaway cluster, listening on the bridge too, trusting the hosts' subnet."""

    def __init__(self, listen: str, subnet: str) -> None:
        super().__init__()
        self.listen = listen
        with open(self.data / "pg_hba.conf", "a") as f:
            f.write(f"host all all {subnet}.0/24 trust\n")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{self.listen}:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses={self.listen} -c fsync=off"
        self._as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts,
                           "-l", str(self.dir / "log"), "-w", "start"])


@pytest.fixture(scope="module")
def pg(net: Net):
    server = SharedPostgres(net.front_ip, net.subnet)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


# -- 1. the ACD's agent state across hosts ----------------------------------------------------------

CLAIM_SCRIPT = """
import json, sys, time
from telephony.acd.store import AcdStore
url, host, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = AcdStore(url)
store.agents()  # connected before the start line
while time.time() < start_at:
    time.sleep(0.005)
got = []
order = ("alice", "bob", "carol") if host == "a" else ("carol", "bob", "alice")  # meet in the middle
for i in range(6):
    for agent in order:
        if store.claim_agent(f"{host}-call{i}", agent) is not None:
            got.append(agent)
print(json.dumps(got))
"""


def test_two_hosts_never_ring_the_same_agent(net: Net, pg: TmpPostgres) -> None:
    """Workers on two hosts claim agents from one PostgreSQL store at the same moment: each
    agent is taken once (row locks across hosts, no protocol of our own)."""
    store = AcdStore(pg.url)
    try:
        store.sync_directory(Directory(agents=tuple(
            make_agent(i, f"pw-{i}", skills=("billing",), rounds=1000) for i in ("alice", "bob", "carol"))))
        store.set_registrations({i: f"sip:{i}@{net.front_ip}:7000" for i in ("alice", "bob", "carol")},
                                ready_on_register=True)
        start_at = str(time.time() + 4)
        procs = [subprocess.Popen([*net.exec(h), sys.executable, "-c", CLAIM_SCRIPT, pg.url, h, start_at],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path.cwd())
                 for h in ("a", "b")]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [err[-800:] for _, err in outs]
        claimed = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
        print("claims per host:", claimed)
        everyone = [a for host in claimed for a in host]
        assert sorted(everyone) == ["alice", "bob", "carol"]  # each agent once, none twice
        assert {r.agent_id: r.state.value for r in store.agents()} == dict.fromkeys(("alice", "bob", "carol"),
                                                                                 "ringing")
    finally:
        store.close()


# -- 2. calls over two worker hosts, one cut off mid-call ------------------------------------------


def silent_call_flow(tmp: Path) -> Path:
    """Welcome, a menu that waits ``MENU_TIMEOUT_S`` for a key, goodbye: a silent call ends
    by itself, on whichever host holds it."""
    prompts = (SAMPLE_FLOW.parent / yaml.safe_load(SAMPLE_FLOW.read_text())["prompts_dir"]).resolve()
    flow = {
        "name": "multihost", "start": "welcome", "prompts_dir": str(prompts),
        "prompts": {"welcome": "Welcome.", "no_match": "Goodbye."},
        "nodes": {
            "welcome": {"kind": "play", "prompt": "welcome", "goto": "menu"},
            "menu": {"kind": "menu", "prompt": "no_match", "timeout_s": MENU_TIMEOUT_S, "retries": 0,
                     "fallback": "bye", "choices": [{"dtmf": "1", "goto": "bye"}]},
            "bye": {"kind": "hangup", "prompt": "no_match"},
        },
    }
    path = tmp / "flow.yaml"
    path.write_text(yaml.safe_dump(flow))
    return path


class WorkerHost:
    """``callcenter serve --role workers`` in a host's namespace, with its own data_dir."""

    def __init__(self, net: Net, host: str, tmp: Path, env: dict[str, str]) -> None:
        self.net, self.host = net, host
        self.data_dir = tmp / f"host-{host}"
        self.env = {**os.environ, **env, "CALLCENTER_DATA_DIR": str(self.data_dir),
                    "CALLCENTER_SIP__BIND_HOST": net.ip[host]}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir.parent / f"serve-{self.host}.log", "ab") as log:
            self.proc = subprocess.Popen([*self.net.exec(self.host), sys.executable, "-m", "callcenter", "serve",
                                          "--role", "workers"], env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)

    def stop(self) -> None:
        """SIGTERM (workers hang up and store their calls), then kill what is left."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for stats in (self.data_dir / "workers").glob("worker*.json"):  # workers run in their own sessions
            with contextlib.suppress(OSError, ValueError, KeyError, ProcessLookupError):
                pid = int(json.loads(stats.read_text())["pid"])
                if Path(f"/proc/{pid}/cmdline").read_bytes().find(b"callcenter.worker") >= 0:
                    os.kill(pid, signal.SIGKILL)

    def record(self, call_id: str) -> dict[str, Any] | None:
        path = call_record_path(self.data_dir, call_id)
        return json.loads(path.read_text()) if path.exists() else None

    def recording(self, call_id: str) -> Path | None:
        """The call's recording, if its record names one that exists."""
        record = self.record(call_id) or {}
        path = Path(record["recording"]) if record.get("recording") else None
        return path if path is not None and path.exists() else None


async def place_call(net: Net, uri: str, hold_s: float) -> dict[str, Any]:
    """One pjsua2 caller in the caller namespace; its JSON result."""
    proc = await asyncio.create_subprocess_exec(
        *net.exec("caller"), sys.executable, "-m", "telephony.test_caller", uri, "--host", net.ip["caller"],
        "--hangup-after", str(hold_s), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), hold_s + 90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("test caller did not finish") from None
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    assert lines, f"test caller printed no result: {err.decode()[-1500:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


async def wait_for(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check() if asyncio.iscoroutinefunction(check) else check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {timeout_s} s"
        await asyncio.sleep(0.5)


def stored_calls(store: CrmStore, call_ids: list[str]) -> dict[str, Any]:
    """The calls of ``call_ids`` the shared store holds, by id."""
    return {c: d for c in call_ids if (d := store.get_call(c)) is not None}


class Feed:
    """Every call event on the one broker: call id -> event types seen."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.events: dict[str, list[str]] = {}
        self.ended_at: dict[str, float] = {}
        """Monotonic time each call's ``call.ended`` arrived."""
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client(self.host, self.port, identifier=f"multihost-{os.getpid()}") as client:
            await client.subscribe("callcenter/calls/+/events", qos=1)
            self.ready.set()
            async for msg in client.messages:
                call_id = str(msg.topic).split("/")[2]
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    payload = json.loads(bytes(msg.payload).decode())  # type: ignore[arg-type]
                    self.events.setdefault(call_id, []).append(str(payload.get("type")))
                    if payload.get("type") == "call.ended":
                        self.ended_at.setdefault(call_id, time.monotonic())


async def test_calls_reach_both_hosts_and_survive_one_cut_off(net: Net, pg: TmpPostgres, tmp_path: Path) -> None:
    from tests.sip_tools import free_port

    mqtt_port = free_port(net.front_ip)
    sip_port = free_port(net.front_ip)
    flow = silent_call_flow(tmp_path)
    shared = {"store.url": pg.url, "mqtt.host": net.front_ip, "mqtt.port": mqtt_port, "asr.engine": "none",
              "ivr.flow": str(flow), "console.enabled": False, "sip.host": net.front_ip, "sip.port": sip_port}
    front_settings = load_settings(overrides={
        **shared, "data_dir": str(tmp_path / "front"), "sip.front": "kamailio",
        "sip.remote_workers": [f"{net.ip['a']}:5070", f"{net.ip['b']}:5070"],
        "sip.remote_lost_after_s": LOST_AFTER_S,
    }, environ={})
    env = {"CALLCENTER_STORE__URL": pg.url, "CALLCENTER_MQTT__HOST": net.front_ip,
           "CALLCENTER_MQTT__PORT": str(mqtt_port), "CALLCENTER_ASR__ENGINE": "none",
           "CALLCENTER_IVR__FLOW": str(flow), "CALLCENTER_CONSOLE__ENABLED": "false",
           "CALLCENTER_SIP__HOST": net.front_ip, "CALLCENTER_SIP__PORT": str(sip_port),
           "CALLCENTER_SIP__WORKERS": "1", "CALLCENTER_SIP__WORKER_BASE_PORT": "5070"}
    # host A publishes through its own mosquitto bridged to the front's (it queues through the
    # cut); host B publishes to the front's broker directly (its publisher's outbox does)
    hosts = {"a": WorkerHost(net, "a", tmp_path, {**env, "CALLCENTER_MQTT__BRIDGE": "true"}),
             "b": WorkerHost(net, "b", tmp_path, env)}
    broker = EmbeddedBroker(net.front_ip, mqtt_port, backend="mosquitto")
    feed = Feed(net.front_ip, mqtt_port)
    svc: Service | None = None
    uri = f"sip:ivr@{net.front_ip}:{sip_port}"
    crm = CrmStore(pg.url)
    try:
        await broker.start()
        feed.task = asyncio.create_task(feed.run())
        await asyncio.wait_for(feed.ready.wait(), 30)
        svc = await start_service(front_settings, role="front", log_dir=tmp_path / "front-logs")
        assert svc.workers == [] and svc.front is not None and svc.remote is not None
        crm.start()  # the front migrated the schema
        for h in hosts.values():
            h.start()
        watch, front = svc.remote, svc.front

        async def probed() -> bool:  # answered the front's pings (not only listed: "AX")
            flags = dispatcher_states(await front.rpc("dispatcher.list"))
            return [flags.get(f"sip:{net.ip[h]}:5070") for h in hosts] == ["AP", "AP"] and watch.serving == 2

        await wait_for(probed, 120, "both worker hosts answer the front's pings")

        # -- wave 1: four calls spread over both hosts; host A cut off while they are up -----------
        wave1 = []
        for _ in range(4):
            wave1.append(asyncio.create_task(place_call(net, uri, CALL_HOLD_S)))
            await asyncio.sleep(0.7)
        active = {h: hosts[h].data_dir / "workers" / "worker0.json" for h in hosts}

        def busy(host: str) -> int:
            with contextlib.suppress(OSError, ValueError):
                return int(json.loads(active[host].read_text())["active_calls"])
            return 0

        await wait_for(lambda: busy("a") + busy("b") == 4, 60, "four calls up")
        on_a = busy("a")
        assert on_a >= 1 and busy("b") >= 1, "the front spread the calls over both hosts"
        net.cut("a")
        cut_epoch = time.time()
        await wait_for(lambda: watch.state[f"sip:{net.ip['a']}:5070"].state == "lost", 60, "host A lost")
        results1 = await asyncio.gather(*wave1)
        assert all(r["answered"] for r in results1), results1
        # A's callers were hung up by the front, not left in dead air until their own hang-up
        by_front = [r for r in results1 if r["hangup_by"] == "remote"]
        assert len(by_front) == on_a, results1
        health = svc.health()
        a_health = next(w for w in health["remote_workers"] if w["uri"] == f"sip:{net.ip['a']}:5070")
        assert a_health["calls_ended"] == on_a and a_health["outages"] == 1, health
        assert health["status"] == "degraded"
        b_calls = [r["call_id"] for r in results1 if r["hangup_by"] == "local"]
        bye_s = [r["answered_at"] + r["duration"] - cut_epoch for r in by_front]  # the callers' clocks
        print(f"wave 1: {on_a} call(s) on host A BYE'd by the front {min(bye_s):.1f}-{max(bye_s):.1f} s after the cut "
              f"(sip.remote_lost_after_s = {LOST_AFTER_S:g})")

        # -- wave 2, during the cut: every call answered, all on host B -------------------------------
        results2 = await asyncio.gather(*(place_call(net, uri, 5) for _ in range(4)))
        assert all(r["answered"] for r in results2), results2
        await wait_for(lambda: all(hosts["b"].record(r["call_id"]) for r in results2), 60, "B's records")
        assert not any(hosts["a"].record(r["call_id"]) for r in results2)
        b_calls += [r["call_id"] for r in results2]
        await wait_for(lambda: len(stored_calls(crm, b_calls)) == len(b_calls), 60, "B's calls stored")

        # -- A's cut calls: ended by A's own IVR, spooled there, stored once the link is back ---------
        a_calls = [r["call_id"] for r in by_front]
        await wait_for(lambda: all(hosts["a"].record(c) for c in a_calls), WAIT_S, "A's records of its cut calls")
        assert not stored_calls(crm, a_calls), "host A reached the store through a downed link?"
        for c in a_calls:  # the recording lands on the host that took the call
            recording = hosts["a"].recording(c)
            assert recording is not None and recording.is_relative_to(hosts["a"].data_dir), recording
        assert list((hosts["a"].data_dir / "crm-spool").glob("*")), "A's records wait in its spool"
        net.restore("a")
        restored_at = time.monotonic()
        await wait_for(lambda: watch.serving == 2, 60, "host A back in the dispatcher")
        rejoined_s = time.monotonic() - restored_at
        assert svc.health()["status"] == "ok", svc.health()
        await wait_for(lambda: len(stored_calls(crm, a_calls)) == len(a_calls), WAIT_S,
                       "A's spooled calls in the shared store")
        print(f"link back: A in the dispatcher after {rejoined_s:.1f} s, its spooled calls stored after "
              f"{time.monotonic() - restored_at:.1f} s")

        # -- wave 3: host A takes calls again ----------------------------------------------------------
        results3 = await asyncio.gather(*(place_call(net, uri, 4) for _ in range(4)))
        assert all(r["answered"] for r in results3), results3
        await wait_for(lambda: all(hosts["a"].record(r["call_id"]) or hosts["b"].record(r["call_id"])
                                   for r in results3), 60, "wave 3 records")
        assert any(hosts["a"].record(r["call_id"]) for r in results3), "host A took no call after rejoining"

        # -- wave 4: host B's worker process killed mid-call -------------------------------------------
        # B's own supervisor restarts it and stores the call from its spool (worker_lost). The
        # front BYEs that caller only when the restart is slower than sip.remote_lost_after_s (host
        # B declared lost, measured 6 s on a loaded machine); a quick restart answers the front's
        # pings and its in-dialog OPTIONS, so the caller stays until they hang up (README, Limits).
        await wait_for(lambda: busy("a") + busy("b") == 0, 60, "hosts idle")
        wave4 = []
        for _ in range(2):  # round robin: one on each host
            wave4.append(asyncio.create_task(place_call(net, uri, 60)))
            await asyncio.sleep(0.7)
        await wait_for(lambda: busy("a") == 1 and busy("b") == 1, 60, "a call on each host")
        await asyncio.sleep(2)  # into the welcome prompt: events spooled
        old_pid = int(json.loads(active["b"].read_text())["pid"])
        os.kill(old_pid, signal.SIGKILL)
        killed_epoch = time.time()
        results4 = await asyncio.gather(*wave4)
        killed = [r for r in results4 if (rec := hosts["b"].record(r["call_id"])) and rec["end_reason"] == "worker_lost"]
        assert len(killed) == 1, results4

        def restarted() -> bool:
            with contextlib.suppress(OSError, ValueError):
                stats = json.loads(active["b"].read_text())
                return bool(stats["pid"] != old_pid and stats["state"] == "serving")
            return False

        await wait_for(restarted, 90, "B's worker restarted by B's supervisor")
        ended_after = killed[0]["answered_at"] + killed[0]["duration"] - killed_epoch
        print(f"wave 4: B's worker killed; B restarted it; its caller's call ended {ended_after:.0f} s after "
              f"the kill, hung up by the {'front' if killed[0]['hangup_by'] == 'remote' else 'caller'}")

        # -- no record lost: every call in the one store, its live events on the one broker ------------
        every = [r["call_id"] for r in (*results1, *results2, *results3, *results4)]
        done = await wait_for(lambda: (s := stored_calls(crm, every)) and len(s) == len(every) and s, 60,
                              "every call stored")
        assert all(d.summary is not None for d in done.values())
        assert done[killed[0]["call_id"]].summary.end_reason == "worker_lost"
        # (not the killed worker's call: its supervisor stores it, nobody publishes its end)
        published = [c for c in every if c != killed[0]["call_id"]]
        await wait_for(lambda: all("call.ended" in feed.events.get(c, []) for c in published), 120,
                       "every call's end on the broker")
        late = [feed.ended_at[c] - restored_at for c in a_calls]
        print(f"link back: the cut calls' call.ended on the broker (through A's bridge) after "
              f"{min(late):.1f}-{max(late):.1f} s")
        assert min(late) > 0  # not before: they waited on host A
    finally:
        crm.stop()
        for h in hosts.values():
            h.stop()
        if svc is not None:
            await stop_service(svc)
        if feed.task is not None:
            feed.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feed.task
        await broker.stop()
