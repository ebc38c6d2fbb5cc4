"""Follow-up tasks: spoken due hints resolved to dates, stored per agent with the call's agent as
owner, listed overdue first, closed; through the store (SQLite), the CRM REST API and the
console's API (token, supervisor and agent sessions: an agent sees and closes only their own)."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from callcenter.agent_console import build_agent_console
from callcenter.follow_ups import StoreTasks
from live.console import create_console_app
from speech.events import CallEnded, CallStarted, Event, FinalTranscript, PartyJoined
from speech.frames import Party
from summaries.api import create_api
from summaries.due_dates import resolve_due
from summaries.store import CrmStore
from summaries.summarizer import summarize
from tests.console_agents_support import PASSWORDS, agents_settings

WED = datetime(2026, 3, 4, 16, 30)  # a Wednesday, 16:30 (naive UTC, as the store keeps it)


@pytest.mark.parametrize(("hint", "due"), [
    ("today", "2026-03-04 23:59:59"),
    ("end of the day", "2026-03-04 23:59:59"),
    ("by end of the day", "2026-03-04 23:59:59"),
    ("tonight", "2026-03-04 23:59:59"),
    ("this afternoon", "2026-03-04 17:00:00"),
    ("this morning", "2026-03-04 23:59:59"),  # already past at 16:30: the end of the day
    ("tomorrow", "2026-03-05 23:59:59"),
    ("Tomorrow morning", "2026-03-05 12:00:00"),
    ("tomorrow afternoon", "2026-03-05 17:00:00"),
    ("by tomorrow", "2026-03-05 23:59:59"),
    ("by Friday", "2026-03-06 23:59:59"),
    ("on friday", "2026-03-06 23:59:59"),
    ("by wednesday", "2026-03-04 23:59:59"),  # said on a Wednesday: today
    ("next wednesday", "2026-03-11 23:59:59"),
    ("next monday", "2026-03-09 23:59:59"),
    ("within 48 hours", "2026-03-06 16:30:00"),
    ("within forty-eight hours", "2026-03-06 16:30:00"),
    ("within forty eight hours", "2026-03-06 16:30:00"),
    ("within 24 hours", "2026-03-05 16:30:00"),
    ("in 3 days", "2026-03-07 23:59:59"),
    ("in three days", "2026-03-07 23:59:59"),
    ("within the next two days", "2026-03-06 23:59:59"),
    ("within 3 business days", "2026-03-09 23:59:59"),  # Thu, Fri, (weekend), Mon
    ("in two weeks", "2026-03-18 23:59:59"),
    ("this week", "2026-03-06 23:59:59"),
    ("by the end of the week", "2026-03-06 23:59:59"),
    ("next week", "2026-03-13 23:59:59"),
    ("by end of the month", "2026-03-31 23:59:59"),
    ("next month", "2026-04-30 23:59:59"),
    ("unknown", None),
    ("", None),
    (None, None),
    ("soon", None),
    ("sometime", None),
    ("in 0 days", None),
    ("within many hours", None),
])
def test_due_hints_resolve_against_the_call_start(hint, due):
    got = resolve_due(hint, WED)
    assert (got.strftime("%Y-%m-%d %H:%M:%S") if got else None) == due


def test_due_dates_across_a_year_end_and_on_a_weekend():
    assert resolve_due("next month", datetime(2026, 12, 10, 9)) == datetime(2027, 1, 31, 23, 59, 59)
    saturday = datetime(2026, 3, 7, 10)
    assert resolve_due("this week", saturday) == datetime(2026, 3, 7, 23, 59, 59)  # the week's Friday is past
    assert resolve_due("within 1 business day", saturday) == datetime(2026, 3, 9, 23, 59, 59)


def promise_call(call_id: str, agent_id: str, started_at: str, *promises: str) -> list[Event]:
    """A bridged call in which ``agent_id`` makes each promise (one agent utterance each)."""
    c, a = Party.CALLER, Party.AGENT
    ev: list[Event] = [
        CallStarted(call_id=call_id, t=0.0, source="sip", caller="+15550100", callee="q",
                    started_at=started_at, parties=("caller", "agent")),
        PartyJoined(call_id=call_id, t=2.0, party=a, agent_id=agent_id, queue="billing", wait_s=1.0, ring_s=1.0),
        FinalTranscript(call_id=call_id, t=5.0, party=c, text="my router keeps dropping the connection",
                        start=3.0, end=4.8),
    ]
    t = 6.0
    for text in promises:
        ev.append(FinalTranscript(call_id=call_id, t=t + 2.5, party=a, text=text, start=t, end=t + 2.5))
        t += 4.0
    ev.append(CallEnded(call_id=call_id, t=t + 2.0, reason="hangup", duration=t + 2.0))
    return ev


@pytest.fixture
def crm(tmp_path):
    store = CrmStore(f"sqlite:///{tmp_path / 'crm.db'}")
    store.start()
    for call_id, agent, started, promises in [
        ("c-alice-1", "alice", "2026-03-02T09:00:00+00:00", ("I will call you back tomorrow morning",)),
        ("c-alice-2", "alice", "2026-03-04T16:30:00+00:00", ("I will send you an email by Friday",
                                                             "I will check the line within 48 hours")),
        ("c-bob-1", "bob", "2026-03-03T10:00:00+00:00", ("I will call you back today",)),
    ]:
        events = promise_call(call_id, agent, started, *promises)
        store.save_call(events, summarize(events))
    yield store
    store.stop()


NOW = datetime(2026, 3, 5, 12, 0)  # Thursday noon: alice's Tuesday promise and bob's are late


def test_store_resolves_due_dates_and_lists_overdue_first(crm):
    rows = crm.list_tasks(now=NOW)
    assert [(r.call_id, r.agent_id, r.due_at, r.overdue) for r in rows] == [
        ("c-alice-1", "alice", "2026-03-03T12:00:00+00:00", True),
        ("c-bob-1", "bob", "2026-03-03T23:59:59+00:00", True),
        ("c-alice-2", "alice", "2026-03-06T16:30:00+00:00", False),  # within 48 hours
        ("c-alice-2", "alice", "2026-03-06T23:59:59+00:00", False),  # by Friday
    ]
    assert {r.owner for r in rows} == {"agent"} and rows[0].due_hint == "tomorrow morning"
    alice = crm.list_tasks(agent="alice", now=NOW)
    assert [r.call_id for r in alice] == ["c-alice-1", "c-alice-2", "c-alice-2"]
    assert [r.call_id for r in crm.list_tasks(agent="alice", overdue=True, now=NOW)] == ["c-alice-1"]
    assert len(crm.list_tasks(agent="alice", overdue=False, now=NOW)) == 2
    assert crm.list_tasks(agent="carol", now=NOW) == []


def test_store_marks_tasks_done_and_open_again(crm):
    task = crm.list_tasks(agent="bob", now=NOW)[0]
    done = crm.set_task_done(task.id, now=NOW)
    assert done is not None and done.status == "done" and done.done_at == "2026-03-05T12:00:00+00:00"
    assert not done.overdue  # a done task is never late
    again = crm.set_task_done(task.id, now=datetime(2026, 3, 6))
    assert again is not None and again.done_at == done.done_at  # the first closing is kept
    assert crm.list_tasks(agent="bob", now=NOW) == []
    assert [r.id for r in crm.list_tasks("done", now=NOW)] == [task.id]
    reopened = crm.set_task_done(task.id, False)
    assert reopened is not None and reopened.status == "open" and reopened.done_at is None
    assert crm.set_task_done(999_999) is None and crm.get_task(999_999) is None


def test_crm_api_filters_exports_csv_and_closes_tasks(crm):
    client = TestClient(create_api(crm, token="w", read_token="r"))
    read, write = {"Authorization": "Bearer r"}, {"Authorization": "Bearer w"}
    items = client.get("/api/tasks", params={"agent": "alice"}, headers=read).json()["items"]
    assert [t["call_id"] for t in items] == ["c-alice-1", "c-alice-2", "c-alice-2"]
    assert items[0]["overdue"] is True and items[0]["due_hint"] == "tomorrow morning"  # the clock is now: 2026-03-02 is past
    overdue = client.get("/api/tasks", params={"overdue": "true"}, headers=read).json()["items"]
    assert {t["call_id"] for t in overdue} == {"c-alice-1", "c-alice-2", "c-bob-1"}
    assert client.get("/api/tasks", params={"overdue": "maybe"}, headers=read).status_code == 422
    got = client.get("/api/tasks", params={"agent": "bob", "format": "csv"}, headers=read)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert [(r["call_id"], r["agent_id"], r["due_at"], r["overdue"]) for r in rows] == [
        ("c-bob-1", "bob", "2026-03-03T23:59:59+00:00", "True")]
    task_id = int(rows[0]["id"])
    assert client.post(f"/api/tasks/{task_id}/done", headers=read).status_code == 403  # read-only token
    assert client.post(f"/api/tasks/{task_id}/done").status_code == 401
    done = client.post(f"/api/tasks/{task_id}/done", headers=write).json()
    assert done["status"] == "done" and done["done_at"]
    assert client.get("/api/tasks", params={"agent": "bob"}, headers=read).json()["items"] == []
    assert client.post("/api/tasks/999999/done", headers=write).status_code == 404
    assert client.post("/api/tasks/abc/done", headers=write).status_code == 422


TOKEN = "tasks-token"


@pytest.fixture
def console(tmp_path, crm):
    settings = agents_settings(tmp_path)
    app = create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc",
                             agents=build_agent_console(settings), tasks=StoreTasks(crm))
    with TestClient(app) as client:
        yield client


def _login(client: TestClient, agent_id: str) -> None:
    r = client.post("/api/agent/login", json={"agent_id": agent_id, "password": PASSWORDS[agent_id]})
    assert r.status_code == 200, r.text


def test_console_agents_see_and_close_only_their_own_tasks(console):
    assert console.get("/api/tasks").status_code == 401
    _login(console, "alice")
    mine = console.get("/api/tasks").json()
    assert mine["agent"] == "alice" and {t["agent_id"] for t in mine["items"]} == {"alice"}
    assert mine["items"][0]["overdue"] is True  # overdue first
    assert console.get("/api/tasks", params={"agent": "bob"}).status_code == 403
    assert console.get("/tasks").status_code in (401, 403)  # the all-agents page is the supervisors'
    _login(console, "sue")
    everyone = console.get("/api/tasks").json()["items"]
    assert {t["agent_id"] for t in everyone} == {"alice", "bob"}
    bob_task = next(t for t in everyone if t["agent_id"] == "bob")
    alice_task = next(t for t in everyone if t["agent_id"] == "alice")
    assert console.get("/tasks").status_code == 200
    csv_rows = list(csv.DictReader(io.StringIO(console.get("/api/tasks", params={"format": "csv"}).text)))
    assert len(csv_rows) == len(everyone)
    _login(console, "alice")
    assert console.post(f"/api/tasks/{bob_task['id']}/done").status_code == 403
    assert console.post(f"/api/tasks/{alice_task['id']}/done").json()["status"] == "done"
    assert console.post("/api/tasks/999999/done").status_code == 404


def test_console_token_sees_every_task_and_filters(console):
    console.cookies.clear()
    r = console.get("/api/tasks", params={"token": TOKEN, "agent": "bob", "overdue": "true"})
    assert r.status_code == 200, r.text
    assert [t["agent_id"] for t in r.json()["items"]] == ["bob"]
    page = console.get("/tasks")
    assert page.status_code == 200 and 'data-scope="all"' in page.text
