"""The agent's page in headless Chromium: log in, go ready, and the call an agent joins opens by
itself with both parties' transcript, fed by a real publisher through a real mosquitto."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from callcenter.agent_console import build_agent_console
from callcenter.settings import MqttSettings, Settings
from live.broker import EmbeddedBroker
from live.console import create_console_app
from live.publisher import MqttPublisher
from live.testing import free_port, serve
from speech.events import (
    CallEnded,
    CallStarted,
    DeadAirStarted,
    FinalTranscript,
    HoldEnded,
    HoldStarted,
    IvrAction,
    IvrStep,
    PartialTranscript,
    PartyJoined,
    QueueAction,
    QueueUpdate,
    SummaryReady,
    TalkOver,
    ToneUpdate,
)
from speech.frames import Party
from telephony.acd.directory import Directory, make_agent, save_directory
from telephony.acd.store import AcdStore
from tests.e2e_console_support import needs_chromium, needs_mosquitto
from tests.test_console_browser import CHROMIUM, CHROMIUM_ARGS

TOKEN = "agent-browser-token"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.broker,
    pytest.mark.slow,
    needs_chromium,
    needs_mosquitto,
]


async def sign_in(page, agent_id: str, password: str) -> None:
    """Fill in and send the agent login form of the page at ``/agent``."""
    await page.fill("#agent-id", agent_id)
    await page.fill("#password", password)
    await page.click("#btn-login")


def bridged_call(call_id: str, agent_id: str) -> tuple[list, list, list]:
    """Before the agent, with the agent, after the hang-up."""
    c, a = Party.CALLER, Party.AGENT
    before = [
        CallStarted(call_id=call_id, t=0.0, source="sip", caller="+15550100", callee="ivr",
                    parties=("caller", "agent")),
        IvrStep(call_id=call_id, t=1.0, node="main", action=IvrAction.ENTER),
        IvrStep(call_id=call_id, t=4.0, node="account", action=IvrAction.COLLECT,
                detail={"store_as": "account", "length": 6, "secure": False, "digits": "123456"}),
        QueueUpdate(call_id=call_id, t=5.0, queue="billing", action=QueueAction.ENTERED, position=1),
    ]
    during = [
        PartyJoined(call_id=call_id, t=17.0, party=a, agent_id=agent_id, queue="billing",
                    wait_s=12.0, ring_s=2.0),
        PartialTranscript(call_id=call_id, t=18.0, party=c, text="my bill", start=17.5),
        FinalTranscript(call_id=call_id, t=19.0, party=c, text="my bill is wrong again", start=17.5, end=18.8),
        ToneUpdate(call_id=call_id, t=19.0, party=c, label="tense", score=0.55, start=17.5, end=18.8),
        FinalTranscript(call_id=call_id, t=21.0, party=a, text="let me check that for you", start=19.5, end=20.8),
        ToneUpdate(call_id=call_id, t=21.0, party=a, label="calm", score=0.1, start=19.5, end=20.8),
        TalkOver(call_id=call_id, t=21.5, started_by=c, interrupted=a, start=21.0, end=21.5, duration=0.5),
        HoldStarted(call_id=call_id, t=22.0, party=a),
    ]
    after = [
        HoldEnded(call_id=call_id, t=30.0, party=a, start=22.0, duration=8.0),
        DeadAirStarted(call_id=call_id, t=36.0, start=30.0, threshold=5.0),
        CallEnded(call_id=call_id, t=40.0, reason="hangup", duration=40.0),
        SummaryReady(call_id=call_id, t=40.5, summary={"reason": "billing dispute", "outcome": "resolved"}),
    ]
    return before, during, after


async def test_agent_page_opens_their_call_with_both_parties(tmp_path):
    playwright = pytest.importorskip("playwright.async_api")
    directory = Directory(agents=(
        make_agent("alice", "alice-pw", name="Alice", skills=("billing",), rounds=1000),
        make_agent("sue", "sue-pw", name="Sue", skills=("billing",), supervisor=True, rounds=1000)))
    save_directory(directory, tmp_path / "agents.yaml")
    settings = Settings(data_dir=tmp_path)
    store = AcdStore(settings.store_url)
    store.sync_directory(directory)
    store.close()
    bport, wport = free_port(), free_port()
    before, during, after = bridged_call("br1", "alice")
    async with EmbeddedBroker(port=bport, backend="mosquitto"):
        app = create_console_app(token=TOKEN, broker_host="127.0.0.1", broker_port=bport,
                                 topic_prefix="cc", agents=build_agent_console(settings))
        async with serve(app, wport):
            pub = MqttPublisher(MqttSettings(host="127.0.0.1", port=bport, topic_prefix="cc"),
                                tmp_path / "o.sqlite")
            await pub.start()
            async with playwright.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                base = f"http://127.0.0.1:{wport}"

                await page.goto(f"{base}/agent")
                await sign_in(page, "alice", "wrong")
                await page.locator("#login-error").wait_for(state="visible")
                await sign_in(page, "alice", "alice-pw")
                await page.wait_for_selector("#conn.ok")
                assert await page.locator("#agent-name").inner_text() == "Alice (alice)"
                await page.wait_for_selector("#agent-state[data-state=logged_out]")
                assert await page.locator("#no-call").is_visible()
                assert await page.locator("#nav-queues").is_hidden()

                await page.click("#btn-ready")
                await page.wait_for_selector("#agent-state[data-state=ready]")
                assert await page.locator("#btn-ready").is_disabled()

                for e in before:  # her call-to-be, still in the IVR and the queue
                    pub.publish(e)
                for e in during:
                    pub.publish(e)
                await page.wait_for_selector("#call[data-call-id=br1]")
                agent_line = page.locator("#transcript .line[data-party=agent][data-final=true]")
                await agent_line.wait_for()
                caller_line = page.locator("#transcript .line[data-party=caller][data-final=true]")
                assert "my bill is wrong again" in await caller_line.inner_text()
                assert "let me check that for you" in await agent_line.inner_text()
                assert (await caller_line.locator(".who").inner_text()).lower() == "caller"
                assert await page.locator("#tone-caller").get_attribute("data-label") == "tense"
                assert await page.locator("#tone-agent").get_attribute("data-label") == "calm"
                assert "talk-over" in await page.locator("#alerts").inner_text()
                assert "waited 12 s in billing" in await page.locator("#queue-info").inner_text()
                assert "123456" in await page.locator("#collected dd[data-field=account]").inner_text()
                assert "main: enter" in await page.locator("#path").inner_text()
                await page.locator("#hold").wait_for(state="visible")

                for e in after:
                    pub.publish(e)
                await page.locator("#summary-card").wait_for(state="visible")
                assert "billing dispute" in await page.locator("#summary").inner_text()
                await page.locator("#hold").wait_for(state="hidden")
                assert await page.locator("#status").inner_text() == "ended"
                shot = tmp_path / "agent.png"
                await page.screenshot(path=str(shot), full_page=True)

                # Sign out: back to the login form.
                await page.click("#btn-signout")
                await page.locator("#btn-login").wait_for()

                # A supervisor sees the queues.
                await sign_in(page, "sue", "sue-pw")
                await page.locator("#nav-queues").wait_for(state="visible")
                await page.goto(f"{base}/queues")
                await page.wait_for_selector("#queues tbody tr[data-queue=billing]")
                await page.wait_for_selector("#agents tbody tr[data-agent=alice][data-state=ready]")
                await browser.close()
            await pub.stop()
    assert shot.stat().st_size > 10_000
    if keep := os.environ.get("LIVE_CONSOLE_SHOTS"):  # to look at the layout by hand
        shutil.copy(shot, Path(keep) / "agent.png")
