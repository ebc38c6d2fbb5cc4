"""The console in headless Chromium, fed by a real publisher through a real mosquitto."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from callcenter.settings import MqttSettings
from live.broker import EmbeddedBroker
from live.console import InMemoryHistory, create_console_app
from live.publisher import MqttPublisher
from live.testing import free_port, sample_call, serve
from tests.e2e_console_support import needs_chromium, needs_mosquitto

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "browser-token"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.broker,
    pytest.mark.slow,
    needs_chromium,
    needs_mosquitto,
]


async def test_live_call_appears_in_the_browser(tmp_path):
    playwright = pytest.importorskip("playwright.async_api")
    events = sample_call("b1")
    by_type = [e.type.value for e in events]
    dead_air_at = by_type.index("dead_air.started")
    bport, wport = free_port(), free_port()
    hist = InMemoryHistory([{"call_id": "old1", "caller": "+15550009", "started_at": "2025-02-01T08:00:00Z",
                             "summary": {"tone": "calm", "reason": "password reset", "outcome": "resolved"},
                             "transcript": [], "events": []},
                            {"call_id": "old2", "caller": "+15550010", "started_at": "2025-02-02T08:00:00Z",
                             "summary": {"tone": "tense", "reason": "refund", "outcome": "open"},
                             "transcript": [], "events": []}])
    async with EmbeddedBroker(port=bport, backend="mosquitto"):
        app = create_console_app(token=TOKEN, broker_host="127.0.0.1", broker_port=bport,
                                 topic_prefix="cc", history=hist)
        async with serve(app, wport):
            pub = MqttPublisher(MqttSettings(host="127.0.0.1", port=bport, topic_prefix="cc"),
                                tmp_path / "o.sqlite")
            await pub.start()
            async with playwright.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                base = f"http://127.0.0.1:{wport}"

                resp = await page.goto(f"{base}/calls/b1")
                assert resp.status == 401
                await page.goto(f"{base}/calls/b1?token={TOKEN}")
                assert "token" not in page.url
                await page.wait_for_selector("#conn.ok")

                for e in events[: by_type.index("transcript.final")]:
                    pub.publish(e)
                partial = page.locator("#transcript .line.caller.partial")
                await partial.wait_for()
                assert "my bill is wrong" in await partial.inner_text()

                for e in events[by_type.index("transcript.final"): dead_air_at + 1]:
                    pub.publish(e)
                await page.locator("#deadair").wait_for(state="visible")
                assert await page.locator("#transcript .partial").count() == 0
                assert "my bill is wrong again" in await page.locator("#transcript").inner_text()
                # The running timer counts on from the 5 s already silent.
                await page.wait_for_function("Number(document.querySelector('#deadair-timer').textContent) >= 5")

                for e in events[dead_air_at + 1:]:
                    pub.publish(e)
                await page.locator("#summary-card").wait_for(state="visible")
                await page.locator("#deadair").wait_for(state="hidden")
                transcript = await page.locator("#transcript").inner_text()
                assert "third time I call" in transcript and "let me check that" in transcript
                alerts = await page.locator("#alerts").inner_text()
                assert "angry" in alerts and "escalation phrase: manager" in alerts
                assert "talk-over" in alerts
                assert "key 2" in await page.locator("#path").inner_text()
                assert "escalated" in await page.locator("#summary").inner_text()
                assert await page.locator("#status").inner_text() == "ended"
                await page.wait_for_function(
                    "document.querySelector('#timeline').complete && document.querySelector('#timeline').naturalWidth > 0")
                shot = tmp_path / "call.png"
                await page.screenshot(path=str(shot), full_page=True)

                await page.goto(f"{base}/")
                await page.locator("#calls tbody tr").first.wait_for()
                assert "b1" in await page.locator("#calls").inner_text()

                await page.goto(f"{base}/history")
                await page.fill("input[name=q]", "password")
                await page.click("button[type=submit]")
                await page.wait_for_function("document.querySelectorAll('#results tbody tr').length === 1")
                assert "old1" in await page.locator("#results").inner_text()
                await page.screenshot(path=str(tmp_path / "history.png"), full_page=True)
                await browser.close()
            await pub.stop()
    assert shot.stat().st_size > 10_000
    if keep := os.environ.get("LIVE_CONSOLE_SHOTS"):  # to look at the layout by hand
        shutil.copy(shot, Path(keep) / "call.png")
        shutil.copy(tmp_path / "history.png", Path(keep) / "history.png")
