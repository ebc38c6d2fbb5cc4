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
import json
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
from summaries.store import CrmStore
from telephony.acd.directory import Directory, make_agent, save_directory
from telephony.acd.store import AcdStore
from telephony.endpoint import SipEndpoint
from telephony.items import LegEnded
from telephony.settings import SipSettings
from tests.sip_tools import free_port
from tests.test_serve_calls import place_call, short_timeout_flow, wait_record
from tests.test_sip_call import aligned_correlation

pytestmark = [pytest.mark.sip, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

CALLER_SAYS = "Hello, I was charged twice on my last bill and I would like a refund please."
AGENT_SAYS = "I am sorry about that. I have refunded the second charge and I will send you an email today."
CALLER_SPEAKS_AT = 8.0
"""Caller's call time when they start talking (after pressing 0, the hold prompt, the ring)."""
HANGUP_AT = 28.0
AGENT_SPEAKS_AFTER = 13.0
"""Seconds after the agent answers (~4 s into the call) that the agent starts talking."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bridged(tmp_path_factory: pytest.TempPathFactory, tts):
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
        "asr.engine": "whisper", "ivr.flow": str(short_timeout_flow(tmp)), "acd.wrap_up_s": 30.0,
    }, environ={})
    svc = await start_service(settings, log_dir=tmp / "logs")
    caller_wav = tts(CALLER_SAYS, pad_before=CALLER_SPEAKS_AT, pad_after=0.5)
    agent_wav = tts(AGENT_SAYS, voice="en-us+f3", pad_before=0.3)
    try:
        async with SipEndpoint(SipSettings(), port=agent_port, record_dir=tmp / "agent_rec", name="alice") as phone:
            async def agent() -> dict:
                leg = await asyncio.wait_for(phone.accept(), 60)
                answered_t = asyncio.get_running_loop().time()
                frames: list[AudioFrame] = []

                async def speak() -> None:
                    await asyncio.sleep(AGENT_SPEAKS_AFTER)  # the caller speaks first
                    await leg.play(agent_wav)

                speaker = asyncio.create_task(speak())
                while True:
                    item = await leg.inbox.get()
                    if isinstance(item, LegEnded):
                        break
                    if isinstance(item, AudioFrame):
                        frames.append(item)
                speaker.cancel()
                heard = np.concatenate([f.samples() for f in frames]) if frames else np.zeros(0, np.int16)
                return {"heard": heard, "answered_t": answered_t, "recording": leg.recording_path}

            agent_task = asyncio.create_task(agent())
            caller = await place_call(svc.sip_uri, "--dtmf", "0", "--dtmf-first", "--play", str(caller_wav),
                                      "--hangup-after", str(HANGUP_AT), "--record-dir", str(tmp / "caller_rec"))
            agent_result = await asyncio.wait_for(agent_task, 30)
            record = await wait_record(svc, caller["call_id"])
            yield {"svc": svc, "caller": caller, "agent": agent_result, "record": record,
                   "caller_wav": caller_wav, "agent_wav": agent_wav, "tmp": tmp}
    finally:
        await stop_service(svc)


def _stored(svc: Service, call_id: str):
    store = CrmStore(svc.settings.store_url)
    store.start()
    try:
        return store.get_call(call_id)
    finally:
        store.stop()


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

    detail = _stored(bridged["svc"], bridged["caller"]["call_id"])
    assert detail is not None and detail.summary is not None
    finals = [e for e in detail.events if e["type"] == "transcript.final"]
    by_party = {p: " ".join(e["text"].lower() for e in finals if e["party"] == p) for p in ("caller", "agent")}
    assert "refund" in by_party["caller"], by_party
    assert "email" in by_party["agent"] and "refunded" in by_party["agent"], by_party
    joined = [e for e in detail.events if e["type"] == "party.joined"]
    assert joined and joined[0]["agent_id"] == "alice" and joined[0]["queue"] == "agents"
    ratio = detail.summary.talk_ratio
    assert ratio.get("agent", 0) > 0.2 and ratio.get("caller", 0) > 0.2, ratio
    queue = [e["action"] for e in detail.events if e["type"] == "queue.update"]
    assert queue[:3] == ["entered", "ringing", "connected"], queue


async def test_agent_goes_to_wrap_up_after_the_call(bridged) -> None:
    store = AcdStore(bridged["svc"].settings.store_url)
    try:
        row = store.agent("alice")
    finally:
        store.close()
    assert row is not None
    assert row.state is AgentStatus.WRAP_UP and row.calls_taken == 1, row
    print(json.dumps({"agent_state": row.state.value}))
