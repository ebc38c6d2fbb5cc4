"""A caller presses 0, waits in the agents queue and is bridged to an agent's SIP phone.

Real SIP on 127.0.0.1: the service (one worker on the dialed address, whisper), a scripted
caller process (``telephony.test_caller``) and an agent phone in this process (a pjsua2
``SipEndpoint`` at the agent's static contact from the agents file) that answers, plays its
side and records what it hears. Checked: both hear each other (waveform correlation through
the bridge), the pipeline heard both parties (transcripts), the record has both channels, the
ACD moved the agent ringing → on call → wrap-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from callcenter.serve import Service, start_service, stop_service
from callcenter.settings import load_settings
from speech.events import AgentStatus
from speech.frames import AudioFrame
from speech.ports import consecutive_free_ports
from telephony.acd.directory import Directory, make_agent, save_directory
from telephony.acd.store import AcdStore
from telephony.endpoint import SipEndpoint
from telephony.items import LegEnded
from telephony.settings import SipSettings
from tests.sip_tools import free_port
from tests.test_serve_calls import place_call, short_timeout_flow, stored, wait_record
from tests.test_sip_call import aligned_correlation

pytestmark = [pytest.mark.sip, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

CALLER_SAYS = "Hello, I was charged twice on my last bill and I would like a refund please."
AGENT_SAYS = "I am sorry about that. I have refunded the second charge and I will send you an email today."
CALLER_SPEAKS_AT = 8.0
"""Caller's call time when they start talking (after pressing 0, the hold prompt, the ring)."""
HANGUP_AT = 28.0
WRAP_UP_S = 3.0
RING_TIMEOUT_S = 4.0
HOLD_S = 4.0
AGENT_SPEAKS_AFTER = 13.0
"""Seconds after the agent answers (~4 s into the call) that the agent starts talking."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory):
    """One service (one worker, whisper) and alice's phone at her static contact."""
    tmp = tmp_path_factory.mktemp("bridge")
    agent_port = free_port()
    data = tmp / "data"
    data.mkdir()
    save_directory(Directory(agents=(make_agent("alice", "secret-alice", skills=["agents"], rounds=1000,
                                                contact=f"sip:alice@127.0.0.1:{agent_port}"),)),
                   data / "agents.yaml")
    settings = load_settings(overrides={
        "data_dir": str(data), "sip.port": free_port(), "sip.worker_base_port": consecutive_free_ports(1),
        "sip.workers": 1, "sip.front": "none", "mqtt.enabled": False, "console.enabled": False,
        "asr.engine": "whisper", "ivr.flow": str(short_timeout_flow(tmp)),
        "acd.wrap_up_s": WRAP_UP_S, "acd.ring_timeout_s": RING_TIMEOUT_S,
    }, environ={})
    svc = await start_service(settings, log_dir=tmp / "logs")
    try:
        async with SipEndpoint(SipSettings(), port=agent_port, record_dir=tmp / "agent_rec", name="alice") as phone:
            yield {"svc": svc, "phone": phone, "tmp": tmp}
    finally:
        await stop_service(svc)


async def agent_phone(phone: SipEndpoint, *, play: Path | None = None, play_after: float = 0.0,
                      hold_at: float | None = None, hold_for: float = 0.0,
                      hangup_at: float | None = None) -> dict:
    """Answer the next call on alice's phone and act out a script (seconds after answer);
    returns what the phone heard."""
    leg = await asyncio.wait_for(phone.accept(), 60)
    frames: list[AudioFrame] = []

    async def script() -> None:
        if play is not None:
            await asyncio.sleep(play_after)
            await leg.play(play)
        if hold_at is not None:
            await asyncio.sleep(max(0.0, hold_at - leg.call_time))
            await leg.hold()
            await asyncio.sleep(hold_for)
            await leg.unhold()
        if hangup_at is not None:
            await asyncio.sleep(max(0.0, hangup_at - leg.call_time))
            await leg.hangup()

    actor = asyncio.create_task(script())
    while True:
        item = await leg.inbox.get()
        if isinstance(item, LegEnded):
            break
        if isinstance(item, AudioFrame):
            frames.append(item)
    actor.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await actor
    heard = np.concatenate([f.samples() for f in frames]) if frames else np.zeros(0, np.int16)
    return {"heard": heard}


async def wait_ready(svc: Service, agent_id: str = "alice", timeout_s: float = 20) -> None:
    store = AcdStore(svc.settings.store_url)
    try:
        deadline = time.monotonic() + timeout_s
        while (row := store.agent(agent_id)) is None or row.state is not AgentStatus.READY:
            assert time.monotonic() < deadline, row
            await asyncio.sleep(0.3)
    finally:
        store.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bridged(env, tts):
    svc, tmp = env["svc"], env["tmp"]
    caller_wav = tts(CALLER_SAYS, pad_before=CALLER_SPEAKS_AT, pad_after=0.5)
    agent_wav = tts(AGENT_SAYS, voice="en-us+f3", pad_before=0.3)
    await wait_ready(svc)
    agent_task = asyncio.create_task(agent_phone(env["phone"], play=agent_wav, play_after=AGENT_SPEAKS_AFTER))
    caller = await place_call(svc.sip_uri, "--dtmf", "0", "--dtmf-first", "--play", str(caller_wav),
                              "--hangup-after", str(HANGUP_AT), "--record-dir", str(tmp / "caller_rec"))
    agent_result = await asyncio.wait_for(agent_task, 30)
    record = await wait_record(svc, caller["call_id"])
    return {"svc": svc, "caller": caller, "agent": agent_result, "record": record,
            "caller_wav": caller_wav, "agent_wav": agent_wav, "tmp": tmp}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def held(env, bridged, tts):
    """The agent puts the caller on hold for HOLD_S, then hangs up: the caller's call ends."""
    svc, tmp = env["svc"], env["tmp"]
    await wait_ready(svc)
    agent_task = asyncio.create_task(agent_phone(env["phone"], hold_at=3.0, hold_for=HOLD_S, hangup_at=3.0 + HOLD_S + 3.0))
    caller = await place_call(svc.sip_uri, "--dtmf", "0", "--hangup-after", "40",
                              "--record-dir", str(tmp / "held_rec"))
    await asyncio.wait_for(agent_task, 30)
    record = await wait_record(svc, caller["call_id"])
    return {"caller": caller, "record": record, "detail": stored(svc, caller["call_id"])}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def unanswered(env, held):
    """Alice's phone rings and nobody answers; the caller gives up in the queue."""
    svc = env["svc"]
    await wait_ready(svc)
    caller = await place_call(svc.sip_uri, "--dtmf", "0", "--hangup-after", str(RING_TIMEOUT_S + 9))
    record = await wait_record(svc, caller["call_id"])
    return {"caller": caller, "record": record, "detail": stored(svc, caller["call_id"])}


async def test_agent_hears_the_caller_through_the_bridge(bridged) -> None:
    ref, rate = sf.read(str(bridged["caller_wav"]), dtype="int16")
    corr = aligned_correlation(ref, bridged["agent"]["heard"], rate)
    assert corr > 0.8, corr


async def test_caller_hears_the_agent_through_the_bridge(bridged) -> None:
    recs = sorted((bridged["tmp"] / "caller_rec").glob("*.wav"))
    assert recs, "the test caller recorded nothing"
    audio, rate = sf.read(str(recs[0]), dtype="int16")
    heard = audio[:, 1] if audio.ndim == 2 else audio
    ref, ref_rate = sf.read(str(bridged["agent_wav"]), dtype="int16")
    assert ref_rate == rate
    corr = aligned_correlation(ref, heard, rate)
    assert corr > 0.8, corr


async def test_record_has_both_parties(bridged) -> None:
    record = bridged["record"]
    assert record["stored"], record
    info = sf.info(record["recording"])
    assert info.channels == 2
    audio, rate = sf.read(record["recording"], dtype="int16")
    agent_ch, caller_ch = audio[:, 0].astype(np.float64), audio[:, 1].astype(np.float64)
    late = slice(int(rate * 6), None)
    # the agent's speech is in channel 1 (with the prompts), the caller's in channel 2
    ref_agent, _ = sf.read(str(bridged["agent_wav"]), dtype="int16")
    assert aligned_correlation(ref_agent, agent_ch[late].astype(np.int16), rate) > 0.7
    assert np.sqrt(np.mean(caller_ch[late] ** 2)) > 100

    detail = stored(bridged["svc"], bridged["caller"]["call_id"])
    assert detail is not None and detail.summary is not None
    finals = [e for e in detail.events if e["type"] == "transcript.final"]
    by_party = {p: " ".join(e["text"].lower() for e in finals if e["party"] == p) for p in ("caller", "agent")}
    # word stems, not exact forms: tiny.en's int8 kernels hear "I have refunded" as "I can refund
    # it" on some CPUs; "email" is the agent's alone, so a swapped or mixed channel still fails
    assert "refund" in by_party["caller"] and "email" not in by_party["caller"], by_party
    assert "email" in by_party["agent"] and "refund" in by_party["agent"], by_party
    joined = [e for e in detail.events if e["type"] == "party.joined"]
    assert joined and joined[0]["agent_id"] == "alice" and joined[0]["queue"] == "agents"
    ratio = detail.summary.talk_ratio
    assert ratio.get("agent", 0) > 0.2 and ratio.get("caller", 0) > 0.2, ratio
    queue = [e["action"] for e in detail.events if e["type"] == "queue.update"]
    assert queue[:3] == ["entered", "ringing", "connected"], queue


async def test_agent_goes_to_wrap_up_after_the_call(bridged) -> None:
    detail = stored(bridged["svc"], bridged["caller"]["call_id"])
    states = [e["state"] for e in detail.events if e["type"] == "agent.state"]
    assert states == ["ringing", "on_call", "wrap_up"], states
    left = [e for e in detail.events if e["type"] == "party.left"]
    assert left and left[0]["reason"] == "ended"  # the caller hung up; the service ended the agent's leg


async def test_agent_hold_plays_music_to_the_caller_and_is_not_dead_air(held) -> None:
    events = held["detail"].events
    starts = [e for e in events if e["type"] == "hold.started"]
    ends = [e for e in events if e["type"] == "hold.ended"]
    assert len(starts) == 1 and len(ends) == 1, [e["type"] for e in events]
    assert ends[0]["duration"] == pytest.approx(HOLD_S, abs=1.5)
    h0, h1 = starts[0]["t"], ends[0]["t"]
    for e in events:
        if e["type"] == "dead_air.started":
            assert not (h0 <= e["t"] <= h1), (e, h0, h1)
    summary = held["detail"].summary
    assert summary is not None and summary.to_dict()["hold"]["count"] == 1
    # the caller heard the music while held (their recording: channel 2 is what they heard)
    recs = sorted(Path(held["caller"]["recording_path"]).parent.glob("*.wav"))
    audio, rate = sf.read(str(recs[0]), dtype="int16")
    during = audio[int(rate * (h0 + 0.5)): int(rate * (h1 - 0.5)), 1].astype(np.float64)
    assert np.sqrt(np.mean(during**2)) > 300


async def test_agent_hanging_up_ends_the_callers_call(held) -> None:
    assert held["caller"]["hangup_by"] == "remote", held["caller"]
    left = [e for e in held["detail"].events if e["type"] == "party.left"]
    assert left and left[0]["reason"] == "hangup"


async def test_unanswered_agent_is_set_not_ready_and_the_abandoned_wait_is_counted(env, unanswered) -> None:
    events = unanswered["detail"].events
    queue = [(e["action"], e.get("agent_id", "")) for e in events if e["type"] == "queue.update"]
    assert ("ringing", "alice") in queue and ("no_answer", "alice") in queue, queue
    assert queue[-1][0] == "abandoned"
    abandoned = [e for e in events if e["type"] == "queue.update" and e["action"] == "abandoned"][0]
    assert abandoned["wait_s"] > RING_TIMEOUT_S
    store = AcdStore(env["svc"].settings.store_url)
    try:
        row = store.agent("alice")
        assert row is not None and (row.state, row.reason) == (AgentStatus.NOT_READY, "no_answer")
        assert unanswered["caller"]["call_id"] in [a["call_id"] for a in store.abandoned("agents")]
    finally:
        store.close()
