"""REST API over the CRM store: calls (list, search, detail), contacts, follow-up tasks.

``create_api(store, token=...)`` returns a FastAPI app (mount it or serve it with uvicorn);
``app.state.router`` is the bare ``APIRouter`` for apps that want to include it instead. A bearer token
protects every route when given. ``POST /api/calls`` ingests a call (events, optional summary)
from another process, with a hard body-size limit (413).
"""

import hmac
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from speech.events import Event
from summaries.store import MAX_PAGE, CrmStore
from summaries.summarizer import summarize
from summaries.summary import CallSummary

MAX_BODY_BYTES = 2 * 1024 * 1024
"""Largest call accepted by ``POST /api/calls`` (a long call's events are ~100s of KB)."""
MAX_QUERY_CHARS = 200

Tone = Literal["calm", "neutral", "tense", "angry", "unknown"]


def create_api(store: CrmStore, *, token: str | None, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """A FastAPI app serving ``store``; ``token=None`` leaves it open (loopback, tests)."""
    bearer = HTTPBearer(auto_error=False)

    def check_token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if token is None:
            return
        if creds is None or not hmac.compare_digest(creds.credentials.encode(), token.encode()):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    router = APIRouter(prefix="/api", dependencies=[Depends(check_token)])

    @router.get("/calls")
    def list_calls(
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
        q: Annotated[str | None, Query(min_length=1, max_length=MAX_QUERY_CHARS)] = None,
        caller: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        tone: Tone | None = None,
    ) -> dict[str, Any]:
        if date_from and date_to and _cmp_key(date_from) > _cmp_key(date_to):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "date_from is after date_to")
        rows = store.search(text=q, caller=caller, date_from=date_from, date_to=date_to, tone=tone,
                            limit=limit, offset=offset)
        return {"items": [r.to_dict() for r in rows], "limit": limit, "offset": offset}

    @router.get("/calls/{call_id}")
    def get_call(call_id: str) -> dict[str, Any]:
        detail = store.get_call(call_id)
        if detail is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such call")
        return detail.to_dict()

    @router.post("/calls", status_code=status.HTTP_201_CREATED)
    async def post_call(request: Request) -> dict[str, Any]:
        body = await _read_limited(request, max_body_bytes)
        try:
            data = json.loads(body)
            events = [Event.from_dict(e) for e in data["events"]]
            summary = CallSummary.from_dict(data["summary"]) if data.get("summary") else summarize(events)
        except (ValueError, KeyError, TypeError) as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"malformed call: {type(exc).__name__}") from exc
        call_id = await run_in_threadpool(store.save_call, events, summary)
        return {"call_id": call_id}

    @router.get("/contacts/{number}")
    def get_contact(number: str) -> dict[str, Any]:
        contact = store.get_contact(number)
        if contact is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such contact")
        return contact.to_dict()

    @router.get("/tasks")
    def list_tasks(
        status_: Annotated[Literal["open", "done", "all"], Query(alias="status")] = "open",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        rows = store.list_tasks(None if status_ == "all" else status_, limit=limit, offset=offset)
        return {"items": [r.to_dict() for r in rows], "limit": limit, "offset": offset}

    app = FastAPI(title="callcenter CRM", version="1")
    app.include_router(router)
    app.state.router = router
    return app


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing (413) anything above ``limit`` before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body larger than {limit} bytes")
        except ValueError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "bad Content-Length") from exc
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _cmp_key(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
