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


class StateRequest(BaseModel):
    state: Literal["ready", "not_ready", "logged_out"]
    reason: str = Field("", max_length=64)


AGENT_PATHS = ("/agent", "/api/agent/", "/static/", "/queues", "/api/queues", "/api/agents")
"""Paths an agent session may reach (the handlers check the rest: queues need a supervisor)."""
PUBLIC_PATHS = frozenset({"/agent", "/api/agent/login", "/static/console.css"})
"""Reachable without any credentials: the login page and its form's target."""


def agent_may_reach(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in AGENT_PATHS)


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

    @router.get("/api/agents")
    async def get_agents(request: Request) -> list[dict[str, Any]]:
        await may_see_queues(request)
        rows = await asyncio.to_thread(acd.agents)
        for row in rows:
            call = live.call_of(str(row.get("agent_id", "")))
            row["live_call_id"] = call.call_id if call is not None and not call.ended else None
        return rows

    return router


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
