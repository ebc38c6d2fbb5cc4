"""Issue 15's cues, rules and checklist on real audio: the tense ``bridged_escalation`` call
replayed (whisper) raises a cue that the summary says the agent acknowledged, ticks the script
checklist, and fires a rules file; then the same audio as a live bridged SIP call (the caller and
agent sides played by real SIP phones through ``callcenter serve``) fires the same rules, and the
agent's page in Chromium shows the cue and the checklist ticking while the call is live.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
import yaml

from callcenter.replay import ReplayResult, replay_file
from callcenter.settings import Settings, load_settings
from callcenter.wiring import load_asr_engine
from live.broker import EmbeddedBroker, find_mosquitto
from live.testing import free_port
from speech.asr.base import AsrEngine
from speech.events import AssistCue, AssistCueOutcome, ChecklistUpdate, RuleMatched
from summaries.summarizer import summarize
from telephony.kamailio import kamailio_binary
from tests.conftest import FIXTURES
from tests.test_console_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.slow]

RULES = {"rules": [
    {"name": "complaint", "when": [{"said": ["completely", "unacceptable"], "party": "caller", "fuzzy": True}],
     "then": {"categories": ["complaint"], "alert": "The caller is complaining", "notify": ["agent", "supervisor"]}},
    {"name": "dispatch", "when": [{"said": ["technician"], "party": "agent", "fuzzy": True}],
     "then": {"categories": ["technician_dispatch"]}},
    {"name": "no_disclosure", "when": [{"not_said": ["this call may be recorded"], "party": "agent", "by_s": 20}],
     "then": {"categories": ["missing_disclosure"], "alert": "Say the recording disclosure"}},
]}
"""Rules on words the recognizer hears in this call through G.711 every time (the fixture's
keywords) and on a disclosure nobody says: live and replay must agree on all of them."""


def matches(events) -> set[tuple[str, tuple[str, ...], str, tuple[str, ...]]]:
    return {(e.rule, tuple(e.categories), e.message, tuple(e.notify)) for e in events if isinstance(e, RuleMatched)}


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(yaml.safe_dump(RULES))
    return path


@pytest.fixture(scope="module")
def replay_settings(tmp_path_factory: pytest.TempPathFactory, rules_file: Path) -> Settings:
    data = tmp_path_factory.mktemp("assist-data")
    return load_settings(environ={}, overrides={"data_dir": str(data), "mqtt.enabled": False,
                                                "asr.engine": "whisper", "rules.file": str(rules_file)})


@pytest.fixture(scope="module")
def engine(replay_settings: Settings) -> Iterator[AsrEngine]:
    eng = load_asr_engine(replay_settings)
    assert eng is not None
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def replayed(replay_settings: Settings, engine: AsrEngine) -> ReplayResult:
    res = asyncio.run(replay_file(FIXTURES / "bridged_escalation_8k_ulaw.wav", replay_settings, engine))
    assert res.error is None, res.error
    return res


def test_tense_caller_raises_a_cue_the_agent_acknowledged(replayed: ReplayResult):
    cues = [e for e in replayed.events if isinstance(e, AssistCue)]
    assert cues, [e.render() for e in replayed.events if e.render()]
    assert cues[0].reasons and set(cues[0].phrases) >= {"acknowledge", "next_step"}
    outcomes = [e for e in replayed.events if isinstance(e, AssistCueOutcome)]
    assert [o.cue for o in outcomes] == [c.cue for c in cues]
    summary = summarize(replayed.events)
    # the agent answers the complaint with "I understand, and I am sorry for the trouble"
    assert summary.cues[0].acknowledged is True, summary.cues
    assert summary.cues[0].ack_t is not None and summary.cues[0].ack_t > summary.cues[0].t
    assert summary.cues[0].tension in ("eased", "steady", "rose")


def test_checklist_ticks_and_rules_fire_on_the_replay(replayed: ReplayResult):
    updates = [e for e in replayed.events if isinstance(e, ChecklistUpdate)]
    assert updates[0].ticked == "" and updates[0].queue == "default"
    assert "greeting" in updates[-1].done  # "Thank you for waiting, how can I help you?"
    assert "disclosure" not in updates[-1].done
    summary = summarize(replayed.events)
    assert summary.checklist is not None and summary.checklist.items["greeting"] is not None
    assert {r for r, *_ in matches(replayed.events)} == {"complaint", "dispatch", "no_disclosure"}
    assert summary.categories == ("complaint", "missing_disclosure", "technician_dispatch")


def test_rules_test_command_prints_the_same_matches(replay_settings: Settings, rules_file: Path, tmp_path: Path):
    import contextlib
    import io

    from callcenter.cli import main

    out = tmp_path / "out.txt"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["--data-dir", str(replay_settings.data_dir), "rules", "test", "--engine", "whisper",
                     str(rules_file), str(FIXTURES / "bridged_escalation_8k_ulaw.wav")])
    out.write_text(buf.getvalue())
    assert code == 0, buf.getvalue()
    text = buf.getvalue()
    assert "complaint [complaint] alert agent, supervisor: The caller is complaining" in text
    assert "categories: complaint, missing_disclosure, technician_dispatch; 3 rule(s) fired" in text


@pytest.mark.sip
@pytest.mark.browser
@pytest.mark.broker
@pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)")
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing (apt-get install chromium)")
@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto binary missing (apt-get install mosquitto)")
async def test_live_bridged_call_fires_the_same_rules_and_shows_cue_and_checklist(
        tmp_path: Path, rules_file: Path, replayed: ReplayResult) -> None:
    playwright = pytest.importorskip("playwright.async_api")
    from callcenter.serve import start_service, stop_service
    from speech.ports import consecutive_free_ports
    from telephony.acd.directory import Directory, make_agent, save_directory
    from tests.e2e_console_support import stored_call
    from tests.test_console_agent_browser import sign_in
    from tests.test_serve_calls import place_call, short_timeout_flow, wait_record

    sides = FIXTURES / "sides"
    caller_side, agent_side = sides / "bridged_escalation.caller.wav", sides / "bridged_escalation.agent.wav"
    call_s = sf.info(str(caller_side)).duration + 4.0
    data = tmp_path / "data"
    data.mkdir()
    save_directory(Directory(agents=(make_agent("alice", "alice-pw", name="Alice", skills=("agents",),
                                                rounds=1000),)), data / "agents.yaml")
    bport, wport = free_port(), free_port()
    settings = load_settings(environ={}, overrides={
        "data_dir": str(data), "sip.port": free_port(), "sip.worker_base_port": consecutive_free_ports(2),
        "sip.workers": 2, "sip.front": "kamailio", "console.port": wport, "console.token": "assist-token",
        "store.api_port": free_port(), "mqtt.host": "127.0.0.1", "mqtt.port": bport, "mqtt.topic_prefix": "cc",
        "asr.engine": "whisper", "ivr.flow": str(short_timeout_flow(tmp_path)), "acd.registrar_poll_s": 0.5,
        "rules.file": str(rules_file),
    })
    timeout_ms = 90_000
    async with EmbeddedBroker(port=bport, backend="mosquitto"):
        svc = await start_service(settings, ready_timeout=60)
        try:
            front = f"{settings.sip.host}:{settings.sip.port}"
            agent = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "telephony.test_agent", f"sip:alice@{front}", "--password", "alice-pw",
                "--play", str(agent_side), "--wait-call", "120",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
            async with playwright.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 1000})
                await page.goto(f"http://127.0.0.1:{wport}/agent")
                await sign_in(page, "alice", "alice-pw")
                await page.wait_for_selector("#agent-state[data-state=ready]", timeout=timeout_ms)
                caller = asyncio.create_task(place_call(
                    svc.sip_uri, "--dtmf", "0", "--dtmf-first", "--play", str(caller_side),
                    "--hangup-after", f"{call_s:.0f}"))
                await page.wait_for_selector("#call[data-call-id]", timeout=timeout_ms)
                # live: the checklist opens, the greeting ticks, a cue shows its why and phrases
                await page.locator("#checklist li[data-item=greeting][data-done=true]").wait_for(timeout=timeout_ms)
                cue = page.locator("#cues li.cue").first
                await cue.wait_for(timeout=timeout_ms)
                assert not caller.done(), "the cue must show while the call is live"
                assert await cue.locator("ul.why li").count() >= 1
                assert "acknowledge" in (await cue.locator("dl.say").inner_text()).lower()
                # knowledge: "my internet has been down" brings up an outage or no-internet article
                await page.locator("#kb-suggestions li").first.wait_for(timeout=timeout_ms)
                assert not caller.done(), "suggestions must show while the call is live"
                live_articles = await page.locator("#kb-suggestions li").evaluate_all(
                    "els => els.map(e => e.dataset.article)")
                await page.screenshot(path=str(tmp_path / "agent-assist.png"), full_page=True)
                result = await caller
                await page.locator("#summary-card").wait_for(state="visible", timeout=timeout_ms)
                assert await page.locator("#cues li.cue[data-acknowledged]").count() >= 1
                categories = await page.locator("#categories").inner_text()
                await browser.close()
            await asyncio.wait_for(agent.communicate(), 60)
            await wait_record(svc, result["call_id"])
        finally:
            await stop_service(svc)

    detail = stored_call(settings.store_url, result["call_id"])
    live = {(e["rule"], tuple(e["categories"]), e["message"], tuple(e["notify"]))
            for e in detail.events if e["type"] == "rule.matched"}
    assert live == matches(replayed.events), json.dumps(sorted(live))
    summary = detail.summary.to_dict()
    assert tuple(summary["categories"]) == summarize(replayed.events).categories
    assert set(categories.split(", ")) == set(summary["categories"])
    assert summary["cues"] and summary["cues"][0]["acknowledged"] is not None
    assert summary["checklist"]["items"]["greeting"] is not None
    # each suggestion answers a caller final: stamped with that final's call time
    finals = {e["t"] for e in detail.events if e["type"] == "transcript.final" and e["party"] == "caller"}
    suggestions = [e for e in detail.events if e["type"] == "assist.suggestion"]
    assert suggestions and all(e["t"] in finals for e in suggestions), suggestions
    suggested = {a["id"] for e in suggestions for a in e["articles"]}
    assert set(live_articles) <= suggested
    assert suggested & {"outage-check-area", "outage-credit", "tech-no-internet"}, suggested
