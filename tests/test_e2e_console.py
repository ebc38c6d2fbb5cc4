"""End to end: replayed and live SIP calls reach the agent console and MQTT, for real.

Real parts only: a mosquitto child process on a free port, the ``callcenter`` CLI in a
subprocess (``replay --publish``), the console app under uvicorn with its history over the same
SQLite CRM store the replay writes, headless Debian Chromium, and for the live call the whole
service (``start_service``: worker process with pjsua2) called by ``telephony.test_caller``.

Set ``E2E_CONSOLE_SHOTS=/some/dir`` to keep the screenshots (they always go to the tmp dir).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from callcenter.history import StoreHistory
from callcenter.settings import load_settings
from live.broker import EmbeddedBroker
from live.console import create_console_app
from live.outbox import Outbox
from live.testing import Recorder, free_port, serve
from tests.e2e_console_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FIXTURES,
    PREFIX,
    TOKEN,
    UI_TIMEOUT_MS,
    WATCH_DEAD_AIR,
    assert_mqtt_matches_replay,
    call_stream,
    final_texts,
    find_in_history,
    finish_replay,
    has_summary,
    needs_chromium,
    needs_mosquitto,
    open_new_call,
    search_word,
    shoot,
    start_replay,
    store_url,
    wait_call_over,
    wait_stored,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.broker,
    pytest.mark.slow,
    needs_chromium,
    needs_mosquitto,
]


# -- 1. replay → console and MQTT -----------------------------------------------------------


async def test_replayed_calls_show_up_live_in_console_and_on_mqtt(tmp_path):
    playwright = pytest.importorskip("playwright.async_api")
    data = tmp_path / "data"
    data.mkdir()
    bport, wport = free_port(), free_port()
    history = StoreHistory(store_url(data))
    seen: set[str] = set()
    try:
        async with EmbeddedBroker(port=bport, backend="mosquitto"):
            rec = Recorder("127.0.0.1", bport, (f"{PREFIX}/#",))
            await rec.start()
            app = create_console_app(token=TOKEN, broker_host="127.0.0.1", broker_port=bport,
                                     topic_prefix=PREFIX, history=history)
            async with serve(app, wport), playwright.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.add_init_script(WATCH_DEAD_AIR)
                base = f"http://127.0.0.1:{wport}"
                assert (await page.goto(f"{base}/")).status == 401
                await page.goto(f"{base}/?token={TOKEN}")
                await page.wait_for_selector("#conn.ok")

                # -- angry caller: transcript, tone alert with reasons, summary, history.
                proc = await start_replay(data, bport, "angry_repeat.wav")
                cid, status = await open_new_call(page, base, seen, "replay-")
                await shoot(page, tmp_path, "1-live-list")
                assert status == "active"  # the replay takes seconds: it is listed while it runs
                await page.get_by_role("link", name=cid, exact=True).click()
                await page.locator("#transcript .line:not(.partial)").first.wait_for(timeout=UI_TIMEOUT_MS)
                await page.locator("#alerts li").first.wait_for(timeout=UI_TIMEOUT_MS)
                await wait_call_over(page)
                run = await finish_replay(proc)
                assert run.call_id == cid
                await rec.wait_for(has_summary(cid), timeout=15)

                finals = final_texts(run.events)
                assert finals, "the replay transcribed nothing"
                transcript = await page.locator("#transcript").inner_text()
                assert all(text in transcript for text in finals)
                assert await page.locator("#transcript .partial").count() == 0
                tone_alerts = run.of("tone.alert")
                assert tone_alerts, "angry_repeat.wav raised no tone alert"
                alerts_text = await page.locator("#alerts").inner_text()
                assert all(r in alerts_text for a in tone_alerts for r in a["reasons"])
                summary = run.of("summary")[-1]["summary"]
                summary_text = await page.locator("#summary").inner_text()
                shown = [v for v in summary.values() if isinstance(v, str) and v]
                assert shown and all(v in summary_text for v in shown)
                await shoot(page, tmp_path, "2-call-angry")
                assert_mqtt_matches_replay(rec, run)

                await find_in_history(page, base, search_word(finals), cid)
                await shoot(page, tmp_path, "3-history")

                # -- dead air: the warning banner comes up, then the alert stays in the list.
                await page.goto(f"{base}/")
                await page.wait_for_selector("#conn.ok")
                proc = await start_replay(data, bport, "dead_air.wav")
                cid2, _ = await open_new_call(page, base, seen, "replay-")
                await page.get_by_role("link", name=cid2, exact=True).click()
                await wait_call_over(page)
                run2 = await finish_replay(proc)
                assert run2.call_id == cid2
                assert [e["type"] for e in run2.of("dead_air.started", "dead_air.ended")] == [
                    "dead_air.started", "dead_air.ended"]
                assert await page.evaluate("window.__deadAirShown") >= 1
                assert await page.locator("#deadair").is_hidden()
                gap = run2.of("dead_air.ended")[0]["duration"]
                assert f"dead air {gap:.1f} s" in await page.locator("#alerts").inner_text()
                await shoot(page, tmp_path, "4-call-dead-air")
                await rec.wait_for(has_summary(cid2), timeout=15)
                assert_mqtt_matches_replay(rec, run2)

                # Both calls stay listed as ended.
                await page.goto(f"{base}/")
                await page.wait_for_function(
                    "document.querySelectorAll('#calls tbody tr').length >= 2", timeout=UI_TIMEOUT_MS)
                rows = await page.locator("#calls tbody").inner_text()
                assert cid in rows and cid2 in rows and "active" not in rows
                await browser.close()
            await rec.stop()
    finally:
        history.close()


# -- 2. broker outage -----------------------------------------------------------------------


async def test_replay_survives_broker_outage_and_delivers_from_the_outbox(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    bport = free_port()
    broker = EmbeddedBroker(port=bport, backend="mosquitto", persistence_dir=tmp_path / "mqtt")
    await broker.start()
    # A persistent session: QoS 1 messages published while the recorder is reconnecting to the
    # restarted broker are queued for it, so "every event arrives" is about the publisher.
    rec = Recorder("127.0.0.1", bport, (f"{PREFIX}/#",), persistent=True,
                   client_id=f"e2e-outage-{uuid.uuid4().hex[:8]}")
    try:
        await rec.start()
        await broker.stop()

        # A: the broker stays down for the whole replay. It still completes (after the 10 s
        # drain attempt) and leaves its events in the on-disk outbox.
        # Nothing reached the broker: replay says so and exits 3 (issue 9), the events stay queued.
        run_a = await finish_replay(await start_replay(data, bport, "dtmf_menu.wav"), returncode=3)
        assert "nothing reached the MQTT broker" in run_a.stderr
        assert "messages wait in" in run_a.stderr and "mqtt-outbox-replay.sqlite" in run_a.stderr
        outbox = Outbox(data / "mqtt-outbox-replay.sqlite", 100_000)
        try:
            left = outbox.pending
        finally:
            outbox.close()
        assert left >= len(run_a.events)  # every event goes to ``events`` plus maybe a category

        # B: started while the broker is still down; the broker comes back a few seconds in.
        proc_b = await start_replay(data, bport, "angry_repeat.wav")
        await asyncio.sleep(3.0)
        await broker.start()
        run_b = await finish_replay(proc_b)
        assert "messages wait in" not in run_b.stderr

        await rec.wait_for(lambda msgs: has_summary(run_a.call_id)(msgs) and has_summary(run_b.call_id)(msgs),
                           timeout=20)
        assert_mqtt_matches_replay(rec, run_a)
        assert_mqtt_matches_replay(rec, run_b)
        # One outbox, one sender: all of A (the earlier run) went out before any of B.
        last_a = max(i for i, m in enumerate(rec.messages) if f"/{run_a.call_id}/" in m.topic)
        first_b = min(i for i, m in enumerate(rec.messages) if f"/{run_b.call_id}/" in m.topic)
        assert last_a < first_b
        outbox = Outbox(data / "mqtt-outbox-replay.sqlite", 100_000)
        try:
            assert outbox.pending == 0
        finally:
            outbox.close()
    finally:
        await rec.stop()
        await broker.stop()


# -- 3. live SIP call -----------------------------------------------------------------------


@pytest.mark.sip
async def test_live_sip_call_shows_in_console_and_on_mqtt(tmp_path):
    playwright = pytest.importorskip("playwright.async_api")
    from callcenter.serve import start_service, stop_service
    from telephony.net import free_port as free_sip_port
    from tests.sip.caller import caller_result, start_caller

    bport, wport, sport = free_port(), free_port(), free_sip_port()
    settings = load_settings(environ={}, overrides={
        "data_dir": str(tmp_path / "svc"),
        "sip.workers": 1, "sip.front": "none", "sip.port": sport,
        "console.port": wport, "console.token": TOKEN, "store.api_port": free_port(),
        "mqtt.host": "127.0.0.1", "mqtt.port": bport,
        "asr.engine": "pocketsphinx",
    })
    async with EmbeddedBroker(port=bport, backend="mosquitto"):
        rec = Recorder("127.0.0.1", bport, (f"{PREFIX}/#",))
        await rec.start()
        svc = await start_service(settings, ready_timeout=60)
        try:
            async with playwright.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                base = f"http://127.0.0.1:{wport}"
                await page.goto(f"{base}/?token={TOKEN}")
                await page.wait_for_selector("#conn.ok")

                caller = await start_caller(svc.sip_uri, "--play", str(FIXTURES / "calm_billing.wav"),
                                            "--dtmf", "1")
                cid, status = await open_new_call(page, base, set(), "")
                assert status == "active"  # a real call lasts as long as its audio
                await page.get_by_role("link", name=cid, exact=True).click()
                await page.wait_for_function("document.querySelector('#status').textContent === 'live'",
                                             timeout=UI_TIMEOUT_MS)
                await page.locator("#path li", has_text="welcome").first.wait_for(timeout=UI_TIMEOUT_MS)
                await shoot(page, tmp_path, "5-sip-call-live")
                result = await caller_result(caller, timeout_s=90)
                assert result["answered"] and result["played"] and result["digits_sent"] == ["1"]
                await page.locator("#path li", has_text="key 1").wait_for(timeout=UI_TIMEOUT_MS)
                await wait_call_over(page)
                path_text = await page.locator("#path").inner_text()
                assert "main_menu" in path_text
                await shoot(page, tmp_path, "6-sip-call-ended")
                await browser.close()

            await rec.wait_for(has_summary(cid), timeout=30)
            events = [m.json() for m in call_stream(rec.messages, cid)]
            types = [e["type"] for e in events]
            assert types[0] == "call.started" and types.count("call.ended") == 1
            assert types.index("call.ended") < types.index("summary")
            # The live feed and the CRM record of the call agree, event for event, in order.
            # (Not in call-time order: IVR marks carry the IVR's clock, a little behind.)
            stored = await wait_stored(svc.store, cid)
            # The summary and the final QA scorecards go to their own tables, not the event log.
            logged = [e for e in events if e["type"] != "summary"
                      and not (e["type"] == "qa.scorecard" and e["final"])]
            assert logged == stored["events"]
            assert any(e["type"] == "qa.scorecard" and e["final"] for e in events)
            dtmf = call_stream(rec.messages, cid, "dtmf")
            assert [m.json()["digit"] for m in dtmf] == ["1"] and all(m.qos == 1 for m in dtmf)
            ivr = call_stream(rec.messages, cid, "ivr")
            assert any(m.json()["type"] == "ivr.step" and m.json()["node"] == "main_menu" for m in ivr)
            assert all(m.qos == 1 for m in ivr)
        finally:
            await stop_service(svc)
            await rec.stop()
