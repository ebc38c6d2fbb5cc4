"""Call review in Chromium: a replayed bridged fixture (agent and caller channels) stored by the
real after-call chain, its call page served by the console with the store as history and the
recording through ``callcenter.recordings``. The page shows readable sections (no raw JSON),
plays the recording, seeks on a click (evidence time, transcript line, ``cc:seek``) and
highlights the transcript line under the playhead while playing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import soundfile as sf

from callcenter.aftercall import AfterCall
from callcenter.history import StoreHistory
from callcenter.recordings import StoreRecordings
from callcenter.replay import replay_file
from callcenter.settings import load_settings
from callcenter.wiring import load_asr_engine
from live.console import create_console_app
from live.testing import free_port, serve
from tests.e2e_console_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FIXTURES,
    UI_TIMEOUT_MS,
    needs_chromium,
    shoot,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser, needs_chromium]

TOKEN = "review-browser-token"
FIXTURE = FIXTURES / "bridged_refund.wav"
CLIP_S = 14.0
"""The fixture's first seconds (three agent turns, one caller turn): recognition is the test's
cost, and these hold all it needs."""
SEEK_TOLERANCE_S = 0.05

AT = f"(t) => Math.abs(document.querySelector('#player').currentTime - t) <= {SEEK_TOLERANCE_S}"


async def replay_and_store(tmp_path) -> tuple[str, str, Path]:
    audio, rate = sf.read(str(FIXTURE), dtype="int16")
    clip = tmp_path / "bridged_refund_clip.wav"
    sf.write(str(clip), audio[: int(CLIP_S * rate)], rate, subtype="PCM_16")
    settings = load_settings(environ={}, overrides={"data_dir": str(tmp_path / "data"), "mqtt.enabled": False,
                                                    "asr.engine": "pocketsphinx"})
    engine = await asyncio.to_thread(load_asr_engine, settings)
    after = AfterCall(settings)
    await after.start()
    try:
        res = await replay_file(clip, settings, engine, after_call=after)
    finally:
        await after.stop()
        if engine is not None:
            engine.close()
    assert res.error is None and res.call_id, res.error
    return res.call_id, settings.store_url, clip


async def test_review_page_plays_the_recording_in_step_with_the_transcript(tmp_path):
    playwright = pytest.importorskip("playwright.async_api")
    call_id, url, clip = await replay_and_store(tmp_path)
    await check_review_page(playwright, url, call_id, clip, tmp_path)


async def check_review_page(playwright, url: str, call_id: str, recording: Path, tmp_path) -> None:
    """The browser's part, on a store holding the replayed call."""
    history = StoreHistory(url)
    recordings = StoreRecordings(url)
    port = free_port()
    app = create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc",
                             history=history, recordings=recordings)
    try:
        async with serve(app, port), playwright.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM,
                                              args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"])
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            base = f"http://127.0.0.1:{port}"
            await page.goto(f"{base}/?token={TOKEN}")
            await page.goto(f"{base}/calls/{call_id}")
            await page.locator("#summary-card").wait_for(state="visible", timeout=UI_TIMEOUT_MS)

            # -- readable sections, no raw JSON (the raw data is a download link)
            sections = await page.eval_on_selector_all("#summary .rs", "els => els.map(e => e.dataset.section)")
            assert {"reason", "done", "promises", "outcome", "tone", "deadair", "talk", "hold"} <= set(sections)
            text = await page.locator("#summary").inner_text()
            assert '{"' not in text and '":' not in text and "[]" not in text, text
            raw = await page.get_attribute("#raw-link", "href")
            assert raw == f"/api/calls/{call_id}"
            assert json.loads(await (await page.request.get(base + raw)).text())["call_id"] == call_id

            # -- the recording loads, as long as the fixture
            await page.wait_for_function("document.querySelector('#player').readyState >= 1", timeout=UI_TIMEOUT_MS)
            duration = await page.evaluate("document.querySelector('#player').duration")
            assert abs(duration - sf.info(str(recording)).duration) < 0.05

            # -- a click on an evidence time moves the audio there
            evidence = page.locator("#summary .evidence button.seek").last
            t = float(await evidence.get_attribute("data-t"))
            assert t > 1.0
            await evidence.click()
            await page.wait_for_function(AT, arg=t, timeout=UI_TIMEOUT_MS)

            # -- so does a click on a transcript line, and a cc:seek from anywhere (the scorecard)
            line = page.locator("#transcript .line[data-t]").first
            t_line = float(await line.get_attribute("data-t"))
            await line.click()
            await page.wait_for_function(AT, arg=t_line, timeout=UI_TIMEOUT_MS)
            await page.evaluate("document.dispatchEvent(new CustomEvent('cc:seek', {detail: {t: 3.25}}))")
            await page.wait_for_function(AT, arg=3.25, timeout=UI_TIMEOUT_MS)

            # -- playing highlights the line under the playhead, and only lines under it
            lines = await page.eval_on_selector_all(
                "#transcript .line[data-t]", "els => els.map(e => [+e.dataset.t, +e.dataset.end])")
            start, end = max(lines, key=lambda se: se[1] - se[0])  # the longest: easy to land in
            await page.evaluate("(t) => document.dispatchEvent(new CustomEvent('cc:seek', {detail: {t}}))",
                                max(0.0, start - 0.3))
            await page.evaluate("document.querySelector('#player').play()")
            await page.wait_for_function(
                "(t) => document.querySelector('#player').currentTime > t", arg=start + 0.2, timeout=UI_TIMEOUT_MS)
            await page.evaluate("document.querySelector('#player').pause()")
            now = await page.evaluate("document.querySelector('#player').currentTime")
            await page.wait_for_function(
                "(t) => [...document.querySelectorAll('#transcript .line.playing')].some(e => +e.dataset.t === t)",
                arg=start, timeout=UI_TIMEOUT_MS)
            lit = await page.eval_on_selector_all(
                "#transcript .line.playing", "els => els.map(e => [+e.dataset.t, +e.dataset.end])")
            assert lit and all(s <= now <= e for s, e in lit), (now, lit)

            # -- the playhead stands on the timeline at the current time
            await page.wait_for_function("!document.querySelector('#playhead').hidden", timeout=UI_TIMEOUT_MS)
            left = await page.evaluate("parseFloat(document.querySelector('#playhead').style.left)")
            width = await page.evaluate("document.querySelector('#timeline').clientWidth")
            assert 0 < left < width

            # -- one party: the agent's channel alone, the position kept
            await page.check("input[name=party][value=agent]")
            await page.wait_for_function(
                "document.querySelector('#player').src.endsWith('party=agent') && "
                "document.querySelector('#player').readyState >= 1", timeout=UI_TIMEOUT_MS)
            await page.wait_for_function(AT, arg=now, timeout=UI_TIMEOUT_MS)
            await shoot(page, tmp_path, "call-review")
            await browser.close()
    finally:
        history.close()
        recordings.close()
