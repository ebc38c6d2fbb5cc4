"""The agent console: a FastAPI app that follows calls on the broker and shows them live.

Its lifespan runs one aiomqtt subscriber (``{prefix}/calls/+/events``, the retained
``state`` topics and agents' retained ``{prefix}/agents/+/state``) that feeds
:class:`~live.console.state.LiveCalls`; browsers get events by server-sent events. Pages are
plain HTML with a little vanilla JS (static/), no build step. With ``agents`` (the ACD, injected)
agents log in to their own page and supervisors see the queues (``live.console.agents``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from live.console import auth
from live.console.agents import (
    PUBLIC_PATHS,
    AgentConsole,
    agent_may_reach,
    agent_router,
    is_supervisor,
    supervisor_may_reach,
)
from live.console.dashboard import KpiSource, dashboard_router
from live.console.history import CallHistory
from live.console.knowledge import ArticleFeedback, knowledge_router
from live.console.qa import QaReviews, qa_router
from live.console.review import CallRecordings, recording_path, review_router
from live.console.sse import SSE_KEEPALIVE_S as SSE_KEEPALIVE_S
from live.console.sse import sse_response
from live.console.state import LiveCalls
from live.console.tasks import FollowUpTasks, tasks_router
from live.console.timeline import render_timeline
from live.publisher import NO_DELAY, MqttConfig, tls_context
from live.topics import Topics

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
RECONNECT_MAX_S = 5.0


def create_console_app(
    *,
    token: str,
    broker_host: str | None,
    broker_port: int,
    topic_prefix: str,
    history: CallHistory | None = None,
    broker_username: str | None = None,
    broker_password: str | None = None,
    broker_tls: ssl.SSLContext | None = None,
    agents: AgentConsole | None = None,
    session_secret: bytes | None = None,
    feedback: ArticleFeedback | None = None,
    qa: QaReviews | None = None,
    kpis: KpiSource | None = None,
    recordings: CallRecordings | None = None,
    tasks: FollowUpTasks | None = None,
) -> FastAPI:
    """The console app. ``broker_host=None`` skips the broker (events via ``app.state.live``);
    ``broker_username``/``broker_password``/``broker_tls`` as for the publisher. ``agents``: the
    ACD, for agents' logins, pages and the queue view (none: token access only);
    ``session_secret`` signs agents' session cookies (default: derived from the token);
    ``kpis`` serves the KPI dashboard and its REST/CSV tables (none: no such routes);
    ``feedback`` stores agents' marks on suggested knowledge articles (none: no such route);
    ``recordings`` plays past calls' recordings on their review page (none: no such route)."""
    if not token:
        raise ValueError("the console needs a non-empty token")
    topics = Topics(topic_prefix)
    live = LiveCalls()
    sessions = auth.AgentSessions(session_secret or auth.session_secret(token))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if broker_host is not None:
            client_args = {"username": broker_username, "password": broker_password,
                           "tls_context": broker_tls}
            task = asyncio.create_task(
                _follow_broker(broker_host, broker_port, topics, live, client_args))
        try:
            yield
        finally:
            live.shutdown()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if agents is not None:
                await asyncio.to_thread(agents.close)

    app = FastAPI(title="callcenter console", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.live = live
    app.state.history = history
    app.state.agent_sessions = sessions

    @app.middleware("http")
    async def require_token(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if agents is not None and (path in PUBLIC_PATHS or (
                (agent_may_reach(path) or recording_path(path)) and sessions.from_request(request) is not None)):
            return await call_next(request)  # the agent routes check the rest
        if agents is not None and supervisor_may_reach(path) and not auth.has_token(request, token):
            agent_id = sessions.from_request(request)
            if agent_id is not None and await asyncio.to_thread(is_supervisor, agents, agent_id):
                return await call_next(request)  # supervisors may watch every call
        denied = auth.check(request, token)
        if denied is not None:
            return denied
        return await call_next(request)

    if agents is not None:
        app.include_router(agent_router(agents, live, sessions, token))
    if feedback is not None:
        app.include_router(knowledge_router(feedback, live, sessions, token))
    if qa is not None:  # scorecards with reviewers' overrides, and calibration
        app.include_router(qa_router(qa, live, sessions, token))
    if kpis is not None:  # the KPI dashboard and its REST/CSV tables
        app.include_router(dashboard_router(kpis))
    if recordings is not None:
        async def supervisor(agent_id: str) -> bool:
            return agents is not None and await asyncio.to_thread(is_supervisor, agents, agent_id)

        app.include_router(review_router(recordings, sessions, token, supervisor))

    if tasks is not None:  # follow-up tasks: agents their own, supervisors and the token all
        async def may_see_all(agent_id: str) -> bool:
            return agents is not None and await asyncio.to_thread(is_supervisor, agents, agent_id)

        app.include_router(tasks_router(tasks, sessions, token, may_see_all))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/calls/{call_id}")
    async def call_page(call_id: str) -> FileResponse:
        return FileResponse(STATIC / "call.html")

    @app.get("/history")
    async def history_page() -> FileResponse:
        return FileResponse(STATIC / "history.html")

    @app.get("/api/calls")
    async def list_calls() -> list[dict[str, Any]]:
        return live.list()

    @app.get("/api/calls/{call_id}")
    async def get_call(call_id: str) -> dict[str, Any]:
        return await _call_record(call_id, live, history)

    @app.get("/api/history")
    async def search_history(
        q: str | None = None,
        caller: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        tone: str | None = None,
        limit: int = Query(50, ge=1, le=500),
    ) -> JSONResponse:
        if history is None:
            return JSONResponse({"detail": "no call history configured"}, status_code=503)
        rows = await asyncio.to_thread(
            history.search, q or None, caller or None, date_from or None, date_to or None,
            tone or None, limit,
        )
        return JSONResponse(rows)

    @app.get("/calls/{call_id}/timeline.svg")
    async def timeline(call_id: str) -> Response:
        record = await _call_record(call_id, live, history)
        svg = render_timeline(record["events"], title=f"call {call_id}")
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    @app.get("/api/stream")
    async def stream_all(request: Request) -> StreamingResponse:
        """List-changing events of every call, after a ``calls`` snapshot."""
        stream = live.open_stream(None)
        first = [("calls", live.list())]
        return sse_response(request, live, stream, first)

    @app.get("/api/calls/{call_id}/stream")
    async def stream_call(call_id: str, request: Request) -> StreamingResponse:
        """``reset``, the call's events so far (live, else from history), then live ones."""
        stream = live.open_stream(call_id)  # before the replay, so nothing falls in between
        call = live.get(call_id)
        if call is not None:
            past = list(call.events)
        else:
            record = await _call_record(call_id, live, history, missing_ok=True)
            past = record["events"]
        first = [("reset", {"call_id": call_id})] + [("event", e) for e in past]
        return sse_response(request, live, stream, first)

    return app


def broker_options(mqtt: MqttConfig) -> dict[str, Any]:
    """``create_console_app`` keyword arguments for the broker in ``mqtt``: the same credentials
    and TLS the publishers use, so the console can follow a protected broker."""
    return {"broker_username": mqtt.username, "broker_password": mqtt.password,
            "broker_tls": tls_context(mqtt)}


async def _call_record(call_id: str, live: LiveCalls, history: CallHistory | None,
                       missing_ok: bool = False) -> dict[str, Any]:
    call = live.get(call_id)
    if call is not None:
        return {"call_id": call_id, "live": not call.ended, "info": call.info,
                "summary": call.summary, "events": list(call.events)}
    if history is not None:
        record = await asyncio.to_thread(history.get, call_id)
        if record is not None:
            return {"call_id": call_id, "live": False, "info": record.get("info", {}),
                    "summary": record.get("summary"), "transcript": record.get("transcript", []),
                    "events": list(record.get("events", []))}
    if missing_ok:
        return {"call_id": call_id, "live": False, "info": {}, "summary": None, "events": []}
    raise HTTPException(404, "unknown call")


async def _follow_broker(host: str, port: int, topics: Topics, live: LiveCalls,
                         client_args: dict[str, Any]) -> None:
    """Subscribe and feed ``live`` forever, reconnecting with backoff."""
    delay = 0.2
    events_filter = topics.all_calls("events")
    state_filter = topics.all_calls("state")
    agents_filter = topics.all_agents("state")
    while True:
        try:
            async with aiomqtt.Client(host, port, socket_options=NO_DELAY, keepalive=15,
                                      **client_args) as client:
                await client.subscribe(events_filter, qos=1)
                await client.subscribe(state_filter, qos=1)
                await client.subscribe(agents_filter, qos=1)
                delay = 0.2
                log.info("console following MQTT broker %s:%d", host, port)
                async for msg in client.messages:
                    try:
                        event = json.loads(msg.payload)
                    except (TypeError, ValueError):
                        log.warning("ignoring a malformed message on %s", msg.topic)
                        continue
                    if not isinstance(event, dict):
                        continue
                    if msg.topic.matches(events_filter):
                        live.ingest(event)
                    elif msg.topic.matches(agents_filter):
                        live.ingest_agent_state(event)
                    elif msg.retain:
                        live.ingest(event, retained_state=True)
        except aiomqtt.MqttError as exc:
            log.warning("console lost MQTT broker %s:%d (%s); retry in %.1f s", host, port, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
