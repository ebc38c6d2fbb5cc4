"""KPIs over a seeded CRM store: every endpoint's figures against ones computed here by hand.

The seed is a handful of calls built to hit each edge (abandoned, callback, transferred, holds,
repeat contact within and outside the FCR window, no agent, no caller, two QA forms). The
expected figures are computed in plain Python from the same seed (and a few flags are written
down by hand), never by calling ``summaries.kpis``; the store is real SQLite, and PostgreSQL
when one answers on 127.0.0.1:5432.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert
from sqlalchemy.orm import Session

from callcenter.agent_console import build_agent_console
from callcenter.kpi_source import StoreKpis
from callcenter.settings import Settings
from live.console.app import create_console_app
from live.console.dashboard import KpiQuery
from speech.events import CallStarted
from summaries.kpi_settings import KpiSettings
from summaries.schema import QaScoreRow
from summaries.store import CrmStore
from summaries.summary import CallSummary, HoldStats, PartyTone, QueueStats
from telephony.acd.directory import Directory, make_agent, save_directory
from telephony.acd.store import AcdStore, queue_table
from telephony.acd.store import metadata as acd_metadata

TOKEN = "kpi-token"
WRAP_S = 10.0

# id, caller, started, reason, resolution, queue, agents, wait, ivr_s, duration, hold, dead air,
# talk-overs, caller tone start/end, transfers, agent talk share, categories, phrases, ACD status,
# QA scores; then hand-labelled: repeat (an earlier call, same caller and reason, <= 7 days),
# fcr (answered with a known caller: no later such call), abandoned.
SEED = [
    dict(id="c0", caller="+111", at="2026-10-20T10:00", reason="billing", res="resolved", queue="billing",
         agents=["a1"], wait=15, ivr=5, dur=200, hold=0, dead=0, over=0, tone=("neutral", "calm"), xfer=0,
         cats=[], phrases=[], acd="connected", qa=[], repeat=False, fcr=True, abandoned=False),
    dict(id="c1", caller="+111", at="2026-11-02T09:00", reason="billing", res="resolved", queue="billing",
         agents=["a1"], wait=30, ivr=10, dur=300, hold=40, dead=12, over=2, tone=("tense", "calm"), xfer=0,
         cats=["refund"], phrases=["double charge"], acd="connected", qa=[90.0],
         repeat=False, fcr=False, abandoned=False),  # c0 is 13 days before: outside the window
    dict(id="c2", caller="+111", at="2026-11-06T14:30", reason="billing", res="not", queue="billing",
         agents=["a2"], wait=90, ivr=0, dur=200, hold=0, dead=0, over=0, tone=("neutral", "neutral"), xfer=0,
         cats=["refund"], phrases=[], acd="connected", qa=[50.0, 70.0], repeat=True, fcr=True, abandoned=False),
    dict(id="c3", caller="+111", at="2026-11-20T08:00", reason="billing", res="resolved", queue="billing",
         agents=["a1"], wait=10, ivr=0, dur=120, hold=0, dead=0, over=0, tone=("calm", "calm"), xfer=0,
         cats=["refund", "fees"], phrases=["late fee"], acd="connected", qa=[], repeat=False, fcr=True,
         abandoned=False),  # c2 is 14 days before
    dict(id="c4", caller="+222", at="2026-11-06T10:00", reason="technical_support", res="unknown",
         queue="support", agents=[], wait=45, ivr=5, dur=60, hold=0, dead=0, over=0,
         tone=("neutral", "angry"), xfer=0, cats=[], phrases=[], acd="abandoned", qa=[],
         repeat=False, fcr=None, abandoned=True),
    dict(id="c5", caller="+333", at="2026-11-06T11:00", reason="technical_support", res="partly",
         queue="support", agents=["a2", "a1"], wait=20, ivr=5, dur=400, hold=60, dead=30, over=5,
         tone=("tense", "tense"), xfer=1, cats=["outage"], phrases=["router reset"], acd="connected",
         qa=[75.0], repeat=False, fcr=True, abandoned=False),
    dict(id="c6", caller="+222", at="2026-11-09T16:00", reason="technical_support", res="resolved",
         queue="support", agents=["a1"], wait=5, ivr=0, dur=100, hold=0, dead=0, over=1,
         tone=("neutral", "calm"), xfer=0, cats=["outage"], phrases=[], acd="connected", qa=[100.0],
         repeat=True, fcr=True, abandoned=False),  # c4 (abandoned) 3 days before
    dict(id="c7", caller="+444", at="2026-11-09T17:00", reason="sales", res="unknown", queue="",
         agents=[], wait=0, ivr=0, dur=50, hold=0, dead=20, over=0, tone=("neutral", "neutral"), xfer=0,
         cats=[], phrases=[], acd="", qa=[], repeat=False, fcr=None, abandoned=False),
    dict(id="c8", caller="+555", at="2026-11-20T12:00", reason="billing", res="unknown", queue="billing",
         agents=[], wait=120, ivr=10, dur=130, hold=0, dead=0, over=0, tone=("tense", "tense"), xfer=0,
         cats=["fees"], phrases=[], acd="callback", qa=[], repeat=False, fcr=None, abandoned=False),
    dict(id="c9", caller="", at="2026-11-20T13:00", reason="billing", res="resolved", queue="billing",
         agents=["a2"], wait=25, ivr=0, dur=180, hold=20, dead=9, over=1, tone=("calm", "neutral"), xfer=0,
         cats=["fees"], phrases=["late fee"], acd="connected", qa=[80.0], repeat=False, fcr=None,
         abandoned=False),
]
PERIOD = {"from": "2026-11-01", "to": "2026-11-30"}


def _summary(s: dict) -> CallSummary:
    tone_start, tone_end = s["tone"]
    return CallSummary(
        call_id=s["id"], caller=s["caller"], started_at=s["at"] + ":00+00:00", reason=s["reason"],
        resolution=s["res"], duration=s["dur"], handle_time=s["dur"] - s["ivr"],
        dead_air_total_s=s["dead"], dead_air_count=1 if s["dead"] else 0, talk_over_count=s["over"],
        hold=HoldStats(count=1 if s["hold"] else 0, total_s=s["hold"]),
        talk_ratio={"caller": 0.5, "agent": 0.5} if s["agents"] else {"caller": 1.0, "agent": 0.0},
        tone_by_party={"caller": PartyTone(start=tone_start, end=tone_end, worst=tone_end)},
        tone_start=tone_start, tone_end=tone_end,
        queue=QueueStats(name=s["queue"], queues=(s["queue"],) if s["queue"] else (), wait_s=s["wait"],
                         agent_ids=tuple(s["agents"]), transfers=s["xfer"]),
        categories=tuple(s["cats"]), key_phrases=tuple(s["phrases"]), end_reason="hangup",
    )


def seed(url: str) -> None:
    store = CrmStore(url)
    store.start()
    try:
        for s in SEED:
            started = CallStarted(call_id=s["id"], source="sip", caller=s["caller"],
                                  started_at=s["at"] + ":00+00:00")
            store.save_call([started], _summary(s))
    finally:
        store.stop()
    engine = create_engine(url)
    acd_metadata.create_all(engine, tables=[queue_table])
    with Session(engine) as session, session.begin():
        for s in SEED:
            for i, score in enumerate(s["qa"]):
                session.add(QaScoreRow(call_id=s["id"], form_id=f"form{i}", form_version="1", score=score,
                                       final=True, data={}, updated_at=datetime.now(UTC).replace(tzinfo=None)))
            if s["acd"]:
                at = datetime.fromisoformat(s["at"] + ":00+00:00").timestamp()
                session.execute(insert(queue_table).values(
                    call_id=s["id"], queue=s["queue"], enqueued_at=at, worker="w", status=s["acd"],
                    agent_id=s["agents"][0] if s["agents"] else "", left_at=at + s["wait"]))
    engine.dispose()


# -- the figures, by hand ------------------------------------------------------------------------

TONE = {"calm": 15, "neutral": 0, "tense": -15, "angry": -30}
RESOLUTION = {"resolved": 15, "partly": 0, "not": -20}
RANK = {"calm": 0, "neutral": 1, "tense": 2, "angry": 3}


def in_period(s: dict) -> bool:
    return PERIOD["from"] <= s["at"][:10] <= PERIOD["to"]


def expected_call(s: dict) -> dict:
    answered = bool(s["agents"])
    connected = (s["dur"] - s["ivr"] - s["wait"]) if answered else 0
    terms = {"base": 70, "tone_end": TONE[s["tone"][1]], "resolution": RESOLUTION.get(s["res"], 0),
             "wait": -5 * min(s["wait"] / 60, 6), "repeat_contact": -15 if s["repeat"] else 0,
             "dead_air": -1 * 100 * s["dead"] / s["dur"]}
    return {
        "answered": answered, "queued": bool(s["queue"]), "abandoned": s["abandoned"],
        "wait_s": s["wait"], "hold_s": s["hold"] if answered else 0, "talk_s": connected - s["hold"] if answered else 0,
        "wrap_up_s": WRAP_S * len(s["agents"]), "handle_s": connected + WRAP_S * len(s["agents"]),
        "fcr": s["fcr"], "repeat_contact": s["repeat"], "transfers": s["xfer"], "dead_air_s": s["dead"],
        "talk_over": s["over"], "tone_start": s["tone"][0], "tone_end": s["tone"][1],
        "quality": sum(s["qa"]) / len(s["qa"]) if s["qa"] else None,
        "csat": max(0, min(100, sum(terms.values()))), "csat_terms": terms,
        "agent_id": s["agents"][0] if s["agents"] else "", "queue": s["queue"], "day": s["at"][:10],
    }


def mean(xs: list) -> float | None:
    return sum(xs) / len(xs) if xs else None


def expected_group(calls: list[dict]) -> dict:
    facts = [expected_call(s) for s in calls]
    answered = [f for f in facts if f["answered"]]
    queued = [f for f in facts if f["queued"]]
    fcr = [f["fcr"] for f in facts if f["fcr"] is not None]
    toned = [f for f in facts if f["tone_start"] in RANK and f["tone_end"] in RANK]
    quality = [f["quality"] for f in facts if f["quality"] is not None]
    return {
        "calls": len(facts), "answered": len(answered), "queued": len(queued),
        "abandoned": sum(f["abandoned"] for f in facts),
        "abandon_rate": sum(f["abandoned"] for f in facts) / len(queued) if queued else None,
        "aht_s": mean([f["handle_s"] for f in answered]), "hold_s": mean([f["hold_s"] for f in answered]),
        "wrap_up_s": mean([f["wrap_up_s"] for f in answered]),
        "asa_s": mean([f["wait_s"] for f in answered if f["queued"]]),
        "transfers": sum(f["transfers"] for f in facts),
        "transfer_rate": sum(f["transfers"] > 0 for f in answered) / len(answered) if answered else None,
        "fcr_rate": sum(fcr) / len(fcr) if fcr else None,
        "dead_air_share": sum(s["dead"] for s in calls) / sum(s["dur"] for s in calls),
        "talk_over_per_call": mean([f["talk_over"] for f in facts]),
        "tone_improved": mean([RANK[f["tone_end"]] < RANK[f["tone_start"]] for f in toned]),
        "tone_worsened": mean([RANK[f["tone_end"]] > RANK[f["tone_start"]] for f in toned]),
        "csat": mean([f["csat"] for f in facts]), "quality": mean(quality), "quality_calls": len(quality),
    }


def close(got: object, want: object, tol: float = 0.011) -> bool:
    if want is None or got is None:
        return got is want
    if isinstance(want, bool):
        return got is want
    if isinstance(want, int | float):
        return abs(float(got) - want) <= tol  # type: ignore[arg-type]
    return got == want


def assert_rows_match(got: dict, want: dict, where: str) -> None:
    bad = {k: (got.get(k), v) for k, v in want.items() if not close(got.get(k), v)}
    assert not bad, f"{where}: (got, want) {bad}"


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('kpis') / 'crm.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    seed(url)
    return url


@pytest.fixture(scope="module")
def client(db_url):
    kpis = StoreKpis(db_url, KpiSettings(), wrap_up_s=WRAP_S)
    app = create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc", kpis=kpis)
    with TestClient(app) as c:
        c.get(f"/?token={TOKEN}")
        yield c
    kpis.close()


def get(client: TestClient, path: str, **params: str) -> dict:
    r = client.get(path, params={**PERIOD, **params})
    assert r.status_code == 200, r.text
    return r.json()


def get_csv(client: TestClient, path: str, **params: str) -> list[dict[str, str]]:
    r = client.get(path, params={**PERIOD, **params, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    return list(csv.DictReader(io.StringIO(r.text)))


# -- tests ---------------------------------------------------------------------------------------


def test_needs_the_console_token(db_url):
    app = create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc",
                             kpis=StoreKpis(db_url, KpiSettings(), wrap_up_s=WRAP_S))
    with TestClient(app) as c:
        for path in ("/dashboard", "/api/kpis", "/api/kpis/calls", "/api/kpis/trend?format=csv",
                     "/dashboard/plotly.min.js"):
            assert c.get(path).status_code == 401, path


def test_per_call_facts(client):
    rows = {r["call_id"]: r for r in get(client, "/api/kpis/calls")["rows"]}
    assert set(rows) == {s["id"] for s in SEED if in_period(s)}  # c0 only served c1's window
    for s in SEED:
        if in_period(s):
            want = expected_call(s)
            terms = want.pop("csat_terms")
            assert_rows_match(rows[s["id"]], want, s["id"])
            assert_rows_match(rows[s["id"]]["csat_terms"], terms, s["id"] + " csat terms")
    # the hand-labelled edges, spelled out
    assert [rows[c]["fcr"] for c in ("c1", "c2", "c3")] == [False, True, True]
    assert rows["c6"]["repeat_contact"] and not rows["c1"]["repeat_contact"]
    assert rows["c4"]["abandoned"] and not rows["c8"]["abandoned"] and rows["c8"]["queued"]
    assert rows["c5"]["handle_s"] == pytest.approx(400 - 5 - 20 + 2 * WRAP_S)


@pytest.mark.parametrize("by", ["agent", "queue", "day", "all"])
def test_aggregates(client, by):
    data = get(client, "/api/kpis", by=by)
    assert data["by"] == by and data["csat"]["formula"].startswith("predicted CSAT = clamp(")
    groups: dict[str, list[dict]] = {}
    for s in SEED:
        if in_period(s):
            f = expected_call(s)
            key = {"agent": f["agent_id"], "queue": f["queue"], "day": f["day"], "all": "all"}[by]
            groups.setdefault(key, []).append(s)
    assert [r["key"] for r in data["rows"]] == sorted(groups)
    for row in data["rows"]:
        assert_rows_match(row, expected_group(groups[row["key"]]), f"{by}={row['key']}")


def test_charts(client):
    facts = [expected_call(s) for s in SEED if in_period(s)]
    bins = get(client, "/api/kpis/handle_time")["rows"]
    handles = [f["handle_s"] for f in facts if f["answered"]]
    assert len(bins) == int(max(handles) // 60) + 1
    assert [b["calls"] for b in bins] == [sum(int(h // 60) == i for h in handles) for i in range(len(bins))]

    reasons = get(client, "/api/kpis/reasons")["rows"]
    counts: dict[str, int] = {}
    for s in SEED:
        if in_period(s):
            counts[s["reason"]] = counts.get(s["reason"], 0) + 1
    assert [(r["reason"], r["calls"]) for r in reasons] == sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    dead = get(client, "/api/kpis/dead_air")["rows"]
    want = sorted((s for s in SEED if in_period(s) and s["dead"]), key=lambda s: -s["dead"])
    assert [(r["call_id"], r["dead_air_s"]) for r in dead] == [(s["id"], s["dead"]) for s in want]
    assert dead[0]["url"] == "/calls/c5"

    trend = get(client, "/api/kpis/trend")["rows"]
    days = sorted({s["at"][:10] for s in SEED if in_period(s)})
    assert [r["day"] for r in trend] == days
    for r in trend:
        assert_rows_match(r, {k: v for k, v in expected_group([s for s in SEED if s["at"][:10] == r["day"]]).items()
                              if k in r}, r["day"])


def test_rising_topics_against_the_previous_week(client):
    r = client.get("/api/kpis/rising", params={"from": "2026-11-16", "to": "2026-11-22"}).json()
    assert r["previous"] == ["2026-11-09", "2026-11-15"]
    now = [s for s in SEED if "2026-11-16" <= s["at"][:10] <= "2026-11-22"]
    before = [s for s in SEED if "2026-11-09" <= s["at"][:10] <= "2026-11-15"]

    def topics(s: dict) -> set[str]:
        return {f"reason:{s['reason']}", *(f"category:{c}" for c in s["cats"]), *(f"phrase:{p}" for p in s["phrases"])}

    want = {}
    for t in set().union(*(topics(s) for s in now)):
        n = sum(t in topics(s) for s in now)
        share, old = n / len(now), sum(t in topics(s) for s in before) / len(before)
        if n >= 2 and share > old:
            want[t] = round(share - old, 4)
    got = {f"{x['kind']}:{x['topic']}": x["change"] for x in r["rows"]}
    assert got == pytest.approx(want) and "reason:billing" in got and "category:outage" not in got
    assert [x["change"] for x in r["rows"]] == sorted(got.values(), reverse=True)


@pytest.mark.parametrize("path,by", [("/api/kpis", "agent"), ("/api/kpis", "day"), ("/api/kpis/calls", None),
                                     ("/api/kpis/trend", None), ("/api/kpis/handle_time", None),
                                     ("/api/kpis/reasons", None), ("/api/kpis/rising", None),
                                     ("/api/kpis/dead_air", None)])
def test_csv_matches_json(client, path, by):
    params = {"by": by} if by else {}
    data = get(client, path, **params)
    rows = get_csv(client, path, **params)
    assert len(rows) == len(data["rows"]) > 0
    for want, got in zip(data["rows"], rows, strict=True):
        for col in data["columns"]:
            value = want[col]
            if isinstance(value, dict):
                for k, v in value.items():
                    assert got[f"{col}.{k}"] == str(v), (col, k)
            else:
                assert got[col] == ("" if value is None else str(value)), col


def test_bad_requests(client):
    assert client.get("/api/kpis", params={"by": "weekday"}).status_code == 422
    assert client.get("/api/kpis/nonsense").status_code == 404
    assert client.get("/api/kpis/calls", params={"from": "2026-11-30", "to": "2026-11-01"}).status_code == 422
    assert client.get("/api/kpis/calls", params={"from": "yesterday"}).status_code == 422


def test_supervisors_reach_the_dashboard_agents_do_not(tmp_path):
    directory = Directory(agents=(
        make_agent("alice", "alice-pw", name="Alice", skills=("billing",), rounds=1000),
        make_agent("sue", "sue-pw", name="Sue", skills=("billing",), supervisor=True, rounds=1000),
    ))
    save_directory(directory, tmp_path / "agents.yaml")
    settings = Settings(data_dir=tmp_path)
    acd = AcdStore(settings.store_url)
    acd.sync_directory(directory)
    acd.close()
    seed(settings.store_url)
    app = create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc",
                             agents=build_agent_console(settings),
                             kpis=StoreKpis(settings.store_url, KpiSettings(), wrap_up_s=WRAP_S))
    with TestClient(app) as c:
        c.post("/api/agent/login", json={"agent_id": "alice", "password": "alice-pw"})
        assert c.get("/api/kpis").status_code == 401 and c.get("/dashboard").status_code == 401
        c.post("/api/agent/logout")
        c.post("/api/agent/login", json={"agent_id": "sue", "password": "sue-pw"})
        assert c.get("/api/kpis", params=PERIOD).json()["rows"][0]["calls"] == sum(map(in_period, SEED))
        assert 'data-page="dashboard"' in c.get("/dashboard").text
        assert c.get("/static/dashboard.js").status_code == 200


def test_a_period_is_computed_once_per_cache_interval(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    seed(url)
    now = [0.0]
    kpis = StoreKpis(url, KpiSettings(), wrap_up_s=WRAP_S, cache_s=5.0, clock=lambda: now[0])
    query = KpiQuery("kpis", "all")
    assert kpis.table(query).rows[0]["calls"] == len(SEED)
    store = CrmStore(url)
    store.start()
    late = {**SEED[-1], "id": "late"}
    store.save_call([CallStarted(call_id="late", caller="+999", started_at=late["at"] + ":00+00:00")], _summary(late))
    store.stop()
    now[0] = 4.9
    assert kpis.table(query).rows[0]["calls"] == len(SEED)  # the dashboard's other charts: same facts
    now[0] = 5.0
    assert kpis.table(query).rows[0]["calls"] == len(SEED) + 1
    kpis.close()
