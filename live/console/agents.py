"""The agent's side of the console: login, their state, their current call; queues for supervisors.

The ACD (its store and the agents directory) is injected as :class:`AgentConsole`, a few blocking
callables the composition root binds (``callcenter.agent_console``), so ``live`` never imports
``telephony`` or ``callcenter``. The agent's page follows their current call by itself: the
console's :class:`~live.console.state.LiveCalls` learns from ``party.joined`` which call is whose.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from pydantic import BaseModel, Field

from live.console import auth
from live.console.sse import sse_response
from live.console.state import LiveCalls

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SETTABLE_STATES = ("ready", "not_ready", "logged_out")
LOGIN_FAILURES_MAX = 5
LOGIN_LOCKOUT_S = 300.0
"""After this many wrong passwords for one agent id, further tries wait this long (a guessing
guard; the PBKDF2 cost alone is ~0.3 s per try)."""


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class SupervisionChannel:
    """How the console asks the worker holding a call to put a supervisor on it (the shared ACD
    store's ``acd_supervision`` table; every callable blocks).

    ``request(call_id, supervisor_id, mode)`` → request id; ``status(id)`` → the request as a
    dict (``status``: pending, taken, done, failed; ``reason``); ``expire(id)`` fails a request
    no worker took (True) ; ``current(call_id or None)`` → who supervises which call now."""

    request: Callable[[str, str, str], int]
    status: Callable[[int], dict[str, Any] | None]
    expire: Callable[[int], bool]
    current: Callable[[str | None], list[dict[str, Any]]]
    answer_wait_s: float = 30.0
    """How long a request may take once a worker took it (the supervisor's phone rings)."""


SUPERVISION_MODES = ("listen", "whisper", "barge", "leave")
TAKE_WAIT_S = 3.0
"""How long a request waits for a worker to take it: workers holding supervisable calls poll
every 0.25 s, so none taking it means no worker holds that call live."""
SUPERVISION_ERRORS = {
    "not_live": (404, "that call is not live on any worker, or has no agent on it yet"),
    "call_ended": (404, "that call has ended"),
    "not_registered": (409, "your SIP phone is not registered: register it at the front and try again"),
    "no_answer": (409, "your phone did not answer"),
    "no_slot": (503, "the worker holding this call has no free line for you (4 per worker)"),
    "listen_only": (409, "this call can only be listened to"),
}


@dataclass(frozen=True)
class AgentConsole:
    """The ACD as the console sees it. Every callable blocks (database, password hashing): the
    console calls them in a thread.

    ``agents()`` rows: ``agent_id``, ``name``, ``state`` (an ``AgentStatus`` value), ``reason``,
    ``call_id``, ``supervisor`` (bool), ``skills`` (list); never password hashes.
    ``set_state(agent_id, state, reason)``: the change as a dict, or None (refused while ringing
    or on a call, or nothing to change). ``queues()``: one snapshot per queue (``queue``,
    ``waiting``, ``longest_wait_s``, ``agents`` by state, ``callers``).
    """

    login: Callable[[str, str], bool]
    agents: Callable[[], list[dict[str, Any]]]
    set_state: Callable[[str, str, str], dict[str, Any] | None]
    queues: Callable[[], list[dict[str, Any]]]
    close: Callable[[], None] = field(default=_nothing)
    supervision: SupervisionChannel | None = None


class SuperviseRequest(BaseModel):
    call_id: str = Field(min_length=1, max_length=200)
    mode: Literal["listen", "whisper", "barge", "leave"]


class StateRequest(BaseModel):
    state: Literal["ready", "not_ready", "logged_out"]
    reason: str = Field("", max_length=64)


AGENT_PATHS = ("/agent", "/api/agent/", "/static/", "/queues", "/api/queues", "/api/agents", "/api/supervision",
               "/api/tasks", "/api/tasks/")
"""Paths an agent session may reach (the handlers check the rest: queues need a supervisor)."""
PUBLIC_PATHS = frozenset({"/agent", "/api/agent/login", "/static/console.css"})
"""Reachable without any credentials: the login page and its form's target."""


SUPERVISOR_PATHS = ("/calls/", "/api/calls/", "/dashboard", "/api/kpis", "/calibration", "/api/qa/", "/tasks")
"""Calls' pages and streams: a supervisor's session reaches them too (they may watch every
call); anyone else needs the console token."""


def agent_may_reach(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in AGENT_PATHS)


def supervisor_may_reach(path: str) -> bool:
    return any(path.startswith(p) for p in SUPERVISOR_PATHS)


def is_supervisor(acd: AgentConsole, agent_id: str) -> bool:
    """Blocking: ``agent_id`` has ``supervisor: true`` in the agents' configuration."""
    return any(r.get("agent_id") == agent_id and r.get("supervisor") for r in acd.agents())


class _Throttle:
    """Wrong passwords per agent id; bounded by ids tried."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}

    def locked(self, agent_id: str) -> bool:
        count, since = self._failures.get(agent_id, (0, 0.0))
        if count and self._clock() - since > LOGIN_LOCKOUT_S:
            del self._failures[agent_id]
            return False
        return count >= LOGIN_FAILURES_MAX

    def failed(self, agent_id: str) -> None:
        count, since = self._failures.get(agent_id, (0, self._clock()))
        self._failures[agent_id] = (count + 1, since)
        if len(self._failures) > 10_000:
            del self._failures[next(iter(self._failures))]

    def passed(self, agent_id: str) -> None:
        self._failures.pop(agent_id, None)


def agent_router(acd: AgentConsole, live: LiveCalls, sessions: auth.AgentSessions, token: str) -> APIRouter:
    """Pages and API of agents and supervisors (docs/mqtt.md, "Agent console")."""
    router = APIRouter()
    throttle = _Throttle()

    async def agent_row(agent_id: str) -> dict[str, Any] | None:
        rows = await asyncio.to_thread(acd.agents)
        return next((r for r in rows if r.get("agent_id") == agent_id), None)

    def signed_in(request: Request) -> str:
        agent_id = sessions.from_request(request)
        if agent_id is None:
            raise HTTPException(401, "log in as an agent first")
        return agent_id

    async def me(agent_id: str) -> dict[str, Any]:
        row = await agent_row(agent_id)
        if row is None:
            raise HTTPException(401, "unknown agent")
        call = live.call_of(agent_id)
        return {
            "agent_id": agent_id, "name": row.get("name", ""), "state": row.get("state"),
            "reason": row.get("reason", ""), "supervisor": bool(row.get("supervisor")),
            "skills": list(row.get("skills", ())),
            "call_id": call.call_id if call is not None else (row.get("call_id") or None),
            "call_ended": call.ended if call is not None else None,
        }

    async def may_see_queues(request: Request) -> None:
        if auth.has_token(request, token):
            return
        agent_id = sessions.from_request(request)
        if agent_id is None:
            raise HTTPException(401, "log in first")
        row = await agent_row(agent_id)
        if row is None or not row.get("supervisor"):
            raise HTTPException(403, "supervisors only")

    @router.get("/agent", response_model=None)
    async def agent_page(request: Request) -> FileResponse:
        page = "agent.html" if sessions.from_request(request) else "agent_login.html"
        return FileResponse(STATIC / page, headers={"Cache-Control": "no-store"})

    @router.post("/api/agent/login", response_model=None)
    async def login(request: Request) -> Response:
        form = _is_form(request)
        agent_id, password = await _credentials(request, form)
        if throttle.locked(agent_id):
            log.warning("agent login locked after repeated failures")
            return _login_failed(form, 429, "too many failed logins; try again later")
        ok = bool(agent_id and password) and await asyncio.to_thread(acd.login, agent_id, password)
        if not ok:
            throttle.failed(agent_id)
            return _login_failed(form, 401, "wrong agent id or password")
        throttle.passed(agent_id)
        response: Response = (RedirectResponse("/agent", status_code=303) if form
                              else JSONResponse({"agent_id": agent_id}))
        sessions.set_cookie(response, request, agent_id)
        return response

    @router.post("/api/agent/logout", response_model=None)
    async def logout(request: Request) -> Response:
        response: Response = (RedirectResponse("/agent", status_code=303) if _is_form(request)
                              else JSONResponse({"ok": True}))
        sessions.clear_cookie(response, request)
        return response

    @router.get("/api/agent/me")
    async def get_me(request: Request) -> dict[str, Any]:
        return await me(signed_in(request))

    @router.post("/api/agent/state")
    async def set_state(request: Request, body: StateRequest) -> JSONResponse:
        agent_id = signed_in(request)
        change = await asyncio.to_thread(acd.set_state, agent_id, body.state, body.reason)
        now = await me(agent_id)
        if change is None and (now["state"] != body.state or now["reason"] != body.reason):
            return JSONResponse({"detail": f"refused while {now['state']}", **now}, status_code=409)
        return JSONResponse({"changed": change is not None, **now})

    @router.get("/api/agent/stream")
    async def stream(request: Request) -> StreamingResponse:
        """``agent`` (their state, when known), ``reset`` naming their current call (null for
        none) and its events so far, then live events; a ``reset`` again when they join
        another call."""
        agent_id = signed_in(request)
        stream, first = live.open_agent_stream(agent_id)
        return sse_response(request, live, stream, first)

    @router.get("/queues", response_model=None)
    async def queues_page(request: Request) -> FileResponse:
        await may_see_queues(request)
        return FileResponse(STATIC / "queues.html")

    @router.get("/api/queues")
    async def get_queues(request: Request) -> list[dict[str, Any]]:
        await may_see_queues(request)
        return await asyncio.to_thread(acd.queues)

    async def supervisor(request: Request) -> str:
        """The signed-in supervisor (an identity is needed: their phone is dialed)."""
        agent_id = sessions.from_request(request)
        if agent_id is None:
            raise HTTPException(401, "log in as a supervisor first")
        row = await agent_row(agent_id)
        if row is None or not row.get("supervisor"):
            raise HTTPException(403, "supervisors only")
        return agent_id

    @router.post("/api/supervision")
    async def supervise(request: Request, body: SuperviseRequest) -> JSONResponse:
        """Listen to, whisper on, barge into or leave a live call: the worker holding it dials
        the supervisor's phone (or switches its links). Waits for the outcome."""
        sup_id = await supervisor(request)
        channel = acd.supervision
        if channel is None:
            raise HTTPException(503, "supervision is not available")
        mode = "left" if body.mode == "leave" else body.mode
        req_id = await asyncio.to_thread(channel.request, body.call_id, sup_id, mode)
        row = await _wait_request(channel, req_id, ("pending",), TAKE_WAIT_S)
        if row is not None and row["status"] == "pending" and await asyncio.to_thread(channel.expire, req_id):
            row = {**row, "status": "failed", "reason": "not_live"}
        if row is not None and row["status"] == "taken":
            row = await _wait_request(channel, req_id, ("pending", "taken"), channel.answer_wait_s)
        row = row or {}
        current = await asyncio.to_thread(channel.current, body.call_id)
        out = {"request_id": req_id, "call_id": body.call_id, "mode": mode, "status": row.get("status", ""),
               "reason": row.get("reason", ""), "supervision": current}
        if row.get("status") == "failed":
            status, detail = SUPERVISION_ERRORS.get(row.get("reason", ""), (409, "refused"))
            return JSONResponse({**out, "detail": detail}, status_code=status)
        return JSONResponse(out, status_code=200 if row.get("status") == "done" else 202)

    @router.get("/api/supervision")
    async def get_supervision(request: Request, call_id: str | None = None) -> list[dict[str, Any]]:
        """Who supervises which live call now, in which mode."""
        await supervisor(request)
        if acd.supervision is None:
            return []
        return await asyncio.to_thread(acd.supervision.current, call_id)

    @router.get("/api/agents")
    async def get_agents(request: Request) -> list[dict[str, Any]]:
        await may_see_queues(request)
        rows = await asyncio.to_thread(acd.agents)
        for row in rows:
            call = live.call_of(str(row.get("agent_id", "")))
            row["live_call_id"] = call.call_id if call is not None and not call.ended else None
        return rows

    return router


async def _wait_request(channel: SupervisionChannel, req_id: int, waiting: tuple[str, ...],
                        timeout_s: float) -> dict[str, Any] | None:
    """The request once its status left ``waiting`` (or as it is after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = await asyncio.to_thread(channel.status, req_id)
        if row is None or row["status"] not in waiting or time.monotonic() >= deadline:
            return row
        await asyncio.sleep(0.1)


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")


async def _credentials(request: Request, form: bool) -> tuple[str, str]:
    """Agent id and password from a JSON body or a plain HTML form (no JavaScript needed)."""
    raw = await request.body()
    fields: dict[str, Any]
    if len(raw) > 4096:
        raise HTTPException(413, "too large")
    try:
        if form:
            fields = {k: v[0] for k, v in parse_qs(raw.decode(), max_num_fields=10).items()}
        else:
            data = json.loads(raw or b"{}")
            fields = data if isinstance(data, dict) else {}
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(400, "malformed login") from exc
    agent_id, password = fields.get("agent_id", ""), fields.get("password", "")
    if not isinstance(agent_id, str) or not isinstance(password, str):
        raise HTTPException(400, "malformed login")
    return agent_id.strip().lower()[:64], password


def _login_failed(form: bool, status: int, detail: str) -> Response:
    if form:
        return RedirectResponse(f"/agent?error={status}", status_code=303)
    return JSONResponse({"detail": detail}, status_code=status)
