"""Agent console: auth, history search, timeline SVG (TestClient) and SSE over a real broker."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET

import httpx
import pytest
from fastapi.testclient import TestClient

from callcenter.settings import MqttSettings
from live.broker import EmbeddedBroker, find_mosquitto
from live.console import InMemoryHistory, create_console_app
from live.console.timeline import spans_of
from live.publisher import MqttPublisher
from live.testing import free_port, sample_call, serve

TOKEN = "s3cret-token"
SVG = "{http://www.w3.org/2000/svg}"


def history() -> InMemoryHistory:
    def call(cid, caller, day, tone, reason, text):
        return {"call_id": cid, "caller": caller, "started_at": f"{day}T09:00:00Z",
                "summary": {"tone": tone, "reason": reason, "outcome": "resolved"},
                "transcript": [{"party": "caller", "text": text}],
                "events": [e.to_dict() for e in sample_call(cid, caller=caller)]}

    return InMemoryHistory([
        call("h1", "+15550001", "2025-03-01", "calm", "address change", "I moved last week"),
        call("h2", "+15550002", "2025-03-05", "angry", "billing dispute", "I want a manager"),
        call("h3", "+15550003", "2025-04-02", "tense", "refund", "the refund is late"),
    ])


@pytest.fixture
def client():
    app = create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc",
                             history=history())
    for e in sample_call("live1"):
        app.state.live.ingest(e.to_dict())
    with TestClient(app) as c:
        yield c


def test_token_required_then_cookie(client):
    for path in ("/", "/api/calls", "/calls/live1/timeline.svg", "/static/console.js",
                 "/api/history", "/calls/live1"):
        assert client.get(path).status_code == 401, path
    assert client.get("/?token=wrong").status_code == 401
    client.cookies.set("cc_console", "forged")
    assert client.get("/api/calls").status_code == 401
    client.cookies.clear()

    r = client.get("/history?token=" + TOKEN + "&x=1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/history?x=1"
    assert TOKEN not in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
    client.cookies.set("cc_console", r.cookies["cc_console"])
    page = client.get("/history")
    assert page.status_code == 200 and "Call history" in page.text
    calls = client.get("/api/calls").json()
    assert [c["call_id"] for c in calls] == ["live1"]
    assert calls[0]["ended"] and calls[0]["tone"] == "angry" and calls[0]["alerts"] == 1


def _login(client):
    assert client.get("/?token=" + TOKEN).status_code == 200


def test_schema_and_docs_need_the_token_too(client):
    """The console may be on a LAN: its OpenAPI document is behind the token like every page."""
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/docs").status_code == 401
    _login(client)
    assert client.get("/openapi.json").json()["info"]["title"] == "callcenter console"
    assert client.get("/docs").status_code == 404  # no Swagger UI on the console


def test_broker_options_pass_credentials_and_tls():
    from live.console.app import broker_options
    from live.settings import MqttSettings

    plain = broker_options(MqttSettings(host="b", username="u", password="p"))
    assert plain == {"broker_username": "u", "broker_password": "p", "broker_tls": None}
    tls = broker_options(MqttSettings(host="b", username="u", password="p", tls=True))
    assert tls["broker_tls"] is not None and tls["broker_tls"].verify_mode.name == "CERT_REQUIRED"


def test_history_search_filters(client):
    _login(client)

    def ids(**params):
        r = client.get("/api/history", params=params)
        assert r.status_code == 200
        return [c["call_id"] for c in r.json()]

    assert ids() == ["h3", "h2", "h1"]
    assert ids(q="manager") == ["h2"]
    assert ids(q="REFUND") == ["h3"]
    assert ids(caller="0001") == ["h1"]
    assert ids(tone="angry") == ["h2"]
    assert ids(date_from="2025-03-02", date_to="2025-03-31") == ["h2"]
    assert ids(date_from="2025-04-01") == ["h3"]
    assert ids(limit=1) == ["h3"]
    assert "events" not in client.get("/api/history").json()[0]
    # An ended call from history opens like a live one.
    record = client.get("/api/calls/h2").json()
    assert record["summary"]["reason"] == "billing dispute" and len(record["events"]) == 25
    assert client.get("/api/calls/nope").status_code == 404


def test_history_not_configured():
    app = create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc")
    with TestClient(app) as c:
        _login(c)
        assert c.get("/api/history").status_code == 503


def test_timeline_svg(client):
    _login(client)
    r = client.get("/calls/live1/timeline.svg")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(r.text)
    spans = {}
    for rect in root.iter(SVG + "rect"):
        cls = rect.get("class", "")
        if cls.startswith("span "):
            spans.setdefault(cls.split()[1], []).append(
                (float(rect.get("x")), float(rect.get("width"))))
    # 20 s call on 860 px from x=84: 43 px per second.
    assert [round(x) for x, _ in spans["caller"]] == [84 + 4 * 43, 84 + 14 * 43]
    assert [round(w) for _, w in spans["agent"]] == [2 * 43]
    assert [(round(x), round(w)) for x, w in spans["dead-air"]] == [(84 + round(6.3 * 43), round(6.7 * 43))]
    tone = root.find(SVG + "polyline")
    points = [tuple(map(float, p.split(","))) for p in tone.get("points").split()]
    assert len(points) == 2 and points[1][1] < points[0][1]  # angrier is higher
    assert len(root.findall(f".//{SVG}path[@class='alert']")) == 2  # talk-over + tone alert
    assert "escalation phrase: manager" in r.text
    hist = client.get("/calls/h1/timeline.svg")
    assert hist.status_code == 200 and "<svg" in hist.text
    assert client.get("/calls/unknown/timeline.svg").status_code == 404


def test_timeline_spans_fallback_to_transcript_and_open_intervals():
    events = [e.to_dict() for e in sample_call("x") if e.type.value not in ("speech.started", "speech.ended")]
    spans, length = spans_of(events)
    assert length == 20.0
    assert sorted((s.lane, s.start, s.end) for s in spans if s.lane in ("caller", "agent")) == [
        ("agent", 13.0, 15.0), ("caller", 4.0, 6.0), ("caller", 14.0, 17.0)]
    open_dead = [{"type": "dead_air.started", "t": 8.0, "start": 3.0},
                 {"type": "call.ended", "t": 10.0, "duration": 10.0}]
    assert [(s.lane, s.start, s.end) for s in spans_of(open_dead)[0]] == [("dead air", 3.0, 10.0)]


async def _sse_events(url: str, cookies: dict, until: str, limit_s: float = 15.0) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    async with httpx.AsyncClient(cookies=cookies, timeout=limit_s) as http:
        async with http.stream("GET", url) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            name = None
            async with asyncio.timeout(limit_s):
                async for line in r.aiter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                        out.append((name, data))
                        if name == "event" and data.get("type") == until:
                            return out
    return out


@pytest.mark.broker
@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto binary missing (apt-get install mosquitto)")
async def test_sse_streams_a_live_call_from_the_broker(tmp_path):
    bport, wport = free_port(), free_port()
    async with EmbeddedBroker(port=bport, backend="mosquitto"):
        app = create_console_app(token=TOKEN, broker_host="127.0.0.1", broker_port=bport,
                                 topic_prefix="cc", history=None)
        async with serve(app, wport):
            base = f"http://127.0.0.1:{wport}"
            async with httpx.AsyncClient() as http:
                assert (await http.get(base + "/api/stream")).status_code == 401
                login = await http.get(f"{base}/?token={TOKEN}", follow_redirects=False)
            cookies = {"cc_console": login.cookies["cc_console"]}
            pub = MqttPublisher(MqttSettings(host="127.0.0.1", port=bport, topic_prefix="cc"),
                                tmp_path / "o.sqlite")
            await pub.start()
            events = sample_call("s1")
            list_task = asyncio.create_task(_sse_events(base + "/api/stream", cookies, "call.ended"))
            call_task = asyncio.create_task(_sse_events(base + "/api/calls/s1/stream", cookies, "summary"))
            await asyncio.sleep(0.5)  # both streams open and the console subscribed
            for e in events[:10]:
                pub.publish(e)
            await asyncio.sleep(0.3)
            for e in events[10:]:
                pub.publish(e)
            call_stream, list_stream = await call_task, await list_task
            # A browser that opens the call now gets the whole call replayed.
            replay = await _sse_events(base + "/api/calls/s1/stream", cookies, "summary")
            await pub.stop()
    assert call_stream[0] == ("reset", {"call_id": "s1"})
    assert [d for n, d in call_stream if n == "event"] == [e.to_dict() for e in events]
    assert [d for n, d in replay if n == "event"] == [e.to_dict() for e in events]
    assert list_stream[0] == ("calls", [])
    kinds = [d["type"] for n, d in list_stream if n == "event"]
    assert kinds == ["call.started", "tone.update", "tone.update", "tone.alert", "call.ended"]
