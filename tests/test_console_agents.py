"""The agent side of the console: login, state, queue view and the agent's stream following
their call. The ACD is the real one: the agents file and an SQLite store, bound by
``callcenter.agent_console`` exactly as ``serve`` binds them."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi.testclient import TestClient

from callcenter.agent_console import build_agent_console
from callcenter.settings import MqttSettings, Settings
from live.broker import EmbeddedBroker, find_mosquitto
from live.console import create_console_app
from live.console.auth import AGENT_COOKIE, AgentSessions
from live.publisher import MqttPublisher
from live.testing import free_port, serve
from speech.events import (
    AgentStatus,
    CallEnded,
    CallStarted,
    FinalTranscript,
    PartyJoined,
    SummaryReady,
)
from speech.frames import Party
from telephony.acd.directory import Directory, make_agent, save_directory
from telephony.acd.store import AcdStore

TOKEN = "agents-token"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "sue": "sue-pw"}


@pytest.fixture
def settings(tmp_path) -> Settings:
    directory = Directory(agents=(
        make_agent("alice", PASSWORDS["alice"], name="Alice", skills=("billing",), rounds=1000),
        make_agent("bob", PASSWORDS["bob"], name="Bob", skills=("billing", "sales"), rounds=1000),
        make_agent("sue", PASSWORDS["sue"], name="Sue", skills=("billing",), supervisor=True, rounds=1000),
    ))
    save_directory(directory, tmp_path / "agents.yaml")
    s = Settings(data_dir=tmp_path)
    store = AcdStore(s.store_url)
    store.sync_directory(directory)
    store.set_registrations({"alice": "sip:alice@127.0.0.1:5099", "bob": "sip:bob@127.0.0.1:5098"},
                            ready_on_register=False)
    store.close()
    return s


def make_app(settings: Settings, **kw):
    return create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc",
                              agents=build_agent_console(settings), **kw)


@pytest.fixture
def client(settings):
    with TestClient(make_app(settings)) as c:
        yield c


def login(client: TestClient, agent_id: str, password: str | None = None) -> httpx.Response:
    return client.post("/api/agent/login",
                       json={"agent_id": agent_id, "password": password or PASSWORDS[agent_id]})


def test_login_right_and_wrong_password(client):
    assert client.get("/api/agent/me").status_code == 401
    page = client.get("/agent")
    assert page.status_code == 200 and 'action="/api/agent/login"' in page.text  # the form
    assert client.get("/static/console.css").status_code == 200  # the form's look, public

    wrong = login(client, "alice", "nope")
    assert wrong.status_code == 401 and AGENT_COOKIE not in wrong.cookies
    assert login(client, "mallory", "x").status_code == 401  # unknown agent: same answer
    assert client.get("/api/agent/me").status_code == 401

    ok = login(client, "alice")
    assert ok.status_code == 200 and ok.json() == {"agent_id": "alice"}
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    assert PASSWORDS["alice"] not in cookie
    me = client.get("/api/agent/me").json()
    assert me["agent_id"] == "alice" and me["name"] == "Alice" and me["state"] == "logged_out"
    assert me["call_id"] is None and me["supervisor"] is False
    assert 'data-page="agent"' in client.get("/agent").text
    assert client.get("/static/console.js").status_code == 200

    # An agent session opens the agent's things only: not the operators' call list.
    assert client.get("/api/calls").status_code == 401
    assert client.get("/").status_code == 401

    # Logout revokes the session, even for a copy of the cookie kept elsewhere.
    kept = client.cookies[AGENT_COOKIE]
    assert client.post("/api/agent/logout").status_code == 200
    client.cookies.set(AGENT_COOKIE, kept)
    assert client.get("/api/agent/me").status_code == 401


def test_forged_expired_and_https_cookies(settings):
    sessions = AgentSessions(b"k" * 32, ttl_s=10, clock=lambda: 1000.0)
    value = sessions.issue("alice")
    assert sessions.agent_of(value) == "alice"
    assert sessions.agent_of(value.replace("alice", "sue", 1)) is None
    assert AgentSessions(b"x" * 32, clock=lambda: 1000.0).agent_of(value) is None
    assert AgentSessions(b"k" * 32, clock=lambda: 1011.0).agent_of(value) is None
    assert sessions.agent_of("garbage") is None

    with TestClient(make_app(settings), base_url="https://console.test") as c:
        r = login(c, "bob")
        assert "Secure" in r.headers["set-cookie"]


def test_form_login_works_without_javascript(client):
    r = client.post("/api/agent/login", data={"agent_id": "bob", "password": "bad"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/agent?error=401"
    r = client.post("/api/agent/login", data={"agent_id": "Bob", "password": PASSWORDS["bob"]},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/agent"
    assert client.get("/api/agent/me").json()["agent_id"] == "bob"


def test_repeated_wrong_passwords_lock_that_agent_id(client):
    for _ in range(5):
        assert login(client, "alice", "guess").status_code == 401
    assert login(client, "alice").status_code == 429  # even the right one, for a while
    assert login(client, "bob").status_code == 200  # others are not affected


def test_state_changes(client, settings):
    login(client, "alice")

    def set_state(state, reason=""):
        return client.post("/api/agent/state", json={"state": state, "reason": reason})

    r = set_state("ready")
    assert r.status_code == 200 and r.json()["state"] == "ready" and r.json()["changed"]
    r = set_state("not_ready", "break")
    assert r.json()["state"] == "not_ready" and r.json()["reason"] == "break"
    assert set_state("not_ready", "break").json()["changed"] is False  # already there
    assert set_state("ringing").status_code == 422  # not a state an agent may choose
    assert set_state("ready").json()["state"] == "ready"

    store = AcdStore(settings.store_url)
    try:
        store.enqueue("call-9", "billing", "w0")
        [claim] = store.claim("call-9", "billing")
        assert claim.agent_id in ("alice", "bob")
        rung = claim.agent_id
    finally:
        store.close()
    client.post("/api/agent/logout")
    login(client, rung)
    r = set_state("not_ready", "break")
    assert r.status_code == 409 and r.json()["state"] == "ringing"
    assert client.get("/api/agent/me").json()["call_id"] == "call-9"  # from the store


def test_queue_view_for_supervisors_and_the_token(client, settings):
    store = AcdStore(settings.store_url)
    try:
        store.enqueue("c1", "billing", "w0")
        store.enqueue("c2", "billing", "w0")
        store.set_state("alice", AgentStatus.READY)
    finally:
        store.close()
    assert client.get("/api/queues").status_code == 401
    assert client.get("/queues").status_code == 401
    login(client, "alice")
    assert client.get("/api/queues").status_code == 403
    assert client.get("/api/agents").status_code == 403
    client.post("/api/agent/logout")

    login(client, "sue")
    assert client.get("/api/agent/me").json()["supervisor"] is True
    queues = {q["queue"]: q for q in client.get("/api/queues").json()}
    assert set(queues) == {"billing", "sales"}
    billing = queues["billing"]
    assert billing["waiting"] == 2 and billing["longest_wait_s"] >= 0
    assert [c["call_id"] for c in billing["callers"]] == ["c1", "c2"]
    assert billing["agents"] == {"ready": 1, "logged_out": 2}
    agents = {a["agent_id"]: a for a in client.get("/api/agents").json()}
    assert agents["alice"]["state"] == "ready" and "password_hash" not in agents["alice"]
    assert 'data-page="queues"' in client.get("/queues").text
    client.post("/api/agent/logout")
    client.cookies.clear()

    assert client.get("/?token=" + TOKEN).status_code == 200  # the console token sees them too
    assert client.get("/api/queues").status_code == 200


def test_console_without_agents_keeps_its_pages_closed():
    app = create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc")
    with TestClient(app) as c:
        assert c.get("/agent").status_code == 401
        assert c.post("/api/agent/login", json={"agent_id": "a", "password": "b"}).status_code == 401
        assert c.get("/static/console.css").status_code == 401


async def _read_sse(r: httpx.Response, out: list[tuple[str, dict]], until) -> None:
    name = None
    async for line in r.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            out.append((name, json.loads(line[6:])))
            if until(out):
                return


def call_events(call_id: str, agent_id: str) -> list:
    return [
        CallStarted(call_id=call_id, t=0.0, source="sip", caller="+15550100", callee="ivr",
                    parties=("caller", "agent")),
        PartyJoined(call_id=call_id, t=5.0, party=Party.AGENT, agent_id=agent_id, queue="billing",
                    wait_s=4.0, ring_s=1.0),
        FinalTranscript(call_id=call_id, t=7.0, party=Party.CALLER, text="my bill is wrong",
                        start=5.5, end=6.8),
        FinalTranscript(call_id=call_id, t=9.0, party=Party.AGENT, text="let me check that",
                        start=7.5, end=8.8),
        CallEnded(call_id=call_id, t=12.0, reason="hangup", duration=12.0),
        SummaryReady(call_id=call_id, t=12.5, summary={"reason": "billing"}),
    ]


async def test_agent_stream_follows_their_call_via_live_state(settings):
    app = make_app(settings)
    live = app.state.live
    port = free_port()
    async with serve(app, port):
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            assert (await http.post("/api/agent/login", json={"agent_id": "alice",
                                                               "password": PASSWORDS["alice"]})).status_code == 200
            # Someone else's call is going on: alice's stream shows none of it.
            for e in call_events("other", "bob")[:3]:
                live.ingest(e.to_dict())
            got: list[tuple[str, dict]] = []
            async with http.stream("GET", "/api/agent/stream") as r:
                assert r.status_code == 200
                reader = asyncio.create_task(_read_sse(
                    r, got, lambda out: sum(1 for n, d in out if n == "event" and d["type"] == "summary") == 2))
                await asyncio.sleep(0.3)
                first, second = call_events("c1", "alice"), call_events("c2", "alice")
                live.ingest(first[0].to_dict())  # before she joins: not hers yet
                for e in first[1:]:
                    live.ingest(e.to_dict())
                live.ingest(call_events("other", "bob")[3].to_dict())
                live.ingest_agent_state({"type": "agent.state", "agent_id": "alice", "call_id": "",
                                         "state": "wrap_up", "previous": "on_call", "reason": ""})
                for e in second:
                    live.ingest(e.to_dict())
                await asyncio.wait_for(reader, 10)
            me = (await http.get("/api/agent/me")).json()
    assert got[0] == ("reset", {"call_id": None})
    resets = [i for i, (n, _) in enumerate(got) if n == "reset"]
    assert [got[i][1]["call_id"] for i in resets] == [None, "c1", "c2"]
    c1 = [d for n, d in got[resets[1] + 1: resets[2]] if n == "event"]
    # The replay on joining has the call so far (its start), then the call live.
    assert [d["type"] for d in c1] == ["call.started", "party.joined", "transcript.final",
                                       "transcript.final", "call.ended", "summary"]
    assert [(d["party"], d["text"]) for d in c1 if d["type"] == "transcript.final"] == [
        ("caller", "my bill is wrong"), ("agent", "let me check that")]
    assert all(d["call_id"] != "other" for n, d in got if n == "event")
    assert ("agent", {"type": "agent.state", "agent_id": "alice", "call_id": "", "state": "wrap_up",
                      "previous": "on_call", "reason": ""}) in got
    assert me["call_id"] == "c2" and me["call_ended"] is True


@pytest.mark.broker
@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto binary missing (apt-get install mosquitto)")
async def test_agent_stream_follows_their_call_from_the_broker(settings, tmp_path):
    bport, wport = free_port(), free_port()
    async with EmbeddedBroker(port=bport, backend="mosquitto"):
        app = create_console_app(token=TOKEN, broker_host="127.0.0.1", broker_port=bport,
                                 topic_prefix="cc", agents=build_agent_console(settings))
        async with serve(app, wport):
            pub = MqttPublisher(MqttSettings(host="127.0.0.1", port=bport, topic_prefix="cc"),
                                tmp_path / "o.sqlite")
            await pub.start()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{wport}", timeout=10) as http:
                await http.post("/api/agent/login", json={"agent_id": "bob", "password": PASSWORDS["bob"]})
                got: list[tuple[str, dict]] = []
                async with http.stream("GET", "/api/agent/stream") as r:
                    reader = asyncio.create_task(_read_sse(
                        r, got, lambda out: any(d.get("type") == "summary" for n, d in out)))
                    await asyncio.sleep(0.5)  # the console subscribed
                    for e in call_events("m1", "bob"):
                        pub.publish(e)
                    await asyncio.wait_for(reader, 10)
            await pub.stop()
    names = [n for n, _ in got]
    assert names[0] == "reset" and got[0][1] == {"call_id": None}
    switch = names.index("reset", 1)
    assert got[switch][1] == {"call_id": "m1"}
    finals = [(d["party"], d["text"]) for n, d in got[switch:] if n == "event" and d["type"] == "transcript.final"]
    assert finals == [("caller", "my bill is wrong"), ("agent", "let me check that")]
