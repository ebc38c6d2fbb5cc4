"""The agent's page in headless Chromium shows the assist events of their call: a de-escalation
cue with its reasons and playbook phrases and then its outcome, the script checklist ticking,
a rule's alert (only when it notifies the agent) and the call's categories; the supervisors'
call page shows the same cards and the alerts meant for supervisors. The events come from
the real stages (run on a scripted call) through a real publisher and mosquitto."""

from __future__ import annotations

import asyncio

import pytest

from assist.checklist import ChecklistSettings, ChecklistStage
from assist.cues import CueSettings, CueStage
from assist.files import parse_model
from assist.rules_model import RulesFile
from assist.rules_stage import RulesSettings, RulesStage
from callcenter.agent_console import build_agent_console
from callcenter.settings import MqttSettings, Settings
from live.broker import EmbeddedBroker
from live.console import create_console_app
from live.publisher import MqttPublisher
from live.testing import free_port, serve
from speech.events import (
    AssistCue,
    AssistCueOutcome,
    CallEnded,
    CallStarted,
    ChecklistUpdate,
    Event,
    FinalTranscript,
    PartyJoined,
    RuleMatched,
    ToneAlert,
    ToneUpdate,
)
from speech.frames import Party
from telephony.acd.directory import Directory, make_agent, save_directory
from telephony.acd.store import AcdStore
from tests.e2e_console_support import needs_chromium, needs_mosquitto
from tests.stage_harness import drive, frames_from_tracks, silence
from tests.test_console_agent_browser import sign_in
from tests.test_console_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.broker,
    pytest.mark.slow,
    needs_chromium,
    needs_mosquitto,
]

C, A = Party.CALLER, Party.AGENT
CALL = "assist-br1"
RULES = {"rules": [
    {"name": "repeat_contact", "when": [{"said": ["third time"], "party": "caller"}],
     "then": {"categories": ["repeat_contact"], "alert": "Repeat caller: check the open tickets",
              "notify": ["agent", "supervisor"]}},
    {"name": "supervisors_only", "when": [{"said": ["third time"]}],
     "then": {"categories": ["watch"], "alert": "for supervisors only", "notify": ["supervisor"]}},
]}


def f(t: float, party: Party, text: str) -> FinalTranscript:
    return FinalTranscript(call_id=CALL, t=t, party=party, text=text, start=t - 2.0, end=t)


def scripted() -> list[Event]:
    return [
        PartyJoined(call_id=CALL, t=1.0, party=A, agent_id="alice", queue="billing"),
        f(3.0, A, "Thank you for calling, how can I help you?"),
        f(8.0, C, "This is the third time I am calling about my bill!"),
        ToneUpdate(call_id=CALL, t=8.0, party=C, label="tense", score=0.62),
        ToneAlert(call_id=CALL, t=8.0, party=C, kind="rising_tension", label="tense", score=0.62,
                  reasons=("pitch up 30% on the caller's baseline",)),
        f(12.0, A, "I understand how frustrating this must be, let me verify your identity"),
        ToneUpdate(call_id=CALL, t=16.0, party=C, label="calm", score=0.2),
    ]


def assist_events() -> list[Event]:
    stages = [CueStage(CueSettings(ack_window_s=10, trajectory_s=10, settle_s=1)),
              RulesStage(RulesSettings(), parse_model(RULES, RulesFile)), ChecklistStage(ChecklistSettings())]
    out = asyncio.run(drive(stages, frames_from_tracks({C: silence(30.0)}), inject=scripted(), end=30.0,
                            call_id=CALL))
    return [e for e in out if isinstance(e, AssistCue | AssistCueOutcome | RuleMatched | ChecklistUpdate)]


async def test_agent_page_shows_cue_rule_alert_and_checklist(tmp_path):
    playwright = pytest.importorskip("playwright.async_api")
    produced = await asyncio.to_thread(assist_events)
    by_type = {type(e).__name__ for e in produced}
    assert by_type == {"AssistCue", "AssistCueOutcome", "RuleMatched", "ChecklistUpdate"}, by_type
    directory = Directory(agents=(make_agent("alice", "alice-pw", name="Alice", skills=("billing",), rounds=1000),))
    save_directory(directory, tmp_path / "agents.yaml")
    settings = Settings(data_dir=tmp_path)
    store = AcdStore(settings.store_url)
    store.sync_directory(directory)
    store.close()
    bport, wport = free_port(), free_port()
    async with EmbeddedBroker(port=bport, backend="mosquitto"):
        app = create_console_app(token="assist-browser", broker_host="127.0.0.1", broker_port=bport,
                                 topic_prefix="cc", agents=build_agent_console(settings))
        async with serve(app, wport):
            pub = MqttPublisher(MqttSettings(host="127.0.0.1", port=bport, topic_prefix="cc"), tmp_path / "o.sqlite")
            await pub.start()
            async with playwright.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 1000})
                await page.goto(f"http://127.0.0.1:{wport}/agent")
                await sign_in(page, "alice", "alice-pw")
                await page.wait_for_selector("#conn.ok")
                pub.publish(CallStarted(call_id=CALL, t=0.0, source="sip", caller="+15550100", parties=("caller", "agent")))
                live = sorted([*scripted(), *produced], key=lambda e: e.t)
                outcome = [e for e in live if isinstance(e, AssistCueOutcome)]
                for e in live:
                    if not isinstance(e, AssistCueOutcome):
                        pub.publish(e)
                await page.wait_for_selector(f"#call[data-call-id={CALL}]")

                cue = page.locator("#cues li.cue[data-cue='1']")
                await cue.wait_for()
                assert await cue.get_attribute("data-trigger") == "phrase"
                assert 'said "third time"' in await cue.locator("ul.why").inner_text()
                say = await cue.locator("dl.say").inner_text()
                assert "acknowledge" in say.lower() and "I understand how frustrating this must be." in say
                assert "waiting for your acknowledgement" in await cue.locator(".outcome").inner_text()
                for e in outcome:
                    pub.publish(e)
                await page.wait_for_selector("#cues li.cue[data-cue='1'][data-acknowledged=true]")
                assert "acknowledged; caller tension eased" in await cue.locator(".outcome").inner_text()

                assert await page.locator("#checklist-queue").inner_text() == "billing"
                await page.wait_for_selector("#checklist li[data-item=verification][data-done=true]")
                assert await page.locator("#checklist li[data-item=greeting]").get_attribute("data-done") == "true"
                assert await page.locator("#checklist li[data-item=closing]").get_attribute("data-done") == "false"

                alerts = await page.locator("#alerts").inner_text()
                assert "rule repeat_contact: Repeat caller: check the open tickets" in alerts
                assert "for supervisors only" not in alerts
                assert await page.locator("#categories").inner_text() == "repeat_contact, watch"
                await page.screenshot(path=str(tmp_path / "agent-assist.png"), full_page=True)

                # the supervisors' call page: the same cards, and the alerts meant for supervisors
                sup = await browser.new_page(viewport={"width": 1280, "height": 1000})
                await sup.goto(f"http://127.0.0.1:{wport}/calls/{CALL}?token=assist-browser")
                await sup.wait_for_selector("#cues li.cue[data-cue='1'][data-acknowledged=true]")
                await sup.wait_for_selector("#checklist li[data-item=greeting][data-done=true]")
                sup_alerts = await sup.locator("#alerts").inner_text()
                assert "for supervisors only" in sup_alerts and "Repeat caller" in sup_alerts
                pub.publish(CallEnded(call_id=CALL, t=30.0, duration=30.0))
                await browser.close()
            await pub.stop()
