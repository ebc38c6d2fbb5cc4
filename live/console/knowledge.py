"""The agent's marks on suggested knowledge articles: ``POST /api/agent/feedback``.

Suggestions reach the agent page as ``assist.suggestion`` events on the call's stream; the
agent opens one and marks it helpful or not. The mark is stored through the
:class:`ArticleFeedback` seam (the composition root passes the store; ``live`` never imports it)
and shown at once as an ``assist.feedback`` event on the call's stream. The call's worker adds
the stored marks to the call's events when it ends, so the summary names the articles used.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from live.console import auth
from live.console.state import LiveCalls
from speech.events import AssistFeedback


class ArticleFeedback(Protocol):
    def mark(self, call_id: str, article_id: str, *, helpful: bool, title: str = "",
             agent_id: str = "") -> object:
        """Record (or change) a mark; blocking."""
        ...


class FeedbackRequest(BaseModel):
    call_id: str = Field(min_length=1, max_length=200)
    article_id: str = Field(min_length=1, max_length=200)
    title: str = Field("", max_length=300)
    helpful: bool


def knowledge_router(feedback: ArticleFeedback, live: LiveCalls, sessions: auth.AgentSessions,
                     token: str) -> APIRouter:
    router = APIRouter()

    @router.post("/api/agent/feedback")
    async def mark(request: Request, body: FeedbackRequest) -> dict[str, object]:
        """An agent may mark articles of their own (current or last) call; the token any call."""
        agent_id = sessions.from_request(request)
        if agent_id is None and not auth.has_token(request, token):
            raise HTTPException(401, "log in as an agent first")
        if agent_id is not None and not auth.has_token(request, token):
            call = live.call_of(agent_id)
            if call is None or call.call_id != body.call_id:
                raise HTTPException(403, "not your call")
        await asyncio.to_thread(feedback.mark, body.call_id, body.article_id, helpful=body.helpful,
                                title=body.title, agent_id=agent_id or "")
        call = live.get(body.call_id)
        t = float(call.events[-1].get("t", 0.0)) if call is not None and call.events else 0.0
        live.ingest(AssistFeedback(call_id=body.call_id, t=t, article_id=body.article_id, title=body.title,
                                   helpful=body.helpful, agent_id=agent_id or "").to_dict())
        return {"ok": True, "article_id": body.article_id, "helpful": body.helpful}

    return router
