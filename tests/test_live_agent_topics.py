"""MQTT per agent and per queue: topics of agent and queue events, the agent's call feed, and
the ACD feed's retained snapshots, against a real mosquitto and a real ACD store."""

from __future__ import annotations

import json

import pytest

from callcenter.agent_console import build_acd_feed
from callcenter.settings import MqttSettings, Settings
from live.broker import EmbeddedBroker, find_mosquitto
from live.call_agents import CallAgents
from live.publisher import MqttPublisher
from live.testing import Recorder, free_port
from live.topics import Topics, messages_for
from speech.events import (
    AgentStateChanged,
    AgentStatus,
    CallEnded,
    CallStarted,
    FinalTranscript,
    HoldStarted,
    PartialTranscript,
    PartyJoined,
    PartyLeft,
    QueueAction,
    QueueUpdate,
    SummaryReady,
)
from speech.frames import Party
from telephony.acd.directory import Directory, make_agent
from telephony.acd.store import AcdStore

PREFIX = "ccag"
A = Party.AGENT


def topics_of(event, **kw):
    return [(m.topic, m.qos, m.retain) for m in messages_for(event, Topics(PREFIX), **kw)]


def test_agent_and_queue_topics():
    # Set from the agent's phone: no call, so no call topics, and no crash.
    assert topics_of(AgentStateChanged(agent_id="alice", state=AgentStatus.READY)) == [
        (f"{PREFIX}/agents/alice/state", 1, True)]
    assert topics_of(AgentStateChanged(call_id="c1", agent_id="alice", state=AgentStatus.RINGING)) == [
        (f"{PREFIX}/calls/c1/agent", 1, False), (f"{PREFIX}/calls/c1/events", 1, False),
        (f"{PREFIX}/agents/alice/state", 1, True)]
    assert topics_of(QueueUpdate(call_id="c1", queue="billing", action=QueueAction.ENTERED, position=2)) == [
        (f"{PREFIX}/calls/c1/queue", 1, False), (f"{PREFIX}/calls/c1/events", 1, False),
        (f"{PREFIX}/queues/billing/events", 1, False)]
    # The agent's call feed keeps the event's urgency: partials at QoS 0.
    assert topics_of(PartialTranscript(call_id="c1", text="hi"), agent_feed="alice")[-1] == (
        f"{PREFIX}/agents/alice/call", 0, False)
    assert topics_of(FinalTranscript(call_id="c1", text="hi"), agent_feed="alice")[-1] == (
        f"{PREFIX}/agents/alice/call", 1, False)


def test_unusable_ids_are_skipped_not_raised(caplog):
    assert topics_of(QueueUpdate(call_id="c1", queue="a/b")) == [
        (f"{PREFIX}/calls/c1/queue", 1, False), (f"{PREFIX}/calls/c1/events", 1, False)]
    assert topics_of(AgentStateChanged(agent_id="", state=AgentStatus.READY)) == []
    assert topics_of(CallStarted(call_id="")) == []
    assert "queue.update event: queue is not a usable topic level" in caplog.text
    assert "a/b" not in caplog.text


def test_call_agents_routes_a_call_to_its_agent_until_it_leaves():
    m = CallAgents(max_calls=3)
    route = m.route
    assert route(CallStarted(call_id="c1")) == ""
    assert route(PartyJoined(call_id="c1", party=A, agent_id="alice")) == "alice"
    assert route(FinalTranscript(call_id="c1", party=Party.CALLER)) == "alice"
    assert route(FinalTranscript(call_id="c2")) == ""
    assert route(PartyLeft(call_id="c1", party=Party.CALLER, reason="hangup")) == "alice"  # not hers
    assert route(PartyLeft(call_id="c1", party=A, agent_id="alice", reason="hangup")) == "alice"
    assert route(FinalTranscript(call_id="c1")) == ""
    assert route(CallEnded(call_id="c1")) == ""
    assert route(SummaryReady(call_id="c1")) == "alice"  # her wrap-up
    assert route(SummaryReady(call_id="c1")) == ""

    # A transfer: the first agent leaves, the second gets the rest and the summary.
    route(PartyJoined(call_id="t", party=A, agent_id="alice"))
    assert route(QueueUpdate(call_id="t", queue="billing", action=QueueAction.TRANSFERRED)) == "alice"
    assert route(PartyLeft(call_id="t", party=A, agent_id="alice", reason="transfer")) == "alice"
    assert route(HoldStarted(call_id="t", party=Party.CALLER)) == ""
    assert route(PartyJoined(call_id="t", party=A, agent_id="bob")) == "bob"
    assert route(CallEnded(call_id="t")) == "bob"
    assert route(SummaryReady(call_id="t")) == "bob"

    # Bounded: calls whose end never came are forgotten oldest first.
    for i in range(5):
        route(PartyJoined(call_id=f"x{i}", party=A, agent_id="carol"))
    assert len(m) <= 6 and m.agent_of("x0") == "" and m.agent_of("x4") == "carol"


needs_mosquitto = pytest.mark.skipif(find_mosquitto() is None,
                                     reason="mosquitto binary missing (apt-get install mosquitto)")


@pytest.fixture
async def mosquitto(tmp_path):
    if find_mosquitto() is None:
        pytest.skip("mosquitto binary missing (apt-get install mosquitto)")
    broker = EmbeddedBroker(port=free_port(), backend="mosquitto", persistence_dir=tmp_path / "mosq")
    await broker.start()
    yield broker
    await broker.stop()


@pytest.mark.broker
@needs_mosquitto
async def test_agent_call_feed_and_state_over_mosquitto(mosquitto, tmp_path):
    port = mosquitto.port
    rec = Recorder("127.0.0.1", port, (f"{PREFIX}/agents/#", f"{PREFIX}/queues/#"))
    await rec.start()
    pub = MqttPublisher(MqttSettings(host="127.0.0.1", port=port, topic_prefix=PREFIX), tmp_path / "o.sqlite")
    await pub.start()
    try:
        c = "call-7"
        events = [
            CallStarted(call_id=c, caller="+15550100"),
            QueueUpdate(call_id=c, t=1.0, queue="billing", action=QueueAction.ENTERED, position=1),
            AgentStateChanged(call_id=c, t=2.0, party=A, agent_id="alice", state=AgentStatus.RINGING,
                              previous=AgentStatus.READY),
            PartyJoined(call_id=c, t=3.0, party=A, agent_id="alice", queue="billing", wait_s=2.0),
            PartialTranscript(call_id=c, t=3.5, party=Party.CALLER, text="my"),
            FinalTranscript(call_id=c, t=4.0, party=Party.CALLER, text="my bill"),
            FinalTranscript(call_id=c, t=5.0, party=A, text="let me check"),
            PartyLeft(call_id=c, t=6.0, party=A, agent_id="alice", reason="hangup"),
            CallEnded(call_id=c, t=6.1),
            SummaryReady(call_id=c, t=6.5, summary={"reason": "billing"}),
            AgentStateChanged(party=A, agent_id="alice", state=AgentStatus.NOT_READY,
                              previous=AgentStatus.WRAP_UP, reason="feature_code"),
        ]
        for e in events:
            pub.publish(e)
        await rec.wait_for(lambda ms: any(m.topic.endswith("/agents/alice/state")
                                          and m.json()["state"] == "not_ready" for m in ms))
        feed = [m.json()["type"] for m in rec.on("/agents/alice/call")]
        assert feed == ["party.joined", "transcript.partial", "transcript.final", "transcript.final",
                        "party.left", "summary"]
        assert [m.json()["action"] for m in rec.on("/queues/billing/events")] == ["entered"]

        # A late subscriber (a wallboard) gets every agent's last state at once: retained.
        late = Recorder("127.0.0.1", port, (f"{PREFIX}/agents/+/state",), client_id="late")
        await late.start()
        await late.wait_for(lambda ms: len(ms) >= 1)
        [state] = late.messages
        assert state.retain and state.json()["state"] == "not_ready" and state.json()["call_id"] == ""
        await late.stop()
    finally:
        await pub.stop()
        await rec.stop()


@pytest.mark.broker
@needs_mosquitto
async def test_acd_feed_publishes_snapshots_when_they_change(mosquitto, tmp_path):
    port = mosquitto.port
    settings = Settings(data_dir=tmp_path)
    clock = [1000.0]
    store = AcdStore(settings.store_url, clock=lambda: clock[0])
    store.sync_directory(Directory(agents=(make_agent("alice", "pw", skills=("billing",), rounds=1000),
                                           make_agent("bob", "pw", skills=("sales",), rounds=1000))))
    rec = Recorder("127.0.0.1", port, (f"{PREFIX}/queues/+/snapshot", f"{PREFIX}/agents/+/state"))
    await rec.start()
    pub = MqttPublisher(MqttSettings(host="127.0.0.1", port=port, topic_prefix=PREFIX), tmp_path / "o.sqlite")
    await pub.start()
    feed = build_acd_feed(settings, pub, store=store)
    try:
        assert await feed.poll() == 4  # first read: both queues and both agents
        assert await feed.poll() == 0  # nothing moved
        store.enqueue("c1", "billing", "w0")
        clock[0] += 3.0
        store.set_state("alice", AgentStatus.NOT_READY, "break")
        assert await feed.poll() == 2  # billing's snapshot, alice's state
        await rec.wait_for(lambda ms: len(ms) >= 6)
        billing = rec.on("/queues/billing/snapshot")
        assert len(billing) == 2
        # A wallboard opened now gets the last snapshot at once: retained.
        late = Recorder("127.0.0.1", port, (f"{PREFIX}/queues/billing/snapshot",), client_id="late")
        await late.start()
        await late.wait_for(lambda ms: len(ms) >= 1)
        await late.stop()
        assert late.messages[0].retain and late.messages[0].payload == billing[-1].payload
        snap = billing[-1].json()
        assert snap["queue"] == "billing" and snap["waiting"] == 1 and snap["longest_wait_s"] == 3.0
        assert snap["callers"] == [{"call_id": "c1", "status": "waiting", "wait_s": 3.0}]
        assert snap["agents"] == {"not_ready": 1}
        alice = [m.json() for m in rec.on("/agents/alice/state")]
        assert [(a["state"], a["previous"], a["reason"], a["call_id"]) for a in alice] == [
            ("logged_out", "logged_out", "", ""), ("not_ready", "logged_out", "break", "")]
        assert json.loads(rec.on("/queues/sales/snapshot")[0].payload)["waiting"] == 0

        await feed.start()  # the task polls on its own, and stops cleanly
        await feed.stop()
        await feed.stop()
    finally:
        await pub.stop()
        await rec.stop()
        store.close()
