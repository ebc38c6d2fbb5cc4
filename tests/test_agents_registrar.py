"""Agents register at the front with digest auth; the ACD learns who is reachable; a test agent.

Real SIP on 127.0.0.1 through a real Kamailio front. The "worker" is a pjsua2 ``SipEndpoint`` in
this process, listed in the front's dispatcher; the agent's phone (``telephony.test_agent``) and
callers (``telephony.test_caller``) run in subprocesses (one pjsua2 endpoint per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import pytest_asyncio

from callcenter.cli import main as cli_main
from speech.events import AgentStatus
from speech.frames import AudioFrame
from telephony import SipEndpoint
from telephony.acd.directory import (
    Directory,
    DirectoryError,
    check_password,
    load_directory,
    make_agent,
    sip_ha1,
)
from telephony.acd.registrar import RegistrarError, RegistrarRpc, RegistrarSync, parse_ul_dump
from telephony.acd.store import AcdStore, StateChange
from telephony.items import CallFailed, HoldChanged
from telephony.kamailio import KamailioFront, Worker, kamailio_binary, render_config
from telephony.net import free_port
from telephony.settings import SipSettings
from tests.sip.caller import ROOT, caller_result, start_caller

REALM = "callcenter"
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}
needs_kamailio = pytest.mark.skipif(kamailio_binary() is None,
                                    reason="kamailio not installed (apt-get install kamailio)")


def _directory() -> Directory:
    return Directory(realm=REALM, agents=tuple(
        make_agent(i, pw, realm=REALM, skills=("agents",), rounds=1000) for i, pw in PASSWORDS.items()))


@dataclass
class Rig:
    front: KamailioFront
    worker: SipEndpoint
    rpc: RegistrarRpc
    directory: Directory
    tmp: Path

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.front.port}"


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    worker = SipEndpoint(SipSettings(transports=("udp",)), port=free_port(), name="worker0")
    await worker.start()
    front = KamailioFront("127.0.0.1", free_port(), [Worker("127.0.0.1", worker.port)], tmp_path / "kam",
                          transports=("udp", "tcp"), probing=False)
    rpc = RegistrarRpc(front.rpc_url)
    try:
        await front.start()
        directory = _directory()
        await rpc.set_credentials(directory)
        yield Rig(front, worker, rpc, directory, tmp_path)
    finally:
        await rpc.aclose()
        await front.stop()
        await worker.stop()


class Changes:
    """An ``on_change`` callback that tests can wait on."""

    def __init__(self) -> None:
        self.items: list[StateChange] = []
        self._new = asyncio.Event()

    def __call__(self, change: StateChange) -> None:
        self.items.append(change)
        self._new.set()

    async def wait_for(self, agent_id: str, state: AgentStatus, timeout_s: float = 5.0) -> StateChange:
        async with asyncio.timeout(timeout_s):
            while True:
                for c in self.items:
                    if c.agent_id == agent_id and c.state is state:
                        return c
                self._new.clear()
                await self._new.wait()


async def start_agent(uri: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "telephony.test_agent", uri, *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)


async def wait_contact(rpc: RegistrarRpc, agent_id: str, timeout_s: float = 10.0) -> str:
    async with asyncio.timeout(timeout_s):
        while True:
            contact = (await rpc.contacts()).get(agent_id)
            if contact:
                return contact
            await asyncio.sleep(0.1)


def _sip_first_line(front_port: int, user: str, extra: str = "") -> str:
    """Send a bare INVITE over UDP; the first line of the front's first non-1xx answer."""
    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        lp = s.getsockname()[1]
        msg = (f"INVITE sip:{user}@127.0.0.1:{front_port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-raw{lp}\r\nMax-Forwards: 70\r\n"
               f"From: <sip:raw@127.0.0.1>;tag=r{lp}\r\nTo: <sip:{user}@127.0.0.1:{front_port}>\r\n"
               f"Call-ID: raw-{lp}@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:raw@127.0.0.1:{lp}>\r\n"
               f"{extra}Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
        s.sendto(msg.encode(), ("127.0.0.1", front_port))
        while True:
            line = s.recv(65535).split(b"\r\n")[0].decode()
            if not line.startswith("SIP/2.0 1"):
                return line


def _register_with_digest(front_port: int, user: str, password: str, cseq: int) -> str:
    """REGISTER over UDP, answer the 401 challenge with ``password``; the final status line."""
    import hashlib
    import re

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - SIP digest is MD5

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        lp = s.getsockname()[1]
        uri = f"sip:127.0.0.1:{front_port}"

        def send(n: int, auth: str = "") -> str:
            s.sendto((f"REGISTER {uri} SIP/2.0\r\n"
                      f"Via: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-reg{lp}-{n}\r\nMax-Forwards: 70\r\n"
                      f"From: <sip:{user}@127.0.0.1>;tag=r{lp}\r\nTo: <sip:{user}@127.0.0.1>\r\n"
                      f"Call-ID: reg-{lp}@127.0.0.1\r\nCSeq: {n} REGISTER\r\n"
                      f"Contact: <sip:{user}@127.0.0.1:{lp}>\r\nExpires: 60\r\n{auth}"
                      "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", front_port))
            while True:
                reply = s.recv(65535).decode()
                if not reply.startswith("SIP/2.0 1"):
                    return reply

        challenge = send(cseq)
        if not challenge.startswith("SIP/2.0 401"):
            return challenge.split("\r\n")[0]
        realm = re.search(r'realm="([^"]+)"', challenge)
        nonce = re.search(r'nonce="([^"]+)"', challenge)
        assert realm and nonce, challenge
        response = md5(f"{md5(f'{user}:{realm[1]}:{password}')}:{nonce[1]}:{md5(f'REGISTER:{uri}')}")
        auth = (f'Authorization: Digest username="{user}", realm="{realm[1]}", nonce="{nonce[1]}", '
                f'uri="{uri}", response="{response}", algorithm=MD5\r\n')
        return send(cseq + 1, auth).split("\r\n")[0]


def _drain(q: asyncio.Queue[Any]) -> list[Any]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


def _dbfs(pcm: np.ndarray) -> float:
    x = pcm.astype(np.float64)
    return float(10 * np.log10(max(float(np.mean(x * x)), 1e-9) / 32768.0**2))


async def agent_result(proc: asyncio.subprocess.Process, timeout_s: float = 40.0) -> dict[str, Any]:
    return await caller_result(proc, timeout_s)


# ---- unit tests ----------------------------------------------------------------------------------


def test_directory_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text("realm: callcenter\nagents:\n  - id: alice\n    ha1: nothex\n")
    with pytest.raises(DirectoryError, match=r"agents\.yaml: agents\.0\.ha1"):
        load_directory(path)
    path.write_text("agents:\n  - id: alice\n    colour: red\n")
    with pytest.raises(DirectoryError, match=r"agents\.yaml: agents\.0\.colour"):
        load_directory(path)
    path.write_text("agents: [unclosed\n")
    with pytest.raises(DirectoryError, match=r"agents\.yaml: cannot read"):
        load_directory(path)


def test_cli_agents_add_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert cli_main(["agents", "--data-dir", str(data), "add", "alice", "--password", "pw-1",
                     "--skills", "billing,agents", "--name", "Alice Smith"]) == 0
    assert cli_main(["agents", "--data-dir", str(data), "add", "sup", "--password", "pw-2",
                     "--supervisor", "--contact", "sip:sup@127.0.0.1:5099"]) == 0
    path = data / "agents.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    d = load_directory(path)
    alice = d.get("alice")
    assert alice is not None and alice.skills == ("billing", "agents") and alice.name == "Alice Smith"
    assert alice.ha1 == sip_ha1("alice", d.realm, "pw-1") and check_password("pw-1", alice.password_hash)
    assert "pw-1" not in path.read_text()
    sup = d.get("sup")
    assert sup is not None and sup.supervisor and sup.contact == "sip:sup@127.0.0.1:5099"
    # replacing an agent keeps one entry
    assert cli_main(["agents", "--data-dir", str(data), "add", "alice", "--password", "pw-3"]) == 0
    assert [a.id for a in load_directory(path).agents] == ["sup", "alice"]
    capsys.readouterr()
    assert cli_main(["agents", "--data-dir", str(data), "list"]) == 0
    out = capsys.readouterr().out
    assert "alice" in out and "sup" in out and "supervisor" in out and "pw-" not in out
    assert cli_main(["agents", "--data-dir", str(data), "add", "Bad/Id", "--password", "x"]) == 2


def test_ul_dump_is_read_into_contacts() -> None:
    result = {"Domains": [{"Domain": {"Domain": "location", "AoRs": [
        {"Info": {"AoR": "alice", "Contacts": [
            {"Contact": {"Address": "sip:alice@127.0.0.1:5001", "Last-Modified": 10}},
            {"Contact": {"Address": "sip:alice@127.0.0.1:5002", "Last-Modified": 20}}]}},
        {"Info": {"AoR": "bob", "Contacts": []}}]}}]}
    assert parse_ul_dump(result) == {"alice": "sip:alice@127.0.0.1:5002"}
    assert parse_ul_dump(None) == {}


async def test_set_credentials_replaces_the_table_without_flushing_it() -> None:
    calls: list[tuple[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append((body["method"], body["params"]))
        result: Any = "Ok"
        if body["method"] == "htable.dump":
            result = [{"entry": 1, "size": 2, "slot": [{"name": "alice", "value": "x", "type": "str"},
                                                       {"name": "gone", "value": "y", "type": "str"}]}]
        return httpx.Response(200, json={"jsonrpc": "2.0", "result": result, "id": body["id"]})

    rpc = RegistrarRpc("http://front/RPC", transport=httpx.MockTransport(handler))
    await rpc.set_credentials(_directory())
    await rpc.aclose()
    methods = [m for m, _ in calls]
    assert "htable.flush" not in methods
    assert ("htable.delete", ["agents", "gone"]) in calls and ("ul.rm", ["location", "gone"]) in calls
    assert ("htable.delete", ["agents", "alice"]) not in calls
    assert calls[-1] == ("htable.sets", ["acd", "realm", REALM])  # last: marks the table loaded


def test_config_carries_the_rpc_socket(tmp_path: Path) -> None:
    text = render_config("127.0.0.1", 5060, tmp_path, rpc_port=7777)
    assert "listen=tcp:127.0.0.1:7777" in text and "$Rp == 7777" in text
    assert "@@" not in text.split("\n", 2)[2]  # every placeholder filled (line 2 names the syntax)


# ---- real SIP ------------------------------------------------------------------------------------


@pytest.mark.sip
@pytest.mark.slow
@needs_kamailio
async def test_right_password_registers_and_sync_makes_the_agent_ready(rig: Rig) -> None:
    store = AcdStore(f"sqlite:///{rig.tmp / 'acd.sqlite'}")
    changes = Changes()
    sync = RegistrarSync(rig.rpc, store, lambda: rig.directory, poll_s=0.2, on_change=changes)
    await sync.load_credentials()
    assert {r.agent_id: r.state for r in store.agents()} == {"alice": AgentStatus.LOGGED_OUT,
                                                             "bob": AgentStatus.LOGGED_OUT}
    # alice waits 4 s for a call that never comes, registered meanwhile; then unregisters
    proc = await start_agent(f"sip:alice@{rig.hostport}", "--password", PASSWORDS["alice"],
                             "--no-answer", "--wait-call", "4")
    contact = await wait_contact(rig.rpc, "alice")
    assert contact.startswith("sip:alice@127.0.0.1:")
    stop = asyncio.Event()
    runner = asyncio.create_task(sync.run(stop))
    try:
        await changes.wait_for("alice", AgentStatus.READY)
        row = store.agent("alice")
        assert row is not None and row.available and row.contact == contact
        bob = store.agent("bob")
        assert bob is not None and bob.state is AgentStatus.LOGGED_OUT and not bob.registered
        result = await agent_result(proc)
        assert result["registered"] is True and result["status"] == 200 and result["calls"] == []
        # unregistered on exit: logged out
        assert (await changes.wait_for("alice", AgentStatus.LOGGED_OUT)).reason == "unregistered"
        # a restarted front lost its credentials: the sync loads them again by itself
        await rig.front.stop()
        await rig.front.start()
        async with asyncio.timeout(5):
            while True:
                if await rig.rpc.credentials_loaded():
                    break
                await asyncio.sleep(0.1)
        proc = await start_agent(f"sip:bob@{rig.hostport}", "--password", PASSWORDS["bob"],
                                 "--no-answer", "--wait-call", "1")
        assert (await agent_result(proc))["registered"] is True
    finally:
        stop.set()
        await runner
        store.close()


@pytest.mark.sip
@needs_kamailio
async def test_wrong_password_and_unknown_agent_are_refused(rig: Rig) -> None:
    wrong = await start_agent(f"sip:alice@{rig.hostport}", "--password", "not-it", "--wait-call", "1")
    unknown = await start_agent(f"sip:mallory@{rig.hostport}", "--password", "whatever", "--wait-call", "1")
    for proc in (wrong, unknown):
        result = await agent_result(proc)
        assert result["registered"] is False and result["status"] in (401, 403), result
        assert proc.returncode == 1
    assert await rig.rpc.contacts() == {}


@pytest.mark.sip
@needs_kamailio
async def test_password_guessing_locks_the_agent_id_not_others(rig: Rig) -> None:
    port = rig.front.port
    right = await asyncio.to_thread(_register_with_digest, port, "bob", PASSWORDS["bob"], 1)
    assert right.startswith("SIP/2.0 200"), right  # the digest itself is right
    for n in range(5):
        line = await asyncio.to_thread(_register_with_digest, port, "alice", f"guess-{n}", 10 + 2 * n)
        assert line == "SIP/2.0 403 Forbidden", (n, line)
    # the 6th try is refused unchecked, even with alice's real password
    locked = await asyncio.to_thread(_register_with_digest, port, "alice", PASSWORDS["alice"], 30)
    assert locked == "SIP/2.0 403 Locked After Failed Attempts", locked
    # another agent is not affected, and a success clears the count
    assert (await asyncio.to_thread(_register_with_digest, port, "bob", "wrong", 40)).startswith("SIP/2.0 403")
    assert (await asyncio.to_thread(_register_with_digest, port, "bob", PASSWORDS["bob"], 50)).startswith(
        "SIP/2.0 200")


@pytest.mark.sip
@needs_kamailio
async def test_unauthenticated_callers_still_reach_the_ivr(rig: Rig) -> None:
    caller = await start_caller(f"sip:ivr@{rig.hostport}", "--hangup-after", "1")
    leg = await asyncio.wait_for(rig.worker.accept(), 15)
    assert leg.agent_identity == ""
    result = await caller_result(caller)
    assert result["answered"] is True
    await asyncio.wait_for(leg.wait_ended(), 10)
    # a forged agent header is stripped; a feature code without credentials is challenged
    forged = asyncio.create_task(asyncio.to_thread(
        _sip_first_line, rig.front.port, "ivr", "X-CC-Agent: alice\r\n"))
    ringing = await asyncio.wait_for(rig.worker.ringing(), 10)
    assert ringing.agent_identity == ""
    await ringing.hangup()
    assert (await forged).startswith("SIP/2.0 ")
    line = await asyncio.to_thread(_sip_first_line, rig.front.port, "*1")
    assert line.startswith("SIP/2.0 407"), line


@pytest.mark.sip
@needs_kamailio
async def test_worker_rings_the_registered_agent_through_the_front(rig: Rig, tts: Any) -> None:
    agent_says = tts("Hello, this is Alice.", sample_rate=8000)
    caller_says = tts("I have a question about my last invoice please.", sample_rate=8000)
    heard = rig.tmp / "agent-heard.wav"
    proc = await start_agent(f"sip:alice@{rig.hostport}", "--password", PASSWORDS["alice"],
                             "--play", str(agent_says), "--record", str(heard), "--answer-after", "0.3",
                             "--wait-call", "20")
    await wait_contact(rig.rpc, "alice")
    with pytest.raises(CallFailed) as refused:  # bob has no phone registered
        await rig.worker.place_call(f"sip:bob@{rig.hostport}", answer_timeout_s=5, record=False)
    assert refused.value.status in (404, 480)
    leg = await rig.worker.place_call(f"sip:alice@{rig.hostport}", answer_timeout_s=10, record=False)
    await asyncio.sleep(0.5)  # the phone's media is up a moment after the ACK on a loaded machine
    assert await leg.play(caller_says)
    assert await leg.play(caller_says)
    await asyncio.sleep(1.0)
    await leg.hangup()
    worker_heard = [item.samples() for item in _drain(leg.inbox) if isinstance(item, AudioFrame)]
    result = await agent_result(proc)
    assert result["registered"] is True and len(result["calls"]) == 1, result
    call = result["calls"][0]
    assert call["answered"] and call["end_reason"] == "remote" and call["played"]
    assert call["frames_heard"] > 100 and call["heard_rms_dbfs"] > -50, call
    assert call["recording_path"] == str(heard) and heard.stat().st_size > 44 + 16000
    assert call["codec"] and call["answered_at"]
    # the worker heard the agent's side too
    assert len(worker_heard) > 100 and _dbfs(np.concatenate(worker_heard)) > -50
    assert proc.returncode == 0


@pytest.mark.sip
@needs_kamailio
async def test_feature_code_from_an_agent_reaches_a_worker_with_its_id(rig: Rig) -> None:
    proc = await start_agent(f"sip:alice@{rig.hostport}", "--password", PASSWORDS["alice"], "--dial", "*2")
    leg = await asyncio.wait_for(rig.worker.accept(), 15)
    assert leg.agent_identity == "alice"
    assert "*2@" in leg.local_uri
    await asyncio.sleep(0.3)
    await leg.hangup()
    result = await agent_result(proc)
    assert result["registered"] is True
    assert result["dialed"]["answered"] is True and result["dialed"]["hangup_by"] == "remote", result
    assert proc.returncode == 0


@pytest.mark.sip
@pytest.mark.slow
@needs_kamailio
async def test_agent_rings_out_then_answers_holds_and_hangs_up(rig: Rig) -> None:
    proc = await start_agent(f"sip:alice@{rig.hostport}", "--password", PASSWORDS["alice"], "--calls", "2",
                             "--answer-after", "1.5", "--hold-after", "0.5", "--hold-for", "0.5",
                             "--hangup-after", "2.5", "--wait-call", "20")
    await wait_contact(rig.rpc, "alice")
    with pytest.raises(CallFailed):  # still ringing when the worker gives up (a ring timeout)
        await rig.worker.place_call(f"sip:alice@{rig.hostport}", answer_timeout_s=0.8, record=False)
    leg = await rig.worker.place_call(f"sip:alice@{rig.hostport}", answer_timeout_s=10, record=False)
    await asyncio.wait_for(leg.wait_ended(), 10)  # the agent hangs up
    holds = [(h.held, h.by) for h in _drain(leg.inbox) if isinstance(h, HoldChanged)]
    assert holds == [(True, "remote"), (False, "remote")]
    result = await agent_result(proc)
    first, second = result["calls"]
    assert not first["answered"] and first["end_reason"] == "cancelled"
    assert second["answered"] and second["held"] and second["end_reason"] == "local", second
    assert 2.0 < second["duration"] < 4.0
    assert proc.returncode == 1  # one of the two calls was not taken


@pytest.mark.sip
@pytest.mark.slow
@needs_kamailio
async def test_serve_loads_the_agents_file_and_publishes_registrations(tmp_path: Path) -> None:
    from callcenter.serve import start_service, stop_service
    from callcenter.settings import load_settings
    from telephony.acd.directory import save_directory
    from telephony.net import consecutive_free_ports

    settings = load_settings(overrides={
        "data_dir": str(tmp_path / "data"), "sip.port": free_port(),
        "sip.worker_base_port": consecutive_free_ports(1), "sip.workers": 1, "sip.front": "kamailio",
        "mqtt.enabled": False, "console.enabled": False, "asr.engine": "none",
        "acd.registrar_poll_s": 0.2,
    }, environ={})
    save_directory(_directory(), settings.agents_file)
    svc = await start_service(settings, log_dir=tmp_path / "logs")
    changes = Changes()
    svc.on_agent_change.append(changes)
    try:
        assert svc.front is not None and svc.registrar is not None
        hostport = f"127.0.0.1:{settings.sip.port}"
        proc = await start_agent(f"sip:alice@{hostport}", "--password", PASSWORDS["alice"],
                                 "--no-answer", "--wait-call", "2")
        change = await changes.wait_for("alice", AgentStatus.READY, timeout_s=10)
        assert change.reason == "registered"
        assert (await agent_result(proc))["registered"] is True
        # Kamailio dies: the supervisor restarts it and the credentials are loaded again
        rpc = RegistrarRpc(svc.front.rpc_url)
        try:
            killed = svc.front.proc
            assert killed is not None and svc.supervisor is not None
            killed.kill()
            # The killed main's forked workers answer RPC (credentials and all) until the
            # supervisor reaps them: wait for the restarted Kamailio, then for its credentials.
            async with asyncio.timeout(15):
                while True:
                    with contextlib.suppress(RegistrarError):
                        if (svc.supervisor.front_restarts == 1 and svc.front.proc not in (None, killed)
                                and await rpc.credentials_loaded()):
                            break
                    await asyncio.sleep(0.2)
        finally:
            await rpc.aclose()
        proc = await start_agent(f"sip:bob@{hostport}", "--password", PASSWORDS["bob"],
                                 "--no-answer", "--wait-call", "1")
        result = await agent_result(proc)
        assert result["registered"] is True, result
    finally:
        await stop_service(svc)
