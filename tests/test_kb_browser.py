"""Knowledge suggestions in the agent's page, in headless Chromium: the real suggestion stage in a
real pipeline publishes through a real mosquitto; the agent sees the articles with the words that
matched, opens one, marks it helpful; the mark is stored and the call's summary names it."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from assist.feedback import FeedbackStore
from assist.kb_settings import SAMPLE_KB, KnowledgeSettings
from assist.suggestions import SuggestionStage, index_opener
from callcenter.aftercall import AfterCall
from callcenter.agent_console import build_agent_console
from callcenter.settings import MqttSettings, Settings
from live.broker import EmbeddedBroker
from live.console import create_console_app
from live.publisher import MqttPublisher
from live.testing import free_port, serve
from speech.events import CallStarted, FinalTranscript, PartyJoined, SummaryReady
from speech.frames import Party
from speech.pipeline import CallPipeline
from telephony.acd.directory import Directory, make_agent, save_directory
from telephony.acd.store import AcdStore
from tests.e2e_console_support import needs_chromium, needs_mosquitto
from tests.test_console_agent_browser import sign_in
from tests.test_console_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.broker,
    pytest.mark.slow,
    needs_chromium,
    needs_mosquitto,
]

CALL = "kb-browser-1"


async def test_agent_sees_opens_and_marks_a_suggested_article(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.async_api")
    directory = Directory(agents=(make_agent("alice", "alice-pw", name="Alice", skills=("billing",), rounds=1000),))
    save_directory(directory, tmp_path / "agents.yaml")
    settings = Settings(data_dir=tmp_path)
    store = AcdStore(settings.store_url)
    store.sync_directory(directory)
    store.close()
    marks = FeedbackStore(settings.kb_feedback_path)
    bport, wport = free_port(), free_port()
    async with EmbeddedBroker(port=bport, backend="mosquitto"):
        app = create_console_app(token="kb-token", broker_host="127.0.0.1", broker_port=bport, topic_prefix="cc",
                                 agents=build_agent_console(settings), feedback=marks)
        async with serve(app, wport):
            pub = MqttPublisher(MqttSettings(host="127.0.0.1", port=bport, topic_prefix="cc"), tmp_path / "o.sqlite")
            await pub.start()
            stage = SuggestionStage(index_opener(SAMPLE_KB, settings.kb_index_path, auto_index=True),
                                    KnowledgeSettings())
            pipeline = CallPipeline(CALL, [stage])
            pipeline.add_sink(pub.publish)
            async with playwright.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.goto(f"http://127.0.0.1:{wport}/agent")
                await sign_in(page, "alice", "alice-pw")
                await page.wait_for_selector("#conn.ok")
                await page.click("#btn-ready")
                await page.wait_for_selector("#agent-state[data-state=ready]")

                await pipeline.start(CallStarted(t=0.0, source="sip", caller="+15550100", callee="ivr",
                                                 parties=("caller", "agent")))
                pipeline.push_event(PartyJoined(t=2.0, party=Party.AGENT, agent_id="alice", queue="billing"))
                await page.wait_for_selector(f"#call[data-call-id={CALL}]")
                assert await page.locator("#kb-empty").is_visible()
                pipeline.push_event(FinalTranscript(t=5.0, party=Party.CALLER, start=3.0, end=5.0,
                                                    text="hi I was charged twice for my last order"))

                item = page.locator("#kb-suggestions li[data-article=billing-double-charge]")
                await item.wait_for()
                assert await page.locator("#kb-suggestions li").first.get_attribute("data-article") == \
                    "billing-double-charge"
                matched = await item.locator(".kb-matched").inner_text()
                assert "charged" in matched and "twice" in matched
                assert await page.locator("#kb-empty").is_hidden()

                await item.locator("button.kb-open").click()
                await page.locator("#kb-article").wait_for(state="visible")
                assert await page.locator("#kb-article-title").inner_text() == "Charged twice for the same bill or order"
                body = await page.locator("#kb-article-body").inner_text()
                assert "Payments > Refund" in body and "3 to 5 business days" in body
                assert await page.locator("#kb-article-body strong").count() >= 1  # **bold**, as text, not HTML
                await page.click("#kb-helpful")
                await page.wait_for_function(
                    "document.querySelector('#kb-suggestions li[data-article=billing-double-charge] .kb-mark')"
                    ".textContent.includes('helpful')")
                assert "helpful" in await page.locator("#kb-msg").inner_text()
                shot = tmp_path / "agent_kb.png"
                await page.screenshot(path=str(shot), full_page=True)

                events = await pipeline.end()
                stored = await asyncio.to_thread(marks.for_call, CALL)
                assert [(m.article_id, m.helpful, m.agent_id) for m in stored] == [
                    ("billing-double-charge", True, "alice")]
                after = AfterCall(settings, store=False)
                summary = await after.complete(CALL, events)
                await after.stop()
                assert [(a["article_id"], a["helpful"]) for a in summary["articles"]] == [
                    ("billing-double-charge", True)]
                pub.publish(SummaryReady(call_id=CALL, t=events[-1].t, summary=summary))
                await page.locator("#summary-card").wait_for(state="visible")
                assert "billing-double-charge" in await page.locator("#summary").inner_text()
                await browser.close()
            await pub.stop()
    marks.close()
    assert shot.stat().st_size > 10_000
    if keep := os.environ.get("LIVE_CONSOLE_SHOTS"):
        shutil.copy(shot, Path(keep) / "agent_kb.png")


async def test_replayed_billing_call_shows_suggestions_on_the_console_and_mqtt(tmp_path: Path) -> None:
    """`callcenter replay --publish` of a recorded billing call (real pocketsphinx): the call's
    page lists the suggested articles as they come, and MQTT carries them on the ``assist`` topic."""
    from live.testing import Recorder
    from tests.e2e_console_support import (
        PREFIX,
        TOKEN,
        UI_TIMEOUT_MS,
        call_stream,
        finish_replay,
        has_summary,
        open_new_call,
        shoot,
        start_replay,
        wait_call_over,
    )

    playwright = pytest.importorskip("playwright.async_api")
    data = tmp_path / "data"
    data.mkdir()
    bport, wport = free_port(), free_port()
    async with EmbeddedBroker(port=bport, backend="mosquitto"):
        rec = Recorder("127.0.0.1", bport, (f"{PREFIX}/#",))
        await rec.start()
        app = create_console_app(token=TOKEN, broker_host="127.0.0.1", broker_port=bport, topic_prefix=PREFIX)
        async with serve(app, wport), playwright.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            base = f"http://127.0.0.1:{wport}"
            await page.goto(f"{base}/?token={TOKEN}")
            await page.wait_for_selector("#conn.ok")
            proc = await start_replay(data, bport, "calm_billing.wav")
            cid, _ = await open_new_call(page, base, set(), "replay-")
            await page.get_by_role("link", name=cid, exact=True).click()
            await page.locator("#kb-suggestions li").first.wait_for(timeout=UI_TIMEOUT_MS)
            await wait_call_over(page)
            run = await finish_replay(proc)
            await rec.wait_for(has_summary(cid), timeout=15)
            suggestions = run.of("assist.suggestion")
            assert suggestions, "the billing call got no suggestion"
            shown = await page.locator("#kb-suggestions li").evaluate_all("els => els.map(e => e.dataset.article)")
            assert shown == [a["id"] for a in suggestions[-1]["articles"]]
            assert {"billing-double-charge", "refunds-policy"} & set(shown)
            await page.locator("#kb-suggestions button.kb-open").first.click()
            await page.locator("#kb-article").wait_for(state="visible")
            assert await page.locator("#kb-article-title").inner_text() == suggestions[-1]["articles"][0]["title"]
            await shoot(page, tmp_path, "kb-replay-call")
            on_topic = [m.json() for m in call_stream(rec.messages, cid, "assist")]
            assert [m for m in on_topic if m["type"] == "assist.suggestion"] == suggestions
            await browser.close()
        await rec.stop()
