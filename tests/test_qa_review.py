"""Final scorecards stored by the after-call chain, reviewers' overrides with history, and
calibration: on SQLite (and PostgreSQL when one answers), through the store and the console's
REST routes."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from callcenter.qa_reviews import StoreReviews
from live.console import create_console_app
from live.console.auth import COOKIE, cookie_value
from qa.forms import load_form
from qa.live import final_scorecards
from summaries.after_call import AfterCallChain
from summaries.redact import Redactor
from summaries.store import CrmStore
from tests.test_qa_scorecard import bad_call, good_call

TOKEN = "qa-token"
FORMS = [load_form("standard")]


def scorer(events, summary):
    return list(final_scorecards(FORMS, events, summary))


async def store_calls(store: CrmStore) -> None:
    from summaries.durable_writer import DurableWriter

    writer = DurableWriter(store, store.url.replace("sqlite:///", "").rsplit("/", 1)[0] + "/spool"
                           if store.dialect == "sqlite" else "/tmp/qa-review-spool")
    writer.start()
    chain = AfterCallChain(Redactor(), writer=writer, scorer=scorer)
    for call_id, events in (("good", good_call()), ("bad", bad_call())):
        result = await chain.process([e.with_call_id(call_id) for e in events])
        assert [e.type.value for e in result.scorecards] == ["qa.scorecard"]
    writer.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path}/crm.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = CrmStore(url)
    s.start()
    yield s
    if request.param == "postgres":
        from sqlalchemy import text

        with s._session() as sess, sess.begin():
            sess.execute(text("TRUNCATE calls, contacts, transcripts, events, summaries, follow_up_tasks, "
                              "qa_scores, qa_overrides CASCADE"))
    s.stop()


async def test_final_scorecard_stored_with_the_call(store):
    await store_calls(store)
    (good,) = store.get_scorecards("good")
    assert (good["form_id"], good["score"], good["final"]) == ("standard", 100.0, True)
    (bad,) = store.get_scorecards("bad")
    assert bad["score"] == 0.0 and all(a["evidence"] or a["answer"] != "no" or a["question_id"] in (
        "greeting", "summarized_resolution", "offered_further_help") for a in bad["answers"])


async def test_overrides_history_and_calibration(store):
    await store_calls(store)
    reviews = StoreReviews(store)
    card = reviews.override("bad", "standard", "greeting", "yes", reviewer="sup1", reason="greeted in Spanish")
    assert card["score"] == 10.0 and card["answers"][0]["overridden"]
    card = reviews.override("bad", "standard", "greeting", "na", reviewer="sup2", reason="joined mid-call")
    assert card["score"] == 0.0
    (stored,) = reviews.scorecards("bad")
    history = stored["history"]
    assert [(h["reviewer"], h["previous"], h["answer"], h["automatic"]) for h in history] == [
        ("sup1", "no", "yes", "no"), ("sup2", "yes", "na", "no")]
    assert store.get_scorecards("bad")[0]["answers"][0]["answer"] == "no"  # automatic kept
    with pytest.raises(KeyError):
        reviews.override("bad", "standard", "nonsense", "yes", reviewer="x", reason="y")
    with pytest.raises(KeyError):
        reviews.override("nocall", "standard", "greeting", "yes", reviewer="x", reason="y")

    table = reviews.calibration(None)
    assert table["reviewed_calls"] == 1
    greeting = next(q for q in table["questions"] if q["question_id"] == "greeting")
    assert (greeting["reviewed"], greeting["agreed"], greeting["agreement"]) == (1, 0, 0.0)
    assert greeting["confusion"]["no"]["na"] == 1
    assert greeting["overridden"] == [{"call_id": "bad", "automatic": "no", "final": "na", "reviewer": "sup2",
                                       "reason": "joined mid-call"}]
    others = [q for q in table["questions"] if q["question_id"] != "greeting"]
    assert len(others) == 6 and all(q["agreement"] == 100.0 for q in others)
    assert table["agreement"] == round(600 / 7, 1)
    csv_text = reviews.calibration_csv(None)
    assert csv_text.splitlines()[0].startswith("form_id,question_id,reviewed,agreed,agreement")
    assert "standard,greeting,1,0,0.0,bad," in csv_text

    # a re-delivered call (the durable writer retries) keeps its reviews
    await store_calls(store)
    assert len(reviews.scorecards("bad")[0]["history"]) == 2


async def test_rest_routes(tmp_path):
    store = CrmStore(f"sqlite:///{tmp_path}/crm.db")
    store.start()
    await store_calls(store)
    app = create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc",
                             qa=StoreReviews(store))
    with TestClient(app) as client:
        assert client.get("/api/calls/bad/scorecard").status_code == 401
        assert client.get("/api/qa/calibration").status_code == 401
        client.cookies.set(COOKIE, cookie_value(TOKEN))
        r = client.get("/api/calls/bad/scorecard").json()
        assert r["scorecards"][0]["score"] == 0.0 and r["scorecards"][0]["history"] == []
        body = {"form_id": "standard", "question_id": "offered_further_help", "answer": "yes", "reason": "said it"}
        assert client.post("/api/calls/bad/scorecard/overrides", json={**body, "reason": ""}).status_code == 422
        assert client.post("/api/calls/bad/scorecard/overrides", json={**body, "answer": "maybe"}).status_code == 422
        assert client.post("/api/calls/nope/scorecard/overrides", json=body).status_code == 404
        r = client.post("/api/calls/bad/scorecard/overrides", json=body).json()
        assert r["scorecard"]["score"] == 10.0
        assert r["scorecard"]["history"][0]["reviewer"] == "token"
        cal = client.get("/api/qa/calibration").json()
        assert cal["questions"] and cal["reviewed_calls"] == 1
        csv_r = client.get("/api/qa/calibration.csv")
        assert csv_r.headers["content-type"].startswith("text/csv") and "offered_further_help" in csv_r.text
        assert "calibration.js" in client.get("/calibration").text
        # a live call (nothing stored yet) shows its latest live scorecard event
        from speech.events import QaScorecard

        app.state.live.ingest(QaScorecard(call_id="live1", t=3.0, form_id="standard", score=50.0,
                                          scorecard={"form_id": "standard", "score": 50.0, "answers": []}).to_dict())
        live = client.get("/api/calls/live1/scorecard").json()
        assert live["live"] and live["scorecards"][0]["score"] == 50.0
    store.stop()


def test_supervisor_reviews_under_their_own_name(tmp_path):
    from callcenter.agent_console import build_agent_console
    from callcenter.settings import Settings
    from telephony.acd.directory import Directory, make_agent, save_directory
    from telephony.acd.store import AcdStore

    directory = Directory(agents=(make_agent("ann", "ann-pw", skills=("billing",)),
                                  make_agent("sue", "sue-pw", skills=("billing",), supervisor=True)))
    save_directory(directory, tmp_path / "agents.yaml")
    settings = Settings(data_dir=tmp_path)
    acd = AcdStore(settings.store_url)
    acd.sync_directory(directory)
    acd.close()
    store = CrmStore(f"sqlite:///{tmp_path}/crm.db")
    store.start()
    asyncio.run(store_calls(store))
    app = create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc",
                             agents=build_agent_console(settings), qa=StoreReviews(store))
    body = {"form_id": "standard", "question_id": "greeting", "answer": "yes", "reason": "heard it"}
    with TestClient(app) as client:
        assert client.post("/api/agent/login", json={"agent_id": "ann", "password": "ann-pw"}).status_code == 200
        assert client.post("/api/calls/bad/scorecard/overrides", json=body).status_code == 401  # not a supervisor
        assert client.get("/calibration").status_code == 401
        client.cookies.clear()
        assert client.post("/api/agent/login", json={"agent_id": "sue", "password": "sue-pw"}).status_code == 200
        r = client.post("/api/calls/bad/scorecard/overrides", json=body)
        assert r.status_code == 200 and r.json()["scorecard"]["history"][0]["reviewer"] == "sue"
        assert client.get("/calibration").status_code == 200
        assert client.get("/api/qa/calibration").json()["reviewed_calls"] == 1
    store.stop()
