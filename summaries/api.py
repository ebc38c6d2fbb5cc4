"""REST API over the CRM store: calls (list, search, detail), contacts, follow-up tasks (+ CSV).

``create_api(store, token=...)`` returns a FastAPI app (mount it or serve it with uvicorn);
``app.state.router`` is the bare ``APIRouter`` for apps that want to include it instead. A bearer
token protects every route when given, the OpenAPI document and ``/docs`` included (the API may
be reachable from a LAN, and its schema names every field of a call record). Every input is
validated (``summaries.api_models``): a bad one gets 4xx, never a 500. ``POST /api/calls`` ingests
a call from another process, redacted exactly as a live call (``CrmStore.redact``), with a hard
body-size limit (413).
"""

import csv
import hmac
import io
import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from summaries.api_models import MAX_ID_CHARS, MAX_NUMBER_CHARS, CallIn, QueryTime
from summaries.store import MAX_PAGE, CrmStore
from summaries.summarizer import summarize

MAX_BODY_BYTES = 2 * 1024 * 1024
"""Largest call accepted by ``POST /api/calls`` (a long call's events are ~100s of KB)."""
MAX_QUERY_CHARS = 200
MAX_OFFSET = 10**9
"""Deeper pages are refused (422): SQLite and PostgreSQL take 64-bit offsets, Python ints do not stop."""

Tone = Literal["calm", "neutral", "tense", "angry", "unknown"]
_NO_NUL = r"^[^\x00]*$"

_ERROR = {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}}}}
_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "missing or wrong bearer token", **_ERROR},
                                                  403: {"description": "a read-only token on a write", **_ERROR}}


def create_api(store: CrmStore, *, token: str | None, read_token: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """A FastAPI app serving ``store``; ``token=None`` leaves it open (loopback, tests).

    ``token`` may read and write (the CRM bridge posts calls with it); ``read_token``, when
    given, may only read (reporting): a write with it is 403, so a leaked report token cannot
    plant records."""
    bearer = HTTPBearer(auto_error=False)

    def check_token(request: Request,
                    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if token is None:
            return
        given = creds.credentials.encode() if creds is not None else b""
        if creds is not None and hmac.compare_digest(given, token.encode()):
            return
        if read_token and creds is not None and hmac.compare_digest(given, read_token.encode()):
            if request.method in ("GET", "HEAD", "OPTIONS"):
                return
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this token may only read")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})

    router = APIRouter(prefix="/api", dependencies=[Depends(check_token)], responses=_AUTH_ERRORS)

    @router.get("/calls", responses={400: {"description": "date_from is after date_to", **_ERROR}})
    def list_calls(
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        q: Annotated[str | None, Query(min_length=1, max_length=MAX_QUERY_CHARS, pattern=_NO_NUL)] = None,
        caller: Annotated[str | None, Query(min_length=1, max_length=MAX_NUMBER_CHARS, pattern=_NO_NUL)] = None,
        date_from: QueryTime | None = None,
        date_to: QueryTime | None = None,
        tone: Tone | None = None,
    ) -> dict[str, Any]:
        if date_from and date_to and _utc(date_from) > _utc(date_to):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "date_from is after date_to")
        rows = store.search(text=q, caller=caller, date_from=date_from, date_to=date_to, tone=tone,
                            limit=limit, offset=offset)
        return {"items": [r.to_dict() for r in rows], "limit": limit, "offset": offset}

    @router.get("/calls/{call_id}", responses={404: {"description": "no such call", **_ERROR}})
    def get_call(call_id: Annotated[str, Path(max_length=MAX_ID_CHARS, pattern=_NO_NUL)]) -> dict[str, Any]:
        detail = store.get_call(call_id)
        if detail is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such call")
        out = detail.to_dict()
        for utterance in out["transcript"]:  # kept originals stay in the database only
            utterance.pop("original_text", None)
        return out

    @router.post("/calls", status_code=status.HTTP_201_CREATED,
                 responses={400: {"description": "body is not UTF-8 JSON", **_ERROR},
                            413: {"description": f"body larger than {max_body_bytes} bytes", **_ERROR}})
    async def post_call(call: CallIn) -> dict[str, Any]:
        """Store a finished call. It is redacted as a live call is, before anything is stored;
        without a ``summary`` the offline summarizer writes one from the redacted events."""
        return {"call_id": await run_in_threadpool(_ingest, store, call)}

    @router.get("/contacts/{number}", responses={404: {"description": "no such contact", **_ERROR}})
    def get_contact(number: Annotated[str, Path(max_length=MAX_NUMBER_CHARS, pattern=_NO_NUL)]) -> dict[str, Any]:
        contact = store.get_contact(number)
        if contact is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such contact")
        return contact.to_dict()

    @router.get("/tasks", responses={200: {"content": {"text/csv": {}}}})
    def list_tasks(
        status_: Annotated[Literal["open", "done", "all"], Query(alias="status")] = "open",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        agent: Annotated[str | None, Query(max_length=MAX_ID_CHARS, pattern=_NO_NUL)] = None,
        overdue: bool | None = None,
        format_: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
    ) -> Any:
        """Follow-up tasks, overdue first, then by due date. ``agent`` keeps one agent's
        promises; ``overdue`` true/false keeps open tasks past / not past their due date."""
        rows = store.list_tasks(None if status_ == "all" else status_, limit=limit, offset=offset,
                                agent=agent, overdue=overdue)
        if format_ == "csv":
            return Response(tasks_csv([r.to_dict() for r in rows]), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="tasks.csv"'})
        return {"items": [r.to_dict() for r in rows], "limit": limit, "offset": offset}

    @router.post("/tasks/{task_id}/done", responses={404: {"description": "no such task", **_ERROR}})
    def task_done(task_id: Annotated[int, Path(ge=1, le=2**62)], done: bool = True) -> dict[str, Any]:
        """Mark a task done (``done=false``: open again); the first ``done_at`` is kept."""
        row = store.set_task_done(task_id, done)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such task")
        return row.to_dict()

    app = FastAPI(title="callcenter CRM", version="1", openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(router)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            # Starlette names only the first route's methods; a path has several (GET, POST).
            methods = {m for r in (*router.routes, *app.routes)
                       if isinstance(r, APIRoute) and r.path_regex.match(request.url.path)
                       for m in r.methods or ()}
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(methods))}
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError) -> Response:
        # As FastAPI's own handler, but an echoed NaN or infinity must not break the JSON reply.
        return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)

    app.state.router = router
    _add_docs(app, token, read_token)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app


TASK_CSV_COLUMNS = ("id", "call_id", "agent_id", "owner", "text", "due_hint", "due_at", "overdue", "status",
                    "done_at", "contact", "t", "created_at")


def tasks_csv(rows: list[dict[str, Any]]) -> str:
    """Task dicts (``TaskRow.to_dict``) as CSV with a header row, for spreadsheets."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(TASK_CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in TASK_CSV_COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> Any:
    """A CSV cell; text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) gets a ``'``."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _ingest(store: CrmStore, call: CallIn) -> str:
    """Redact, summarize (from the redacted events) and store; blocking, off the event loop."""
    red = store.redact(call.to_events(), call.to_summary())
    summary = red.summary or summarize(red.events)
    return store.save_call(red.events, summary, originals=red.originals)


def _add_docs(app: FastAPI, token: str | None, read_token: str | None = None) -> None:
    """``/openapi.json`` and ``/docs`` behind the same tokens as the API (reading them is a read).
    A browser cannot send a bearer header, so ``/docs?token=...`` also works and hands the token
    to its schema fetch."""

    def allowed(request: Request) -> bool:
        if token is None:
            return True
        given = request.query_params.get("token", "")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:]
        return any(hmac.compare_digest(given.encode(), t.encode()) for t in (token, read_token) if t)

    def denied() -> JSONResponse:
        return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> JSONResponse:
        return JSONResponse(app.openapi()) if allowed(request) else denied()

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        if not allowed(request):
            return denied()  # type: ignore[return-value]
        query = f"?token={request.query_params['token']}" if "token" in request.query_params else ""
        return get_swagger_ui_html(openapi_url=f"/openapi.json{query}", title="callcenter CRM API")


class BodyLimit:
    """Refuses (413) a request body above ``limit`` bytes before the app parses it: at once when
    ``Content-Length`` says so, else while it streams in (the app sees a complete body or none)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _reply(send, 400, "bad Content-Length")
                return
            if size > self.limit:
                await _reply(send, 413, f"body larger than {self.limit} bytes")
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            total += len(message.get("body", b""))
            if total > self.limit:
                await _reply(send, 413, f"body larger than {self.limit} bytes")
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(send: Send, code: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as strings ("nan", "inf"), so it serializes as JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
