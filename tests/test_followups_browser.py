"""The agent page's Follow-ups panel in headless Chromium: the agent's own tasks from the real
store, the overdue one flagged and first, another agent's task absent; "Done" closes it."""

from __future__ import annotations

import pytest

from callcenter.agent_console import build_agent_console
from callcenter.follow_ups import StoreTasks
from callcenter.settings import Settings
from live.console import create_console_app
from live.testing import free_port, serve
from summaries.store import CrmStore
from summaries.summarizer import summarize
from telephony.acd.directory import Directory, make_agent, save_directory
from telephony.acd.store import AcdStore
from tests.e2e_console_support import CHROMIUM, CHROMIUM_ARGS, UI_TIMEOUT_MS, needs_chromium
from tests.test_followups import promise_call

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]


async def test_agent_page_flags_an_overdue_follow_up(tmp_path):
    playwright = pytest.importorskip("playwright.async_api")
    crm = CrmStore(f"sqlite:///{tmp_path / 'crm.db'}")
    crm.start()
    for call_id, agent, started, promise in [
        ("late", "alice", "2020-01-06T09:00:00+00:00", "I will call you back tomorrow morning"),
        ("later", "alice", "2099-01-05T09:00:00+00:00", "I will send you an email by Friday"),
        ("bobs", "bob", "2020-01-06T09:00:00+00:00", "I will call you back today"),
    ]:
        events = promise_call(call_id, agent, started, promise)
        crm.save_call(events, summarize(events))
    directory = Directory(agents=(make_agent("alice", "alice-pw", name="Alice", skills=("billing",), rounds=1000),
                                  make_agent("bob", "bob-pw", name="Bob", skills=("billing",), rounds=1000)))
    save_directory(directory, tmp_path / "agents.yaml")
    settings = Settings(data_dir=tmp_path)
    acd = AcdStore(settings.store_url)
    acd.sync_directory(directory)
    acd.close()
    app = create_console_app(token="t", broker_host=None, broker_port=0, topic_prefix="cc",
                             agents=build_agent_console(settings), tasks=StoreTasks(crm))
    port = free_port()
    try:
        async with serve(app, port), playwright.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            await page.goto(f"http://127.0.0.1:{port}/agent")
            await page.fill("#agent-id", "alice")
            await page.fill("#password", "alice-pw")
            await page.click("#btn-login")
            await page.wait_for_selector("#follow-ups[data-loaded=true] .task")
            tasks = page.locator("#follow-ups .task")
            assert await tasks.count() == 2  # bob's task is not on alice's page
            first = tasks.nth(0)
            assert "overdue" in (await first.get_attribute("class") or "")
            assert await first.locator(".task-overdue").inner_text() == "overdue"
            assert "call you back" in await first.locator(".task-text").inner_text()
            assert await tasks.nth(1).locator(".task-overdue").count() == 0
            assert "1 overdue" in await page.locator("#follow-ups .task-msg").inner_text()
            await first.locator("button.task-done").click()
            await page.wait_for_function("document.querySelectorAll('#follow-ups .task').length === 1")
            assert await page.locator("#follow-ups .task.overdue").count() == 0
            await browser.close()
        assert [t.call_id for t in crm.list_tasks("done")] == ["late"]
    finally:
        crm.stop()
