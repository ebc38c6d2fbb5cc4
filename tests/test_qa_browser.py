"""Scorecard review in Chromium: a call scored and stored by the real after-call chain, its call
page's scorecard (scorecard.js): an evidence time asks the player to seek, an override changes
the score and shows who and why in the history, and the calibration page lists it."""

from __future__ import annotations

import pytest

from callcenter.history import StoreHistory
from callcenter.qa_reviews import StoreReviews
from live.console import create_console_app
from live.testing import free_port, serve
from summaries.store import CrmStore
from tests.e2e_console_support import CHROMIUM, CHROMIUM_ARGS, UI_TIMEOUT_MS, needs_chromium
from tests.test_qa_review import store_calls

pytestmark = [pytest.mark.slow, pytest.mark.browser, needs_chromium]

TOKEN = "qa-browser-token"
SEEKS = "window.__seeks = []; document.addEventListener('cc:seek', (e) => window.__seeks.push(e.detail.t));"


async def test_override_on_the_call_page_and_calibration(tmp_path):
    playwright = pytest.importorskip("playwright.async_api")
    url = f"sqlite:///{tmp_path}/crm.db"
    store = CrmStore(url)
    store.start()
    await store_calls(store)
    history = StoreHistory(url)
    port = free_port()
    app = create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc",
                             history=history, qa=StoreReviews(store))
    try:
        async with serve(app, port), playwright.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 1400})
            await page.add_init_script(SEEKS)
            base = f"http://127.0.0.1:{port}"
            await page.goto(f"{base}/?token={TOKEN}")
            await page.goto(f"{base}/calls/bad")
            score = page.locator("#scorecard .sc-score")
            await score.wait_for(timeout=UI_TIMEOUT_MS)
            assert await score.inner_text() == "0%"

            # an evidence time asks the recording's player to seek there
            dead_air = page.locator("#scorecard li[data-question='no_long_dead_air']")
            link = dead_air.locator("button.sc-seek").first
            t = float(await link.get_attribute("data-t"))
            await link.click()
            assert await page.evaluate("window.__seeks") == [t]

            greeting = page.locator("#scorecard li[data-question='greeting']")
            await greeting.locator("select[name=answer]").select_option("yes")
            await greeting.locator("button[type=submit]").click()
            assert await greeting.locator(".sc-msg").inner_text() == "a reason is required"
            await greeting.locator("input[name=reason]").fill("greeted before the recording started")
            await greeting.locator("button[type=submit]").click()
            await page.wait_for_function(
                "document.querySelector('#scorecard .sc-score').textContent === '10%'", timeout=UI_TIMEOUT_MS)
            history_text = await page.locator("#scorecard .sc-history").inner_text()
            assert "token: greeting no → yes — greeted before the recording started" in history_text
            assert "overridden (auto: no)" in await page.locator(
                "#scorecard li[data-question='greeting']").inner_text()

            await page.goto(f"{base}/calibration")
            row = page.locator("#calibration tr[data-question='greeting']")
            await row.wait_for(timeout=UI_TIMEOUT_MS)
            assert await row.locator("td.agreement").inner_text() == "0%"
            assert await row.locator("td.calls a").inner_text() == "bad"
            assert await page.locator("#reviewed").inner_text() == "1"
            await browser.close()
    finally:
        history.close()
        store.stop()
