"""End to end: replayed and live SIP calls reach the agent console and MQTT, for real.

Real parts only: a mosquitto child process on a free port, the ``callcenter`` CLI in a
subprocess (``replay --publish``), the console app under uvicorn with its history over the same
SQLite CRM store the replay writes, headless Debian Chromium, and for the live call the whole
service (``start_service``: worker process with pjsua2) called by ``telephony.test_caller``.

Set ``E2E_CONSOLE_SHOTS=/some/dir`` to keep the screenshots (they always go to the tmp dir).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from callcenter.history import StoreHistory
from callcenter.settings import load_settings
from live.broker import EmbeddedBroker, find_mosquitto
from live.console import create_console_app
from live.outbox import Outbox
from live.testing import Received, Recorder, free_port, serve

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "audio_fixtures"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "e2e-token"
PREFIX = "callcenter"
REPLAY_TIMEOUT_S = 90.0
"""Generous: a replay is faster than real time, but the machine is shared."""
UI_TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.broker,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing (apt-get install chromium)"),
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto binary missing (apt-get install mosquitto)"),
]

# Records whether the dead-air banner was ever shown: a replay runs faster than real time, so
# the banner may be up for a fraction of a second only.
WATCH_DEAD_AIR = """
window.__deadAirShown = 0;
document.addEventListener('DOMContentLoaded', () => {
  const box = document.querySelector('#deadair');
  if (!box) return;
  new MutationObserver(() => { if (!box.hidden) window.__deadAirShown += 1; })
    .observe(box, {attributes: true, attributeFilter: ['hidden']});
});
"""


# -- helpers --------------------------------------------------------------------------------


@dataclass
class ReplayRun:
    returncode: int
    events: list[dict[str, Any]]
    """The replay's ``--json`` output: every event as its ``to_dict()``, in emission order."""
    stderr: str

    @property
    def call_id(self) -> str:
        return self.events[0]["call_id"]

    def of(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] in types]


def replay_env(bport: int) -> dict[str, str]:
    """The test's environment without any CALLCENTER_* of the caller's, MQTT at the test broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env.update({"CALLCENTER_MQTT__HOST": "127.0.0.1", "CALLCENTER_MQTT__PORT": str(bport)})
    return env


async def start_replay(data_dir: Path, bport: int, wav: str) -> asyncio.subprocess.Process:
    # ``--data-dir`` is an option of ``callcenter`` itself, so it goes before the subcommand.
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter", "--data-dir", str(data_dir),
        "replay", "--publish", "--json", "--engine", "pocketsphinx", str(FIXTURES / wav),
        cwd=ROOT, env=replay_env(bport), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def finish_replay(proc: asyncio.subprocess.Process, *, returncode: int = 0) -> ReplayRun:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), REPLAY_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        raise
    events = []
    for line in out.decode().splitlines():
        if line.startswith("{"):
            data = json.loads(line)
            data.pop("file", None)  # the printer's label, not part of the event
            if "call_id" in data:
                events.append(data)
    run = ReplayRun(proc.returncode or 0, events, err.decode(errors="replace"))
    assert run.returncode == returncode, f"replay exited {run.returncode}: {run.stderr[-3000:]}"
    assert run.events and run.events[0]["type"] == "call.started", run.stderr[-2000:]
    return run


def call_stream(messages: list[Received], call_id: str, category: str = "events") -> list[Received]:
    """Messages of one call's topic, adjacent duplicates (at-least-once redelivery) dropped."""
    topic = f"{PREFIX}/calls/{call_id}/{category}"
    out: list[Received] = []
    for m in messages:
        if m.topic == topic and not (out and out[-1].payload == m.payload):
            out.append(m)
    return out


def has_summary(call_id: str):
    return lambda msgs: any(m.json()["type"] == "summary" for m in call_stream(msgs, call_id))


def assert_mqtt_matches_replay(rec: Recorder, run: ReplayRun) -> None:
    """The ``events`` topic carries exactly the replay's events, in order; finals and alerts
    also reach their category topics at QoS 1."""
    cid = run.call_id
    stream = call_stream(rec.messages, cid)
    assert [m.json() for m in stream] == run.events
    assert all(m.qos == 1 for m in stream)
    finals = [m for m in call_stream(rec.messages, cid, "transcript") if m.json()["type"] == "transcript.final"]
    assert [m.json() for m in finals] == run.of("transcript.final")
    assert finals and all(m.qos == 1 for m in finals)
    alerts = call_stream(rec.messages, cid, "alerts")
    assert [m.json() for m in alerts] == run.of("tone.alert", "dead_air.started", "dead_air.ended", "talk_over")
    assert all(m.qos == 1 for m in alerts)
    state = call_stream(rec.messages, cid, "state")
    assert [m.json()["type"] for m in state] == ["call.started", "call.ended"]


def final_texts(events: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for e in events if e["type"] == "transcript.final" and e.get("text")]


def search_word(texts: list[str]) -> str:
    """A distinctive word of the transcript for the history search (the longest one)."""
    words = [w.strip(".,?!").lower() for t in texts for w in t.split()]
    return max(words, key=len)


async def shoot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    keep_shot(path)
    return path


def keep_shot(path: Path) -> None:
    assert path.stat().st_size > 5_000
    if keep := os.environ.get("E2E_CONSOLE_SHOTS"):
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


async def open_new_call(page, base: str, seen: set[str], prefix: str) -> tuple[str, str]:
    """Wait on the live list for a call not in ``seen`` whose id starts with ``prefix``;
    returns its id and the status the list showed when it appeared."""
    handle = await page.wait_for_function(
        """([prefix, seen]) => {
            for (const tr of document.querySelectorAll('#calls tbody tr')) {
              const id = tr.querySelector('a').textContent;
              if (id.startsWith(prefix) && !seen.includes(id)) return [id, tr.children[3].textContent];
            }
            return null;
        }""",
        arg=[prefix, sorted(seen)], timeout=UI_TIMEOUT_MS, polling=50,
    )
    call_id, status = await handle.json_value()
    seen.add(call_id)
    return call_id, status


async def wait_call_over(page) -> None:
    await page.locator("#summary-card").wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    await page.wait_for_function("document.querySelector('#status').textContent === 'ended'",
                                 timeout=UI_TIMEOUT_MS)


async def find_in_history(page, base: str, q: str, call_id: str) -> None:
    await page.goto(f"{base}/history")
    await page.fill("input[name=q]", q)
    await page.click("button[type=submit]")
    await page.wait_for_function(
        "(id) => [...document.querySelectorAll('#results tbody tr a')].some(a => a.textContent === id)",
        arg=call_id, timeout=UI_TIMEOUT_MS)


async def wait_stored(history: StoreHistory, call_id: str, timeout_s: float = 20.0) -> dict[str, Any]:
    """The call's CRM record, once the worker's durable writer has it."""
    async with asyncio.timeout(timeout_s):
        while True:
            record = await asyncio.to_thread(history.get, call_id)
            if record is not None:
                return record
            await asyncio.sleep(0.2)


def store_url(data_dir: Path) -> str:
    return load_settings(overrides={"data_dir": str(data_dir)}, environ={}).store_url


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
            assert [e for e in events if e["type"] != "summary"] == stored["events"]
            dtmf = call_stream(rec.messages, cid, "dtmf")
            assert [m.json()["digit"] for m in dtmf] == ["1"] and all(m.qos == 1 for m in dtmf)
            ivr = call_stream(rec.messages, cid, "ivr")
            assert any(m.json()["type"] == "ivr.step" and m.json()["node"] == "main_menu" for m in ivr)
            assert all(m.qos == 1 for m in ivr)
        finally:
            await stop_service(svc)
            await rec.stop()
