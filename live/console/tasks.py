"""Follow-up tasks in the console: promises heard in calls, per agent, overdue ones first.

- ``GET /api/tasks?agent=&status=open|done|all&overdue=true|false&format=json|csv``
- ``POST /api/tasks/{id}/done`` (``?done=false`` opens it again)
- ``GET /tasks``: the supervisors' page (every agent's tasks); the agent page has a panel.

The console token and supervisors see every task; an agent's session sees and closes only the
agent's own (``agent=`` someone else is 403). Tasks come through the :class:`FollowUpTasks`
seam: the composition root passes an adapter over the CRM store (``live`` never imports it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, Protocol

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from live.console import auth

STATIC = Path(__file__).resolve().parent / "static"
MAX_TASKS = 500


class FollowUpTasks(Protocol):
    """Blocking access to stored follow-up tasks (dicts as ``summaries.store.TaskRow.to_dict``:
    ``id, call_id, agent_id, owner, text, due_hint, due_at, overdue, status, done_at, t, ...``)."""

    def find(self, *, agent: str | None, status: str | None, overdue: bool | None,
             limit: int) -> list[dict[str, Any]]:
        """Overdue first, then by due date (undated last)."""
        ...

    def get(self, task_id: int) -> dict[str, Any] | None: ...

    def set_done(self, task_id: int, done: bool) -> dict[str, Any] | None: ...

    def to_csv(self, rows: list[dict[str, Any]]) -> str: ...


def tasks_router(tasks: FollowUpTasks, sessions: auth.AgentSessions, token: str,
                 supervisor: Callable[[str], Awaitable[bool]]) -> APIRouter:
    """``supervisor(agent_id)``: whether a logged-in agent may see everyone's tasks."""
    router = APIRouter()

    async def own_only(request: Request) -> str | None:
        """None: may see every task (token, supervisor); else the agent whose tasks these are."""
        if auth.has_token(request, token):
            return None
        agent_id = sessions.from_request(request)
        if agent_id is None:
            raise HTTPException(401, "log in first")
        return None if await supervisor(agent_id) else agent_id

    @router.get("/tasks", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "tasks.html")

    @router.get("/api/tasks", response_model=None)
    async def list_tasks(
        request: Request,
        agent: str | None = Query(None, min_length=1, max_length=64),
        status: Literal["open", "done", "all"] = "open",
        overdue: bool | None = None,
        format: Literal["json", "csv"] = "json",  # noqa: A002 - the query parameter's name
        limit: int = Query(200, ge=1, le=MAX_TASKS),
    ) -> Response:
        mine = await own_only(request)
        if mine is not None:
            if agent is not None and agent != mine:
                raise HTTPException(403, "an agent sees only their own tasks")
            agent = mine
        rows = await asyncio.to_thread(tasks.find, agent=agent, status=None if status == "all" else status,
                                       overdue=overdue, limit=limit)
        if format == "csv":
            body = await asyncio.to_thread(tasks.to_csv, rows)
            return Response(body, media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="tasks.csv"'})
        return JSONResponse({"items": rows, "agent": agent})

    @router.post("/api/tasks/{task_id}/done")
    async def done(request: Request, task_id: int, done: bool = True) -> dict[str, Any]:
        mine = await own_only(request)
        task = await asyncio.to_thread(tasks.get, task_id)
        if task is None:
            raise HTTPException(404, "no such task")
        if mine is not None and task.get("agent_id") != mine:
            raise HTTPException(403, "not your task")
        row = await asyncio.to_thread(tasks.set_done, task_id, done)
        if row is None:
            raise HTTPException(404, "no such task")
        return row

    return router
