"""CRM store on SQLite: schema by migration, one-transaction saves, idempotency, queries."""

from __future__ import annotations

import dataclasses

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from speech.events import FinalTranscript
from summaries.redact import Redactor
from summaries.sample_calls import angry_tech_call, billing_call, silent_call
from summaries.schema import Base
from summaries.store import CrmStore, StoreError
from summaries.summarizer import summarize
from summaries.summary import FollowUp


@pytest.fixture
def store(tmp_path):
    s = CrmStore(f"sqlite:///{tmp_path / 'crm.db'}")
    s.start()
    yield s
    s.stop()


def _save(store, events, **kw):
    return store.save_call(events, summarize(events), **kw)


def test_migration_creates_the_model_schema(store, tmp_path):
    engine = create_engine(store.url)
    with engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
        assert {"contacts", "calls", "transcripts", "events", "summaries", "follow_up_tasks", "alembic_version"} <= names
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0002"
    engine.dispose()
    # Starting again on an up-to-date database is a no-op.
    again = CrmStore(store.url)
    again.start()
    again.stop()


def test_save_and_read_back(store):
    assert _save(store, billing_call()) == "call-billing"
    _save(store, angry_tech_call())
    _save(store, silent_call())
    calls = store.list_calls()
    assert [c.call_id for c in calls] == ["call-silent", "call-tech", "call-billing"]  # newest first
    assert [c.call_id for c in store.list_calls(limit=1, offset=1)] == ["call-tech"]
    detail = store.get_call("call-billing")
    assert detail.summary.reason == "billing" and detail.producer == "offline"
    assert detail.summary == summarize(billing_call())
    assert [u.party for u in detail.transcript][:2] == ["caller", "agent"]
    assert detail.transcript[0].text.startswith("hi I was charged")
    assert len(detail.events) == len(billing_call())
    assert detail.events[0]["type"] == "call.started"
    assert [t.due_hint for t in detail.tasks] == ["within 24 hours"]
    assert store.get_call("nope") is None


def test_search_filters(store):
    for ev in (billing_call(), angry_tech_call(), silent_call()):
        _save(store, ev)
    assert [c.call_id for c in store.search(text="ROUTER")] == ["call-tech"]
    assert [c.call_id for c in store.search(text="billing")] == ["call-billing"]  # by reason
    assert store.search(text="100%_") == []  # LIKE wildcards are literal
    assert [c.call_id for c in store.search(caller="+15550122")] == ["call-silent"]
    assert [c.call_id for c in store.search(tone="angry")] == ["call-tech"]
    assert [c.call_id for c in store.search(tone="tense")] == ["call-billing"]  # peak
    got = store.search(date_from="2026-03-03T00:00:00+00:00", date_to="2026-03-03T23:59:59+00:00")
    assert [c.call_id for c in got] == ["call-tech"]
    # Time zones are honoured: 16:30 at +01:00 is 15:30 UTC.
    assert [c.call_id for c in store.search(date_from="2026-03-03T16:30:00+01:00", date_to="2026-03-03T16:31:00+01:00")] == ["call-tech"]


def test_contact_and_tasks(store):
    _save(store, billing_call())
    _save(store, billing_call(call_id="call-billing-2", started_at="2026-03-05T10:00:00+00:00"))
    contact = store.get_contact("+15550100")
    assert [c.call_id for c in contact.calls] == ["call-billing-2", "call-billing"]
    assert contact.first_seen.startswith("2026-03-02") and contact.last_seen.startswith("2026-03-05")
    assert len(contact.open_tasks) == 2
    assert store.get_contact("+19999") is None
    assert {t.call_id for t in store.list_tasks()} == {"call-billing", "call-billing-2"}


def test_idempotent_on_call_id(store):
    _save(store, billing_call())
    _save(store, billing_call())
    assert store.count_calls() == 1
    assert len(store.get_call("call-billing").tasks) == 1
    assert len(store.list_tasks()) == 1
    assert len(store.get_contact("+15550100").calls) == 1


def test_failed_save_writes_nothing_and_keeps_the_previous_version(store):
    _save(store, billing_call())
    ev = billing_call()
    bad = dataclasses.replace(summarize(ev), reason="cancellation", follow_ups=(FollowUp(text=None),))
    with pytest.raises(Exception):  # noqa: B017 - NOT NULL violation from the database itself
        store.save_call(ev, bad)
    assert store.get_call("call-billing").summary.reason == "billing"
    new = angry_tech_call()
    bad_new = dataclasses.replace(summarize(new), follow_ups=(FollowUp(text=None),))
    with pytest.raises(Exception):  # noqa: B017
        store.save_call(new, bad_new)
    assert store.get_call("call-tech") is None
    assert store.get_contact("+15550111") is None  # the contact insert was rolled back too


def test_originals_only_in_their_own_columns(store):
    ev = billing_call()
    i = next(i for i, e in enumerate(ev) if isinstance(e, FinalTranscript))
    ev[i] = dataclasses.replace(ev[i], text="my card is 4111 1111 1111 1111", words=())
    red = Redactor(keep_original=True).redact_call(ev)
    store.save_call(red.events, summarize(red.events), originals=red.originals)
    detail = store.get_call("call-billing")
    assert "[CARD]" in detail.transcript[0].text
    assert detail.transcript[0].original_text == "my card is 4111 1111 1111 1111"
    plain = Redactor().redact_call(billing_call(call_id="p"))
    store.save_call(plain.events, summarize(plain.events), originals=plain.originals)
    assert all(u.original_text is None for u in store.get_call("p").transcript)


def test_not_started_is_a_clear_error(tmp_path):
    s = CrmStore(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(StoreError):
        s.list_calls()
    s.stop()
    s.stop()
