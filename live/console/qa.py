"""QA in the console: a call's scorecard with reviewers' overrides, and the calibration view.

``GET /api/calls/{id}/scorecard``: the scorecards (automatic answers with overrides applied,
plus the override history); a call still live shows its latest ``qa.scorecard`` event.
``POST /api/calls/{id}/scorecard/overrides``: a reviewer's answer with a reason (who is the
logged-in agent/supervisor, or ``token``). ``GET /api/qa/calibration`` (``.csv``) and the
``/calibration`` page compare automatic answers with reviewers'. The store sits behind the
:class:`QaReviews` seam (the composition root's adapter); ``live`` never imports it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal, Protocol

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from live.console import auth
from live.console.state import LiveCalls

STATIC = Path(__file__).parent / "static"


class QaReviews(Protocol):
    """Blocking; the router calls it off the event loop."""

    def scorecards(self, call_id: str) -> list[dict[str, Any]]:
        """Stored scorecards with overrides applied, each with ``history`` (oldest first)."""
        ...

    def override(self, call_id: str, form_id: str, question_id: str, answer: str, *,
                 reviewer: str, reason: str) -> dict[str, Any]:
        """Record an override; returns the scorecard after it. ``KeyError``: unknown call,
        form or question."""
        ...

    def calibration(self, form_id: str | None) -> dict[str, Any]:
        ...

    def calibration_csv(self, form_id: str | None) -> str:
        ...


class OverrideRequest(BaseModel):
    form_id: str = Field(min_length=1, max_length=64)
    question_id: str = Field(min_length=1, max_length=64)
    answer: Literal["yes", "no", "na"]
    reason: str = Field(min_length=1, max_length=2000)


def live_scorecards(live: LiveCalls, call_id: str) -> list[dict[str, Any]]:
    """The latest ``qa.scorecard`` of each form among a live call's events."""
    call = live.get(call_id)
    latest: dict[str, dict[str, Any]] = {}
    for e in call.events if call is not None else ():
        if e.get("type") == "qa.scorecard" and isinstance(e.get("scorecard"), dict):
            latest[str(e.get("form_id"))] = {**e["scorecard"], "history": []}
    return list(latest.values())


def qa_router(reviews: QaReviews, live: LiveCalls, sessions: auth.AgentSessions, token: str) -> APIRouter:
    router = APIRouter()

    @router.get("/api/calls/{call_id}/scorecard")
    async def scorecard(call_id: str) -> dict[str, Any]:
        cards = await asyncio.to_thread(reviews.scorecards, call_id)
        return {"call_id": call_id, "live": not cards, "scorecards": cards or live_scorecards(live, call_id)}

    @router.post("/api/calls/{call_id}/scorecard/overrides")
    async def override(call_id: str, body: OverrideRequest, request: Request) -> dict[str, Any]:
        reviewer = "token" if auth.has_token(request, token) else (sessions.from_request(request) or "token")
        reason = body.reason.strip()
        if not reason:
            raise HTTPException(422, "a reason is required")
        try:
            card = await asyncio.to_thread(reviews.override, call_id, body.form_id, body.question_id, body.answer,
                                           reviewer=reviewer, reason=reason)
        except KeyError as exc:
            raise HTTPException(404, str(exc).strip("'")) from None
        return {"call_id": call_id, "scorecard": card}

    @router.get("/api/qa/calibration")
    async def calibration(form_id: str | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(reviews.calibration, form_id or None)

    @router.get("/api/qa/calibration.csv")
    async def calibration_csv(form_id: str | None = None) -> Response:
        text = await asyncio.to_thread(reviews.calibration_csv, form_id or None)
        return Response(text, media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="calibration.csv"'})

    @router.get("/calibration")
    async def calibration_page() -> FileResponse:
        return FileResponse(STATIC / "calibration.html")

    return router
