"""CLI text views of stored calls (from a real SQLite store)."""

from __future__ import annotations

import pytest

from summaries.report import format_call, format_call_list, format_summary_brief
from summaries.sample_calls import angry_tech_call, billing_call
from summaries.store import CrmStore
from summaries.summarizer import summarize


@pytest.fixture
def store(tmp_path):
    s = CrmStore(f"sqlite:///{tmp_path / 'crm.db'}")
    s.start()
    for ev in (billing_call(), angry_tech_call()):
        s.save_call(ev, summarize(ev))
    yield s
    s.stop()


def test_call_list(store):
    out = format_call_list(store.list_calls())
    assert "call-billing" in out and "technical_support" in out and "2026-03-03 15:30:00" in out
    assert "\x1b[" not in out  # no colour codes
    assert format_call_list(r.to_dict() for r in store.list_calls()) == out
    assert format_call_list([]) == "No calls.\n"


def test_call_detail(store):
    out = format_call(store.get_call("call-billing"))
    assert "Reason:     billing" in out
    assert "Resolution: resolved" in out
    assert "[due: within 24 hours]" in out
    assert "account_number = 12345678 (dtmf)" in out
    assert "main_menu > account_number > billing_queue" in out
    assert "tense@12s -> calm@36s" in out
    assert "charged twice" in out  # transcript table
    assert format_call(store.get_call("call-billing").to_dict()) == out


def test_brief_after_replay():
    out = format_summary_brief(summarize(billing_call()))
    assert out.startswith("call call-billing: reason billing, resolution resolved, tone tense -> calm")
    assert "[due: within 24 hours]" in out
    assert format_summary_brief(summarize(billing_call()).to_dict()) == out


def test_durable_writer_reexport_and_save_call_alias(tmp_path):
    from summaries.store import DurableWriter

    store = CrmStore(f"sqlite:///{tmp_path / 'w.db'}")
    writer = DurableWriter(store, tmp_path / "spool")
    ev = billing_call()
    assert writer.save_call(ev, summarize(ev)) == "call-billing"
    assert store.get_call("call-billing") is not None
    store.stop()
