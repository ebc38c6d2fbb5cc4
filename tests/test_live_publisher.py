"""MqttPublisher and Outbox against a real mosquitto on a private port."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from callcenter.settings import MqttSettings
from live.broker import EmbeddedBroker, find_mosquitto
from live.outbox import Outbox
from live.publisher import Backoff, MqttPublisher
from live.testing import Recorder, free_port, sample_call
from live.topics import Message, Topics, messages_for, qos_for
from speech.events import EventType, PartialTranscript

pytestmark = pytest.mark.broker

needs_mosquitto = pytest.mark.skipif(
    find_mosquitto() is None, reason="mosquitto binary missing (apt-get install mosquitto)"
)

PREFIX = "cctest"


def settings(port: int, **kw) -> MqttSettings:
    return MqttSettings(host="127.0.0.1", port=port, topic_prefix=PREFIX, **kw)


@pytest.fixture
async def mosquitto(tmp_path):
    broker = EmbeddedBroker(port=free_port(), backend="mosquitto",
                            persistence_dir=tmp_path / "mosq")
    if find_mosquitto() is None:
        pytest.skip("mosquitto binary missing (apt-get install mosquitto)")
    await broker.start()
    yield broker
    await broker.stop()


def test_topics_and_qos_of_each_event():
    topics = Topics(PREFIX)
    by_type = {e.type: messages_for(e, topics) for e in sample_call("c1")}
    final = by_type[EventType.TRANSCRIPT_FINAL]
    assert [m.topic for m in final] == [f"{PREFIX}/calls/c1/transcript", f"{PREFIX}/calls/c1/events"]
    assert [m.qos for m in final] == [1, 1]
    partial = by_type[EventType.TRANSCRIPT_PARTIAL]
    assert partial[0].qos == 0 and partial[1].qos == 1  # `events` is lossless
    assert by_type[EventType.TONE_UPDATE][0].qos == 0
    assert by_type[EventType.TONE_UPDATE][0].topic.endswith("/tone")
    for t in (EventType.TONE_ALERT, EventType.DEAD_AIR_STARTED, EventType.TALK_OVER):
        assert by_type[t][0].topic.endswith("/alerts") and by_type[t][0].qos == 1
    assert by_type[EventType.DTMF][0].topic.endswith("/dtmf")
    assert by_type[EventType.PLAYBACK_STARTED][0].topic.endswith("/ivr")
    assert by_type[EventType.SUMMARY][0].topic.endswith("/summary")
    state = by_type[EventType.CALL_STARTED][0]
    assert state.topic.endswith("/state") and state.retain and state.qos == 1
    assert [m.topic for m in by_type[EventType.SPEECH_STARTED]] == [f"{PREFIX}/calls/c1/events"]
    assert qos_for(PartialTranscript(call_id="c1")) == 0
    with pytest.raises(ValueError):
        topics.call("a/b", "state")
    assert json.loads(final[0].payload)["text"].endswith("want a manager")


def test_outbox_fifo_overflow_and_restart(tmp_path, caplog):
    path = tmp_path / "o.sqlite"
    box = Outbox(path, max_items=5)
    box.append([Message(f"t/{i}", b"x", 1, False) for i in range(3)])
    assert box.append([Message(f"t/{i}", b"x", 0, i == 4) for i in range(3, 8)]) == 3
    assert "dropped the 3 oldest" in caplog.text
    rows = box.peek(10)
    assert [m.topic for _, m in rows] == [f"t/{i}" for i in range(3, 8)]
    assert [m.retain for _, m in rows] == [False, True, False, False, False]
    box.delete(rows[0][0])
    box.close()
    again = Outbox(path, max_items=5)
    assert again.pending == 4 and again.dropped == 3
    assert [m.topic for _, m in again.peek(10)] == [f"t/{i}" for i in range(4, 8)]
    again.close()


@needs_mosquitto
async def test_call_events_reach_subscriber_in_order(mosquitto, tmp_path):
    rec = Recorder("127.0.0.1", mosquitto.port, (f"{PREFIX}/#",))
    await rec.start()
    pub = MqttPublisher(settings(mosquitto.port), tmp_path / "out.sqlite")
    await pub.start()
    events = sample_call("c1")
    for e in events:
        pub.publish(e)
    await rec.wait_for(lambda ms: len([m for m in ms if m.topic.endswith("/events")]) == len(events))
    await pub.stop()
    await rec.stop()

    stream = [m.json() for m in rec.on("/c1/events")]
    assert stream == [e.to_dict() for e in events]
    assert all(m.qos == 1 for m in rec.on("/events"))
    transcript = rec.on("/c1/transcript")
    assert [m.json()["type"] for m in transcript] == ["transcript.partial"] * 2 + ["transcript.final"] * 3
    assert [m.qos for m in transcript] == [0, 0, 1, 1, 1]
    alerts = [m.json()["type"] for m in rec.on("/c1/alerts")]
    assert alerts == ["dead_air.started", "dead_air.ended", "talk_over", "tone.alert"]
    assert [m.json()["digit"] for m in rec.on("/c1/dtmf")] == ["2"]
    assert rec.on("/c1/summary")[0].json()["summary"]["outcome"] == "escalated"
    active = [m.json() for m in rec.on("/active_calls")]
    assert [[c["call_id"] for c in a] for a in active] == [["c1"], []]
    assert pub.stats().published == len(rec.messages) and pub.pending == 0

    # A late subscriber gets the retained last state and the retained active-call list.
    pub2 = MqttPublisher(settings(mosquitto.port), tmp_path / "out2.sqlite")
    await pub2.start()
    pub2.publish(sample_call("c2")[0])
    late = Recorder("127.0.0.1", mosquitto.port, (f"{PREFIX}/#",), client_id="late")
    await asyncio.sleep(0.3)
    await late.start()
    await late.wait_for(lambda ms: len(ms) >= 3)
    await late.stop()
    await pub2.stop()
    retained = {m.topic: m.json() for m in late.messages if m.retain}
    assert retained[f"{PREFIX}/calls/c1/state"]["type"] == "call.ended"
    assert retained[f"{PREFIX}/calls/c2/state"]["type"] == "call.started"
    assert [c["call_id"] for c in retained[f"{PREFIX}/active_calls"]] == ["c2"]


@needs_mosquitto
async def test_broker_restart_mid_call_loses_nothing(mosquitto, tmp_path):
    """Stop the broker mid-call, keep publishing, restart it on the same port."""
    rec = Recorder("127.0.0.1", mosquitto.port, (f"{PREFIX}/calls/+/events",), persistent=True,
                   client_id="restart-recorder")
    await rec.start()
    pub = MqttPublisher(settings(mosquitto.port), tmp_path / "out.sqlite",
                        backoff=Backoff(0.05, 0.3))
    await pub.start()
    events = [e for e in sample_call("c1")]
    # Many small partials so the outage falls in the middle of a busy stream.
    events = events[:8] + [
        PartialTranscript(call_id="c1", t=5.0 + i / 100, text=f"w{i}") for i in range(300)
    ] + events[8:]
    half = len(events) // 2
    for e in events[:half]:
        pub.publish(e)
        await asyncio.sleep(0)
    await rec.wait_for(lambda ms: len(ms) >= 5)
    await mosquitto.stop()
    assert 5 <= len(rec.messages) < len(events)
    for e in events[half:]:
        pub.publish(e)  # analysis keeps going while the broker is down
    assert pub.pending > 0
    await asyncio.sleep(0.5)
    await mosquitto.start()
    await rec.wait_for(lambda ms: len({m.payload for m in ms}) >= len(events), timeout=30)
    # The subscriber can see the last message before its PUBACK reaches the publisher.
    for _ in range(100):
        if pub.pending == 0:
            break
        await asyncio.sleep(0.05)
    stats = pub.stats()
    await pub.stop()
    await rec.stop()

    got = [m.json() for m in rec.messages]
    dedup = [d for i, d in enumerate(got) if i == 0 or d != got[i - 1]]
    assert dedup == [e.to_dict() for e in events]
    assert len(got) - len(dedup) <= 1  # at most the one message whose PUBACK was lost
    assert stats.reconnects >= 1 and stats.pending == 0 and stats.dropped == 0


@needs_mosquitto
async def test_outbox_survives_publisher_restart(mosquitto, tmp_path):
    dead_port = free_port()
    path = tmp_path / "out.sqlite"
    events = sample_call("c9")
    pub = MqttPublisher(settings(dead_port), path, backoff=Backoff(0.05, 0.1))
    await pub.start()
    for e in events:
        pub.publish(e)
    await asyncio.sleep(0.3)
    assert pub.stats().reconnects >= 1
    await pub.stop(drain=True, timeout=0.2)
    await pub.stop()  # idempotent

    rec = Recorder("127.0.0.1", mosquitto.port, (f"{PREFIX}/calls/+/events",), client_id="r9")
    await rec.start()
    pub2 = MqttPublisher(settings(mosquitto.port), path)
    assert pub2.pending > len(events)  # every topic of every event, plus active-call lists
    assert pub2.active_calls == []  # c9 started and ended before the restart
    await pub2.start()
    await rec.wait_for(lambda ms: len(ms) == len(events))
    await pub2.stop()
    await rec.stop()
    assert [m.json() for m in rec.messages] == [e.to_dict() for e in events]


async def test_publish_never_waits_for_a_dead_broker(tmp_path):
    cfg = SimpleNamespace(host="127.0.0.1", port=free_port(), username=None, password=None,
                          tls=False, ca_file=None, topic_prefix=PREFIX, outbox_max=50)
    pub = MqttPublisher(cfg, tmp_path / "o.sqlite", backoff=Backoff(0.05, 0.1))
    await pub.start()
    for i in range(40):
        pub.publish(PartialTranscript(call_id="c", t=i, text="x"))
    stats = pub.stats()
    assert stats.pending == 50 and stats.dropped == 30 and not stats.connected
    await pub.stop(drain=False)


async def test_embedded_amqtt_round_trip(tmp_path):
    port = free_port()
    async with EmbeddedBroker(port=port, backend="amqtt") as broker:
        assert broker.running
        rec = Recorder("127.0.0.1", port, (f"{PREFIX}/#",), client_id="amqtt-rec")
        await rec.start()
        pub = MqttPublisher(settings(port), tmp_path / "o.sqlite")
        await pub.start()
        events = sample_call("e1")
        for e in events:
            pub.publish(e)
        await rec.wait_for(lambda ms: len(rec.on("/events")) == len(events))
        await pub.stop()
        await rec.stop()
    assert not broker.running
    assert [m.json() for m in rec.on("/events")] == [e.to_dict() for e in events]


@needs_mosquitto
async def test_embedded_auto_prefers_mosquitto(tmp_path):
    port = free_port()
    async with EmbeddedBroker(port=port) as broker:
        assert broker.backend == "mosquitto"
        rec = Recorder("127.0.0.1", port, ("x/#",), client_id="auto-rec")
        await rec.start()
        pub = MqttPublisher(MqttSettings(topic_prefix="x"), tmp_path / "o.sqlite", port=port)
        await pub.start()
        pub.publish(sample_call("a1")[0])
        await rec.wait_for(lambda ms: len(ms) >= 3)
        await pub.stop()
        await rec.stop()
    assert {m.topic for m in rec.messages} == {"x/calls/a1/state", "x/calls/a1/events", "x/active_calls"}


@needs_mosquitto
async def test_publish_from_another_thread(mosquitto, tmp_path):
    rec = Recorder("127.0.0.1", mosquitto.port, (f"{PREFIX}/calls/+/events",), client_id="thr")
    await rec.start()
    pub = MqttPublisher(settings(mosquitto.port), tmp_path / "o.sqlite")
    await pub.start()
    events = sample_call("t1")

    def worker() -> None:  # e.g. a detector thread
        for e in events:
            pub.publish(e)

    await asyncio.to_thread(worker)
    await rec.wait_for(lambda ms: len(ms) == len(events))
    await pub.stop()
    await rec.stop()
    assert [m.json() for m in rec.messages] == [e.to_dict() for e in events]
