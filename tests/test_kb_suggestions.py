"""Knowledge suggestions on a call: the stage in the real pipeline (scripted transcripts), the
agent's helpful mark stored and named in the summary, and the console's feedback route."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from assist.feedback import FeedbackStore
from assist.kb_settings import SAMPLE_KB, KnowledgeSettings
from assist.suggestions import SuggestionStage, index_opener
from callcenter.aftercall import AfterCall
from callcenter.settings import load_settings
from live.console import auth, create_console_app
from speech.events import (
    AssistFeedback,
    AssistSuggestion,
    FinalTranscript,
    IvrAction,
    IvrStep,
    SummaryReady,
)
from speech.frames import PIPELINE_RATE, Party
from summaries.report import format_summary_brief
from tests.stage_harness import drive, frames_from_tracks, of_type

C, A = Party.CALLER, Party.AGENT


def stage(tmp_path: Path, **settings: object) -> SuggestionStage:
    return SuggestionStage(index_opener(SAMPLE_KB, tmp_path / "kb.sqlite", auto_index=True),
                           KnowledgeSettings(**settings))  # type: ignore[arg-type]


def silence(seconds: float) -> list:
    return frames_from_tracks({C: np.zeros(int(seconds * PIPELINE_RATE), dtype=np.int16)})


def final(t: float, text: str, party: Party = C) -> FinalTranscript:
    return FinalTranscript(t=t, party=party, text=text, start=t - 2.0, end=t)


def test_each_caller_final_brings_suggestions_right_after_it(tmp_path: Path) -> None:
    script = [
        IvrStep(t=1.0, node="billing_queue", action=IvrAction.ROUTE, detail={"queue": "billing"}),
        final(4.0, "hello I was charged twice for my last order"),
        final(6.0, "let me verify your order", A),  # the agent's words are never a query
        final(8.0, "yes twice"),  # the same articles: nothing new
        final(12.0, "and my internet has been down for two days"),
    ]
    events = asyncio.run(drive([stage(tmp_path)], silence(14.0), script, call_id="kb1"))
    suggestions = of_type(events, AssistSuggestion)
    assert [s.final_t for s in suggestions] == [4.0, 12.0]
    first, second = suggestions
    assert first.articles[0]["id"] == "billing-double-charge"
    assert {"charged", "twice"} <= set(first.articles[0]["matched"])
    assert first.articles[0]["body"].startswith("When a customer sees the same amount taken twice")
    assert first.queue == "billing" and first.t == 4.0 and first.call_id == "kb1"
    assert len(first.articles) <= 3
    assert "outage-check-area" in [a["id"] for a in second.articles]
    # Each suggestion comes after the final it answers, never before: the final is not held up.
    order = [e for e in events if isinstance(e, FinalTranscript | AssistSuggestion)]
    assert order.index(suggestions[0]) == 1 and order.index(suggestions[1]) == len(order) - 1
    assert "billing-double-charge" in (first.render() or "")


def test_a_missing_knowledge_base_costs_the_call_nothing(tmp_path: Path) -> None:
    broken = SuggestionStage(index_opener(tmp_path / "nowhere", tmp_path / "kb.sqlite", auto_index=True))
    events = asyncio.run(drive([broken], silence(6.0), [final(2.0, "charged twice"), final(4.0, "refund")]))
    assert of_type(events, AssistSuggestion) == []
    assert len(of_type(events, FinalTranscript)) == 2


def test_the_helpful_mark_is_stored_and_named_in_the_summary(tmp_path: Path) -> None:
    settings = load_settings(overrides={"data_dir": str(tmp_path)}, environ={})
    marks = FeedbackStore(settings.kb_feedback_path)
    marks.mark("kb2", "tech-no-internet", helpful=True, title="Router lights", agent_id="alice")
    marks.mark("kb2", "billing-double-charge", helpful=True, title="Charged twice", agent_id="alice")
    marks.mark("kb2", "tech-no-internet", helpful=False, title="Router lights", agent_id="alice")  # changed her mind
    marks.mark("other", "plan-change", helpful=True)
    marks.close()
    events = asyncio.run(drive([stage(tmp_path)], silence(6.0), [final(2.0, "I was charged twice")], call_id="kb2"))

    async def complete() -> dict:
        after = AfterCall(settings)
        await after.start()
        try:
            return await after.complete("kb2", events)
        finally:
            await after.stop()

    summary = asyncio.run(complete())
    assert [(a["article_id"], a["helpful"]) for a in summary["articles"]] == [
        ("billing-double-charge", True), ("tech-no-internet", False)]
    brief = format_summary_brief(summary)
    assert "article billing-double-charge (Charged twice) used" in brief
    assert "article tech-no-internet (Router lights) not helpful" in brief

    from summaries.store import CrmStore

    store = CrmStore(settings.store_url)
    store.start()
    try:
        stored = store.get_call("kb2")
    finally:
        store.stop()
    assert stored is not None and stored.summary is not None
    assert [a.article_id for a in stored.summary.articles] == ["billing-double-charge", "tech-no-internet"]
    assert sum(1 for e in stored.events if e["type"] == "assist.feedback") == 2


def test_console_route_stores_the_mark_and_shows_it_on_the_call(tmp_path: Path) -> None:
    marks = FeedbackStore(tmp_path / "kb-feedback.sqlite")
    app = create_console_app(token="tok", broker_host=None, broker_port=0, topic_prefix="cc", feedback=marks)
    live = app.state.live
    live.ingest(SummaryReady(call_id="kb3", t=1.0).to_dict())
    body = {"call_id": "kb3", "article_id": "billing-double-charge", "title": "Charged twice", "helpful": True}
    with TestClient(app) as client:
        assert client.post("/api/agent/feedback", json=body).status_code == 401
        client.cookies.set(auth.COOKIE, auth.cookie_value("tok"))
        res = client.post("/api/agent/feedback", json=body)
        assert res.status_code == 200, res.text
        assert client.post("/api/agent/feedback", json={**body, "helpful": "maybe"}).status_code == 422
    stored = marks.for_call("kb3")
    assert [(m.article_id, m.helpful, m.title) for m in stored] == [("billing-double-charge", True, "Charged twice")]
    shown = [e for e in live.get("kb3").events if e["type"] == "assist.feedback"]
    assert shown and AssistFeedback.from_dict(shown[0]).article_id == "billing-double-charge"
