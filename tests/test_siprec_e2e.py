"""Issue 12's SIPREC "done when", end to end through ``callcenter serve`` (Kamailio front, 2 workers,
whisper, mosquitto): sipp as the PBX's recording client forks a call with speech on both streams
(the caller and agent sides of the ``bridged_refund`` fixture, PCMU), then a re-INVITE whose
metadata puts agent bob on the agent stream (a transfer from alice), then BYE.

Asserted: the session is live on MQTT with both parties' transcripts in alice's call feed while
it runs, and on alice's console page (Chromium, /agent) as caller and agent lines; bob's feed
starts with his ``party.joined`` after the transfer; the recording has the agent on channel 1 and the
caller on channel 2 (by correlation with the sources); the CRM record has both transcripts,
talk ratio, talk-over and both agents; our answer had every ``a=label``, ``recvonly`` and
``+sip.srs`` (sipp checks those itself).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callcenter.settings import load_settings
from live.broker import EmbeddedBroker, find_mosquitto
from live.testing import Recorder, free_port
from speech.ports import consecutive_free_ports
from telephony.acd.directory import Directory, make_agent, save_directory
from telephony.kamailio import kamailio_binary
from tests.e2e_console_support import assert_refund_conversation, stored_call
from tests.sip.rtp_tools import wav_to_pcap
from tests.sip.sipp import have_sipp, run_sipp
from tests.sip.siprec import BOB, SiprecCall, Update, write_scenario
from tests.test_console_agent_browser import sign_in
from tests.test_console_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_serve_calls import short_timeout_flow, wait_record

ROOT = Path(__file__).resolve().parent.parent
SIDES = ROOT / "audio_fixtures" / "sides"
PREFIX = "cc"
TRANSFER_AT_MS = 16_000
UI_TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.sip, pytest.mark.broker, pytest.mark.slow,
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto binary missing (apt-get install mosquitto)"),
    pytest.mark.skipif(not have_sipp(), reason="sipp (sip-tester) not installed"),
]


def envelope(x: np.ndarray, rate: int) -> np.ndarray:
    """20 ms RMS of a mono signal, as a speech-activity curve."""
    n = rate // 50
    x = x[: len(x) // n * n].astype(np.float64).reshape(-1, n)
    return np.sqrt((x ** 2).mean(axis=1))


def best_corr(a: np.ndarray, b: np.ndarray, max_lag: int = 50) -> float:
    """Highest correlation of two envelopes over lags of ±``max_lag`` frames (±1 s)."""
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
        n = min(len(x), len(y))
        if n > 100:
            best = max(best, float(np.corrcoef(x[:n], y[:n])[0, 1]))
    return best


def sip_call_id(messages: str) -> str:
    m = re.search(r"^Call-ID:\s*(\S+)", messages, re.M | re.I)
    assert m, "sipp logged no Call-ID"
    return m.group(1)


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing (apt-get install chromium)")
async def test_siprec_session_with_transfer_through_serve(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.async_api")
    from callcenter.serve import start_service, stop_service

    caller_wav, agent_wav = SIDES / "bridged_refund.caller.wav", SIDES / "bridged_refund.agent.wav"
    total_ms = int(sf.info(str(caller_wav)).duration * 1000) + 2000
    data = tmp_path / "data"
    data.mkdir()
    save_directory(Directory(agents=tuple(make_agent(a, f"{a}-pw", name=a.title(), skills=("agents",), rounds=1000)
                                          for a in ("alice", "bob"))), data / "agents.yaml")
    bport, wport = free_port(), free_port()
    settings = load_settings(environ={}, overrides={
        "data_dir": str(data), "sip.port": free_port(), "sip.worker_base_port": consecutive_free_ports(2),
        "sip.workers": 2, "sip.front": "kamailio", "console.port": wport, "console.token": "siprec-e2e-token",
        "store.api_port": free_port(), "mqtt.host": "127.0.0.1", "mqtt.port": bport, "mqtt.topic_prefix": PREFIX,
        "asr.engine": "whisper", "ivr.flow": str(short_timeout_flow(tmp_path)),
    })
    run = tmp_path / "sipp"
    run.mkdir()
    wav_to_pcap(caller_wav, run / "caller.pcap", codec="PCMU")
    wav_to_pcap(agent_wav, run / "agent.pcap", codec="PCMU")
    scenario = write_scenario(run / "siprec.xml", SiprecCall(
        updates=(Update(TRANSFER_AT_MS, agent=BOB),), end_ms=total_ms - TRANSFER_AT_MS, check_srs=True))

    async with EmbeddedBroker(port=bport, backend="mosquitto"):
        rec = Recorder("127.0.0.1", bport, (f"{PREFIX}/agents/#", f"{PREFIX}/calls/#"))
        await rec.start()
        svc = await start_service(settings, ready_timeout=60)
        try:
            async with playwright.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.goto(f"http://127.0.0.1:{wport}/agent")
                await sign_in(page, "alice", "alice-pw")
                await page.wait_for_selector("#conn.ok")
                sipp = asyncio.create_task(run_sipp(settings.sip.port, run, extra=["-sf", str(scenario)],
                                                    timeout_s=total_ms / 1000 + 30))
                # alice's page opens the recorded call and shows both parties' final transcripts
                await page.wait_for_selector("#call[data-call-id]", timeout=UI_TIMEOUT_MS)
                for party in ("caller", "agent"):
                    await page.locator(f"#transcript .line[data-party={party}][data-final=true]").first.wait_for(
                        timeout=UI_TIMEOUT_MS)
                page_live = not sipp.done()
                await page.screenshot(path=str(tmp_path / "agent-siprec.png"), full_page=True)
                await browser.close()

            def finals(agent: str) -> set[str]:
                return {m.json()["party"] for m in rec.messages if m.topic == f"{PREFIX}/agents/{agent}/call"
                        and m.json()["type"] == "transcript.final" and m.json()["text"].strip()}

            # live: both parties' finals in alice's call feed while the session runs
            async with asyncio.timeout(TRANSFER_AT_MS / 1000 + 60):
                while finals("alice") != {"caller", "agent"} and not sipp.done():  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            live_while_running = not sipp.done()
            result = await sipp
            call_id = sip_call_id(result.messages)
            record = await wait_record(svc, call_id, timeout_s=60)
        finally:
            await stop_service(svc)
        await rec.stop()

    assert result.returncode == 0, (result.errors[-3000:], result.messages[-3000:])
    assert page_live, "alice's console page must show the call while it is live"
    assert live_while_running and finals("alice") == {"caller", "agent"}, [m.topic for m in rec.messages][:40]
    # after the metadata update, bob is on the call: his feed starts with his party.joined
    bob_feed = [m.json() for m in rec.messages if m.topic == f"{PREFIX}/agents/bob/call"]
    assert bob_feed and bob_feed[0]["type"] == "party.joined" and bob_feed[0]["agent_id"] == "bob", bob_feed[:3]
    states = [m.json() for m in rec.messages if m.topic == f"{PREFIX}/calls/{call_id}/state"]
    started = [s for s in states if s["type"] == "call.started"]
    assert started and started[0]["source"] == "siprec"

    # the recording: channel 1 the agent, channel 2 the caller
    assert record["stored"] and record["recording"]
    audio, rate = sf.read(record["recording"], dtype="int16", always_2d=True)
    assert audio.shape[1] == 2 and len(audio) / rate > total_ms / 1000 - 4
    src_caller, r1 = sf.read(str(caller_wav), dtype="int16")
    src_agent, r2 = sf.read(str(agent_wav), dtype="int16")
    ch1, ch2 = envelope(audio[:, 0], rate), envelope(audio[:, 1], rate)
    ec, ea = envelope(src_caller, r1), envelope(src_agent, r2)
    corr = {"ch1_agent": best_corr(ch1, ea), "ch1_caller": best_corr(ch1, ec),
            "ch2_caller": best_corr(ch2, ec), "ch2_agent": best_corr(ch2, ea)}
    assert corr["ch1_agent"] > 0.8 and corr["ch2_caller"] > 0.8, corr
    assert corr["ch1_agent"] > corr["ch1_caller"] + 0.3 and corr["ch2_caller"] > corr["ch2_agent"] + 0.3, corr

    # the CRM record: both transcripts, talk ratio, talk-over, both agents, the transfer
    detail = stored_call(settings.store_url, call_id)
    summary = assert_refund_conversation(detail)
    assert "talk_over_count" in summary and "talk_over_by" in summary
    assert list(summary["queue"]["agent_ids"]) == ["alice", "bob"], summary["queue"]
    left = [e for e in detail.events if e["type"] == "party.left" and e.get("agent_id") == "alice"]
    assert left and left[0]["reason"] == "transfer", left
    print(f"SIPREC e2e: frames dropped {record['frames_dropped']}, received {record['frames_received']}, "
          f"correlations {corr}")


async def test_malformed_one_stream_and_plain_calls_through_serve(tmp_path: Path) -> None:
    """Through the front: a malformed metadata body gets 400 with the reason and no worker dies;
    a one-stream PCMA session is stored as a caller-only SIPREC call; a plain call still works."""
    from callcenter.serve import start_service, stop_service

    settings = load_settings(environ={}, overrides={
        "data_dir": str(tmp_path / "data"), "sip.port": free_port(), "sip.worker_base_port": consecutive_free_ports(2),
        "sip.workers": 2, "sip.front": "kamailio", "console.enabled": False, "mqtt.enabled": False,
        "store.api_port": free_port(), "asr.engine": "none", "ivr.flow": str(short_timeout_flow(tmp_path)),
    })
    svc = await start_service(settings, ready_timeout=60)
    try:
        pids = {s["index"]: s["pid"] for s in svc.worker_stats()}
        bad_dir = tmp_path / "bad"
        bad_dir.mkdir()
        bad = write_scenario(bad_dir / "bad.xml", SiprecCall(
            metadata="<recording xmlns='urn:ietf:params:xml:ns:recording:1'><participant", expect=400))
        bad_run = await run_sipp(settings.sip.port, bad_dir, extra=["-sf", str(bad)], timeout_s=15)

        one_dir = tmp_path / "one"
        one_dir.mkdir()
        wav_to_pcap(SIDES / "bridged_refund.caller.wav", one_dir / "caller.pcap", codec="PCMA")
        one = write_scenario(one_dir / "one.xml", SiprecCall(codecs=("PCMA",), end_ms=6000, check_srs=True))
        one_run = await run_sipp(settings.sip.port, one_dir, extra=["-sf", str(one)], timeout_s=30)
        one_record = await wait_record(svc, sip_call_id(one_run.messages), timeout_s=30)

        plain_run = await run_sipp(settings.sip.port, tmp_path / "plain", builtin="uac", duration_ms=2000,
                                   timeout_s=20)
        plain_record = await wait_record(svc, sip_call_id(plain_run.messages), timeout_s=30)
        after = {s["index"]: (s["pid"], s["state"]) for s in svc.worker_stats()}
    finally:
        await stop_service(svc)

    assert bad_run.returncode == 0, bad_run.messages[-2000:]
    assert "SIP/2.0 400 Bad SIPREC body: metadata is not well-formed XML" in bad_run.messages
    assert after == {i: (pid, "serving") for i, pid in pids.items()}, (pids, after)
    assert one_run.returncode == 0, (one_run.errors[-2000:], one_run.messages[-2000:])
    assert one_record["stored"] and one_record["frames_dropped"] == 0
    rec, _ = sf.read(one_record["recording"], dtype="int16", always_2d=True)
    assert not rec[:, 0].any() and rec[:, 1].any()  # no agent stream: channel 1 silent
    detail = stored_call(settings.store_url, sip_call_id(one_run.messages))
    started = [e for e in detail.events if e["type"] == "call.started"]
    assert started and started[0]["source"] == "siprec"
    assert not [e for e in detail.events if e["type"] == "party.joined"]
    assert plain_run.returncode == 0 and plain_record["stored"] and plain_record["ivr"] is not None
