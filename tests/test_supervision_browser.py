"""The console's supervision buttons, clicked in Chromium, on a real bridged call.

``callcenter serve`` (Kamailio front, one worker, mosquitto, console), alice's and sue's phones
registered (``telephony.test_agent``), a caller pressing 0. Sue, a supervisor, clicks Listen and
Whisper in the queue view, follows the call link to the call view and clicks Barge and Leave
there; each click's outcome shows on the page and in the state the page reads back. Tom, a
supervisor with no registered phone, gets the error on the page; alice, an agent, gets 403.
What the phones hear in each mode is ``test_supervision_calls``' job.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from callcenter.settings import load_settings
from live.broker import EmbeddedBroker
from live.testing import Recorder, free_port
from speech.ports import consecutive_free_ports
from telephony.acd.directory import Directory, make_agent, save_directory
from telephony.kamailio import kamailio_binary
from tests.e2e_console_support import needs_chromium, needs_mosquitto
from tests.test_console_agent_browser import sign_in
from tests.test_console_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_serve_calls import place_call, short_timeout_flow
from tests.test_supervision_calls import phone, phone_result, tone_wav

PREFIX = "cc"
UI_TIMEOUT_MS = 45_000

pytestmark = [
    pytest.mark.sip, pytest.mark.browser, pytest.mark.broker, pytest.mark.slow,
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
    needs_chromium,
    needs_mosquitto,
]


async def test_supervisor_clicks_listen_whisper_barge_leave(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.async_api")
    from callcenter.serve import start_service, stop_service

    data = tmp_path / "data"
    data.mkdir()
    save_directory(Directory(agents=(
        make_agent("alice", "alice-pw", skills=("agents",), rounds=1000),
        make_agent("sue", "sue-pw", supervisor=True, rounds=1000),
        make_agent("tom", "tom-pw", supervisor=True, rounds=1000),
    )), data / "agents.yaml")
    tone = tone_wav(tmp_path / "tone.wav", 440.0, 60)
    bport, wport = free_port(), free_port()
    settings = load_settings(environ={}, overrides={
        "data_dir": str(data), "sip.port": free_port(), "sip.worker_base_port": consecutive_free_ports(1),
        "sip.workers": 1, "sip.front": "kamailio", "console.port": wport, "console.token": "sup-browser",
        "store.api_port": free_port(), "mqtt.host": "127.0.0.1", "mqtt.port": bport, "mqtt.topic_prefix": PREFIX,
        "asr.engine": "none", "ivr.flow": str(short_timeout_flow(tmp_path)), "acd.registrar_poll_s": 0.5,
        "acd.wrap_up_s": 0,
    })
    async with EmbeddedBroker(port=bport, backend="mosquitto"):
        rec = Recorder("127.0.0.1", bport, (f"{PREFIX}/calls/+/events",), client_id=f"supb-{uuid.uuid4().hex[:8]}")
        await rec.start()
        svc = await start_service(settings, ready_timeout=60, log_dir=tmp_path / "logs")
        try:
            front = f"{settings.sip.host}:{settings.sip.port}"
            agent = await phone(front, "alice", "alice-pw", "--play", str(tone), "--wait-call", "120")
            sup = await phone(front, "sue", "sue-pw", "--wait-call", "120")
            base = f"http://127.0.0.1:{wport}"
            async with playwright.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                sue = await browser.new_page(viewport={"width": 1400, "height": 900})
                await sue.goto(f"{base}/agent")
                await sign_in(sue, "sue", "sue-pw")
                await sue.wait_for_selector("#agent-state")
                await sue.goto(f"{base}/queues")
                row = sue.locator("tr[data-agent=alice]")
                await row.wait_for(timeout=UI_TIMEOUT_MS)
                await sue.locator("tr[data-agent=sue]").wait_for(timeout=UI_TIMEOUT_MS)
                await sue.wait_for_function(
                    "async () => (await (await fetch('/api/agents')).json())"
                    ".filter(r => r.registered).length >= 2", timeout=UI_TIMEOUT_MS, polling=300)
                caller = asyncio.create_task(place_call(
                    svc.sip_uri, "--dtmf", "0", "--dtmf-first", "--play", str(tone), "--hangup-after", "40"))
                listen = row.locator("button[data-supervise=listen]")
                await listen.wait_for(timeout=UI_TIMEOUT_MS)  # alice is on the call: the buttons show
                call_id = await row.locator("[data-supervise-call]").get_attribute("data-supervise-call")
                assert call_id

                await listen.click()
                await sue.wait_for_selector("#supervise-msg[data-outcome=ok]", timeout=UI_TIMEOUT_MS)
                await row.locator(".supervision-state[data-mode=listen]").wait_for(timeout=UI_TIMEOUT_MS)
                await sue.evaluate("document.querySelector('#supervise-msg').dataset.outcome = ''")
                await row.locator("button[data-supervise=whisper]").click()
                await row.locator(".supervision-state[data-mode=whisper]").wait_for(timeout=UI_TIMEOUT_MS)
                assert "whisper" in (await row.locator(".supervision-state").inner_text())
                await sue.screenshot(path=str(tmp_path / "queues-whisper.png"), full_page=True)

                # the call view: a supervisor's session reaches it, with the same buttons
                await row.locator("a").first.click()
                await sue.wait_for_url("**/calls/**")
                card = sue.locator("#supervise-card")
                await card.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
                await sue.locator("#supervision-state[data-mode=whisper]").wait_for(timeout=UI_TIMEOUT_MS)
                await card.locator("button[data-supervise=barge]").click()
                await sue.locator("#supervision-state[data-mode=barge]").wait_for(timeout=UI_TIMEOUT_MS)
                await sue.screenshot(path=str(tmp_path / "call-barge.png"), full_page=True)
                await card.locator("button[data-supervise=leave]").click()
                await sue.locator("#supervision-state[data-mode='']").wait_for(timeout=UI_TIMEOUT_MS)
                assert await sue.locator("#supervise-msg").inner_text() == "left the call"

                # tom's phone is not registered: the page says so
                tom = await browser.new_page()
                await tom.goto(f"{base}/agent")
                await sign_in(tom, "tom", "tom-pw")
                await tom.wait_for_selector("#agent-state")
                await tom.goto(f"{base}/calls/{call_id}")
                await tom.locator("#supervise-card").wait_for(state="visible", timeout=UI_TIMEOUT_MS)
                await tom.locator("#supervise-card button[data-supervise=listen]").click()
                await tom.wait_for_selector("#supervise-msg[data-outcome=not_registered]", timeout=UI_TIMEOUT_MS)
                assert "not registered" in await tom.locator("#supervise-msg").inner_text()

                # alice is an agent, not a supervisor: no queue view, no call view, no supervision
                alice = await browser.new_page()
                await alice.goto(f"{base}/agent")
                await sign_in(alice, "alice", "alice-pw")
                await alice.wait_for_selector("#agent-state")
                status = await alice.evaluate(
                    "async (id) => (await fetch('/api/supervision', {method: 'POST', headers: "
                    "{'Content-Type': 'application/json'}, body: JSON.stringify({call_id: id, mode: 'listen'})}))"
                    ".status", call_id)
                assert status == 403
                assert (await alice.goto(f"{base}/queues")).status == 403
                assert (await alice.goto(f"{base}/calls/{call_id}")).status == 401
                await browser.close()
            result = await caller
            sup_res = await phone_result(sup)
            await phone_result(agent)
        finally:
            await stop_service(svc)
        await rec.stop()
    assert result["answered"] and sup_res["calls"][0]["answered"], sup_res
    assert sup_res["calls"][0]["end_reason"] == "remote"  # Leave hung up her phone
    feed = [m.json() for m in rec.messages if m.topic == f"{PREFIX}/calls/{call_id}/events"]
    steps = [(e["supervisor_id"], e["mode"], e["reason"]) for e in feed if e["type"] == "supervision"]
    assert steps == [("sue", "listen", "console"), ("sue", "whisper", "console"), ("sue", "barge", "console"),
                     ("sue", "left", "console"), ("tom", "left", "not_registered")], steps
