"""SIPREC recording sessions on one endpoint, with sipp as the recording client (no front).

sipp sends the INVITE with ``Require: siprec`` (the endpoint supports the option tag), plays the
caller side of a fixture on stream 1 and the agent side on stream 2, and checks that our answer
carries every ``a=label`` and ``recvonly``. Asserted here: which party each stream's frames
carry (by correlation with the sources), one-stream sessions, PCMU on one stream with PCMA on
the other, metadata updates (a transfer) and ``a=inactive`` (a hold) through ``SiprecSession``,
and the SIP error a malformed body gets while the endpoint goes on taking calls.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callcenter.settings import SipSettings, load_settings
from callcenter.siprec_session import SiprecSession
from speech.events import CallStarted, HoldEnded, HoldStarted, PartyJoined, PartyLeft
from speech.frames import AudioFrame, Party
from telephony import SipEndpoint
from telephony.items import HoldChanged, LegEnded, MetadataChanged
from telephony.net import free_port
from telephony.siprec import SiprecRules
from tests.sip.rtp_tools import wav_to_pcap
from tests.sip.sipp import have_sipp, run_sipp
from tests.sip.siprec import BOB, SiprecCall, Update, write_scenario
from tests.test_siprec_e2e import best_corr, envelope

SIDES = Path(__file__).resolve().parent.parent / "audio_fixtures" / "sides"
CALLER_WAV = SIDES / "bridged_escalation.caller.wav"
AGENT_WAV = SIDES / "bridged_escalation.agent.wav"
CALL_MS = 9000

pytestmark = [pytest.mark.sip, pytest.mark.slow, pytest.mark.skipif(not have_sipp(), reason="sipp (sip-tester) not installed")]


@pytest.fixture
async def endpoint(tmp_path: Path):
    ep = SipEndpoint(SipSettings(), port=free_port(), record_dir=tmp_path / "rec", name="srs",
                     siprec=SiprecRules(agent_ids=frozenset({"alice", "bob"})))
    await ep.start()
    yield ep
    await ep.stop()


def pcaps(run: Path, codecs: tuple[str, ...]) -> None:
    """The fixture's sides as pcaps no longer than a call here (a sender never outlives it)."""
    run.mkdir(parents=True, exist_ok=True)
    wav_to_pcap(CALLER_WAV, run / "caller.pcap", codec=codecs[0], max_s=CALL_MS / 1000)
    if len(codecs) > 1:
        wav_to_pcap(AGENT_WAV, run / "agent.pcap", codec=codecs[1], max_s=CALL_MS / 1000)


async def drain(leg, timeout_s: float = 40.0) -> list:
    items = []
    async with asyncio.timeout(timeout_s):
        while True:
            item = await leg.inbox.get()
            items.append(item)
            if isinstance(item, LegEnded):
                return items


def party_audio(items: list, party: Party) -> np.ndarray:
    pcm = b"".join(i.pcm for i in items if isinstance(i, AudioFrame) and i.party is party)
    return np.frombuffer(pcm, dtype="<i2")


def source_env(wav: Path, seconds: float) -> np.ndarray:
    x, rate = sf.read(str(wav), dtype="int16")
    return envelope(x[: int(seconds * rate)], rate)


async def run_session(endpoint: SipEndpoint, run: Path, call: SiprecCall):
    sipp = asyncio.create_task(run_sipp(endpoint.port, run, extra=["-sf", str(write_scenario(run / "sc.xml", call))],
                                        timeout_s=CALL_MS / 1000 + 25))
    leg = await asyncio.wait_for(endpoint.accept(), 10)
    return sipp, leg


@pytest.mark.parametrize("codecs", [("PCMU", "PCMU"), ("PCMU", "PCMA")])
async def test_two_streams_reach_python_as_caller_and_agent(endpoint, tmp_path: Path, codecs) -> None:
    run = tmp_path / "sipp"
    pcaps(run, codecs)
    sipp, leg = await run_session(endpoint, run, SiprecCall(codecs=codecs, end_ms=CALL_MS))
    items = await drain(leg)
    result = await sipp
    assert result.returncode == 0, (result.errors[-2000:], result.messages[-2000:])
    assert leg.siprec is not None and [r.party for r in leg.stream_roles] == [Party.CALLER, Party.AGENT]
    assert [r.agent_id for r in leg.stream_roles] == ["", "alice"]
    assert set(leg.codec.split(",")) == {f"{c}/8000" for c in codecs}, leg.codec
    # a sendonly offer is pjsua's "remote hold": never a hold for a recording session
    assert not [i for i in items if isinstance(i, HoldChanged)]
    caller, agent = party_audio(items, Party.CALLER), party_audio(items, Party.AGENT)
    seconds = CALL_MS / 1000 - 1
    assert len(caller) / 16000 > seconds and abs(len(caller) - len(agent)) < 16000 * 0.2
    ec, ea = source_env(CALLER_WAV, seconds), source_env(AGENT_WAV, seconds)
    c, a = envelope(caller, 16000), envelope(agent, 16000)
    corr = (best_corr(c, ec), best_corr(a, ea), best_corr(c, ea), best_corr(a, ec))
    assert corr[0] > 0.8 and corr[1] > 0.8 and corr[2] < 0.5 and corr[3] < 0.5, corr
    # both streams on one clock: frame times of each party advance together
    last = {p: max(i.timestamp for i in items if isinstance(i, AudioFrame) and i.party is p) for p in Party}
    assert abs(last[Party.CALLER] - last[Party.AGENT]) < 0.1, last
    # the recording: agent on channel 1, caller on channel 2
    assert leg.recording_path is not None
    rec, rate = sf.read(str(leg.recording_path), dtype="int16", always_2d=True)
    assert best_corr(envelope(rec[:, 0], rate), ea) > 0.8 and best_corr(envelope(rec[:, 1], rate), ec) > 0.8
    assert leg.frames_dropped == 0


async def test_one_stream_session_is_the_caller_alone(endpoint, tmp_path: Path) -> None:
    run = tmp_path / "sipp"
    pcaps(run, ("PCMU",))
    sipp, leg = await run_session(endpoint, run, SiprecCall(codecs=("PCMU",), end_ms=CALL_MS))
    items = await drain(leg)
    result = await sipp
    assert result.returncode == 0, (result.errors[-2000:], result.messages[-2000:])
    assert [r.party for r in leg.stream_roles] == [Party.CALLER]
    assert len(party_audio(items, Party.AGENT)) == 0
    caller = party_audio(items, Party.CALLER)
    assert best_corr(envelope(caller, 16000), source_env(CALLER_WAV, CALL_MS / 1000 - 1)) > 0.8
    rec, _ = sf.read(str(leg.recording_path), dtype="int16", always_2d=True)
    assert rec.shape[1] == 2 and not rec[:, 0].any() and rec[:, 1].any()


async def test_session_turns_updates_into_transfer_and_hold_events(endpoint, tmp_path: Path) -> None:
    """Metadata moving the agent stream to bob is a transfer; all streams inactive is a hold."""
    run = tmp_path / "sipp"
    pcaps(run, ("PCMU", "PCMU"))
    call = SiprecCall(updates=(Update(2500, agent=BOB), Update(1500, direction="inactive"), Update(2000)),
                      end_ms=2000)
    sipp, leg = await run_session(endpoint, run, call)
    settings = load_settings(environ={}, overrides={"data_dir": str(tmp_path / "data"), "asr.engine": "none",
                                                    "mqtt.enabled": False})
    events: list = []
    session = SiprecSession(leg, settings, None, sinks=[events.append])
    outcome = await asyncio.wait_for(session.run(), 40)
    result = await sipp
    assert result.returncode == 0, (result.errors[-2000:], result.messages[-2000:])
    state = [e for e in events if isinstance(e, CallStarted | PartyJoined | PartyLeft | HoldStarted | HoldEnded)]
    kinds = [(type(e).__name__, getattr(e, "agent_id", ""), getattr(e, "reason", "")) for e in state]
    assert kinds == [("CallStarted", "", ""), ("PartyJoined", "alice", ""), ("PartyLeft", "alice", "transfer"),
                     ("PartyJoined", "bob", ""), ("HoldStarted", "", ""), ("HoldEnded", "", ""),
                     ("PartyLeft", "bob", "ended")], kinds
    started = state[0]
    assert isinstance(started, CallStarted) and started.source == "siprec"
    assert started.parties == ("caller", "agent") and started.caller == "sip:+15550001111@pbx.example.com"
    joined_bob, held, resumed = state[3], state[4], state[5]
    assert joined_bob.t == pytest.approx(2.5, abs=0.6) and held.t == pytest.approx(4.0, abs=0.8)
    assert isinstance(resumed, HoldEnded) and resumed.duration == pytest.approx(2.0, abs=0.6)
    assert all(e.call_id == leg.call_id for e in state)
    assert outcome.frames_dropped == 0 and outcome.end_reason == "hangup"


async def test_metadata_update_in_an_update_request(endpoint, tmp_path: Path) -> None:
    """RFC 7866 lets the SRC send new metadata in UPDATE as well as re-INVITE."""
    run = tmp_path / "sipp"
    pcaps(run, ("PCMU", "PCMU"))
    sipp, leg = await run_session(endpoint, run, SiprecCall(updates=(Update(2000, agent=BOB, method="UPDATE"),),
                                                          end_ms=2000))
    items = await drain(leg)
    result = await sipp
    assert result.returncode == 0, (result.errors[-2000:], result.messages[-2000:])
    changes = [i for i in items if isinstance(i, MetadataChanged)]
    assert len(changes) == 1 and [(r.party, r.agent_id) for r in changes[0].roles] == [
        (Party.CALLER, ""), (Party.AGENT, "bob")]
    assert changes[0].t == pytest.approx(2.0, abs=0.6)
    agent = [i for i in items if isinstance(i, AudioFrame) and i.party is Party.AGENT and i.timestamp > 2.5]
    assert agent and max(np.abs(i.samples()).max() for i in agent) > 1000  # the agent stream goes on


async def test_malformed_metadata_gets_400_with_a_reason_and_the_endpoint_goes_on(endpoint, tmp_path: Path) -> None:
    run = tmp_path / "bad"
    pcaps(run, ("PCMU", "PCMU"))
    bad = SiprecCall(metadata="<recording xmlns='urn:ietf:params:xml:ns:recording:1'><participant", expect=400)
    result = await run_sipp(endpoint.port, run, extra=["-sf", str(write_scenario(run / "bad.xml", bad))],
                            timeout_s=15)
    assert result.returncode == 0, (result.errors[-2000:], result.messages[-2000:])
    assert "SIP/2.0 400 Bad SIPREC body: metadata is not well-formed XML" in result.messages
    assert endpoint.refused.get(400) == 1
    # a plain call right after is answered as usual (not a recording session)
    run2 = tmp_path / "plain"
    sipp = asyncio.create_task(run_sipp(endpoint.port, run2, builtin="uac", duration_ms=1000, timeout_s=15))
    leg = await asyncio.wait_for(endpoint.accept(), 10)
    assert leg.siprec is None
    items = await drain(leg, 20)
    assert (await sipp).returncode == 0
    assert not [i for i in items if isinstance(i, MetadataChanged)]
