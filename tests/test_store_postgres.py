"""CRM store on the real PostgreSQL at 127.0.0.1:5432, in a throwaway database per test module."""

from __future__ import annotations

import dataclasses

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from summaries.sample_calls import angry_tech_call, billing_call, silent_call
from summaries.schema import Base
from summaries.store import CrmStore
from summaries.summarizer import summarize
from summaries.summary import FollowUp

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(pg_url):
    s = CrmStore(pg_url)
    s.start()
    yield s
    with s._session() as sess, sess.begin():  # empty the tables between tests
        sess.execute(text("TRUNCATE calls, contacts, transcripts, events, summaries, follow_up_tasks CASCADE"))
    s.stop()


def test_schema_matches_models(store, pg_url):
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_save_search_and_idempotency(store):
    for ev in (billing_call(), angry_tech_call(), silent_call(), billing_call()):
        store.save_call(ev, summarize(ev))
    assert store.count_calls() == 3
    assert [c.call_id for c in store.search(text="Router")] == ["call-tech"]
    assert [c.call_id for c in store.search(tone="angry")] == ["call-tech"]
    assert [c.call_id for c in store.search(date_from="2026-03-04T00:00:00Z")] == ["call-silent"]
    detail = store.get_call("call-billing")
    assert detail.summary == summarize(billing_call())
    assert len(store.get_contact("+15550100").open_tasks) == 1


def test_failed_save_is_rolled_back(store):
    ev = angry_tech_call()
    bad = dataclasses.replace(summarize(ev), follow_ups=(FollowUp(text=None),))
    with pytest.raises(Exception):  # noqa: B017 - NOT NULL violation from PostgreSQL
        store.save_call(ev, bad)
    assert store.get_call("call-tech") is None and store.get_contact("+15550111") is None
