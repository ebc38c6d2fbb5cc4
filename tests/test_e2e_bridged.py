"""Issue 11's "done when", end to end: a caller dials the service, presses 0 and reaches a registered
agent; the agent's page in Chromium and MQTT show both parties' transcripts while the call is
live; the stored record has both channels, both transcripts, talk ratio, talk-over and hold.

Everything is real on 127.0.0.1: ``callcenter serve`` (Kamailio front with its registrar, 2
workers, whisper, mosquitto, the console), the agent's phone (``telephony.test_agent``, playing
the agent side of the ``bridged_refund`` fixture, with a hold), the caller
(``telephony.test_caller``, playing the caller side), Chromium logged in as the agent.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
import soundfile as sf

from callcenter.settings import load_settings
from live.broker import EmbeddedBroker
from live.testing import Recorder, free_port
from speech.ports import consecutive_free_ports
from telephony.acd.directory import Directory, make_agent, save_directory
from telephony.kamailio import kamailio_binary
from tests.e2e_console_support import (
    assert_refund_conversation,
    needs_chromium,
    needs_mosquitto,
    stored_call,
)
from tests.test_console_agent_browser import sign_in
from tests.test_console_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_serve_calls import place_call, short_timeout_flow, wait_record

ROOT = Path(__file__).resolve().parent.parent
SIDES = ROOT / "audio_fixtures" / "sides"
TOKEN = "e2e-bridged-token"
PREFIX = "cc"
UI_TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.sip, pytest.mark.browser, pytest.mark.broker, pytest.mark.slow,
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
    needs_chromium,
    needs_mosquitto,
]


async def test_caller_presses_0_and_talks_with_a_registered_agent_seen_live(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.async_api")
    from callcenter.serve import start_service, stop_service

    caller_side, agent_side = SIDES / "bridged_refund.caller.wav", SIDES / "bridged_refund.agent.wav"
    call_s = sf.info(str(caller_side)).duration + 4.0
    data = tmp_path / "data"
    data.mkdir()
    save_directory(Directory(agents=(make_agent("alice", "alice-pw", name="Alice", skills=("agents",),
                                                rounds=1000),)), data / "agents.yaml")
    bport, wport = free_port(), free_port()
    settings = load_settings(environ={}, overrides={
        "data_dir": str(data), "sip.port": free_port(), "sip.worker_base_port": consecutive_free_ports(2),
        "sip.workers": 2, "sip.front": "kamailio", "console.port": wport, "console.token": TOKEN,
        "store.api_port": free_port(), "mqtt.host": "127.0.0.1", "mqtt.port": bport, "mqtt.topic_prefix": PREFIX,
        "asr.engine": "whisper", "ivr.flow": str(short_timeout_flow(tmp_path)), "acd.registrar_poll_s": 0.5,
    })
    async with EmbeddedBroker(port=bport, backend="mosquitto"):
        rec = Recorder("127.0.0.1", bport, (f"{PREFIX}/agents/alice/#",))
        await rec.start()
        svc = await start_service(settings, ready_timeout=60)
        try:
            front = f"{settings.sip.host}:{settings.sip.port}"
            agent = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "telephony.test_agent", f"sip:alice@{front}", "--password", "alice-pw",
                "--play", str(agent_side), "--record", str(tmp_path / "agent-heard.wav"),
                "--hold-after", "18", "--hold-for", "3", "--wait-call", "120",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
            async with playwright.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                base = f"http://127.0.0.1:{wport}"
                await page.goto(f"{base}/agent")
                await sign_in(page, "alice", "alice-pw")
                await page.wait_for_selector("#conn.ok")
                # her phone registered: the registrar made her ready
                await page.wait_for_selector("#agent-state[data-state=ready]", timeout=UI_TIMEOUT_MS)

                caller = asyncio.create_task(place_call(
                    svc.sip_uri, "--dtmf", "0", "--dtmf-first", "--play", str(caller_side),
                    "--hangup-after", f"{call_s:.0f}", "--record-dir", str(tmp_path / "caller-rec")))
                # live, while the call goes on: both parties' final transcripts on her page
                await page.wait_for_selector("#call[data-call-id]", timeout=UI_TIMEOUT_MS)
                await page.locator("#transcript .line[data-party=caller][data-final=true]").first.wait_for(
                    timeout=UI_TIMEOUT_MS)
                await page.locator("#transcript .line[data-party=agent][data-final=true]").first.wait_for(
                    timeout=UI_TIMEOUT_MS)
                assert not caller.done(), "the transcripts must show while the call is live"
                await page.screenshot(path=str(tmp_path / "agent-live.png"), full_page=True)
                result = await caller
                await page.locator("#summary-card").wait_for(state="visible", timeout=UI_TIMEOUT_MS)
                await browser.close()
            out, _ = await asyncio.wait_for(agent.communicate(), 60)
            agent_res = json.loads([ln for ln in out.decode().splitlines() if ln.startswith("{")][-1])
            record = await wait_record(svc, result["call_id"])
        finally:
            await stop_service(svc)
        await rec.stop()

    assert result["answered"] and agent_res["registered"] and agent_res["calls"][0]["answered"], agent_res
    # MQTT: the agent's call feed carried both parties' finals
    feed = [m.json() for m in rec.messages if m.topic == f"{PREFIX}/agents/alice/call"]
    finals = {e["party"] for e in feed if e["type"] == "transcript.final" and e["text"].strip()}
    assert finals == {"caller", "agent"}, [e["type"] for e in feed]
    states = [m.json()["state"] for m in rec.messages if m.topic == f"{PREFIX}/agents/alice/state"]
    assert "on_call" in states and "wrap_up" in states, states

    # the record: two channels, both transcripts, talk ratio, talk-over, hold
    assert record["stored"] and sf.info(record["recording"]).channels == 2
    detail = stored_call(settings.store_url, result["call_id"])
    summary = assert_refund_conversation(detail)
    assert summary["hold"]["count"] == 1 and summary["hold"]["total_s"] == pytest.approx(3.0, abs=1.5)
    assert "talk_over_count" in summary and "talk_over_by" in summary
    assert list(summary["queue"]["agent_ids"]) == ["alice"]
