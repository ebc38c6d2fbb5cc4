"""Call review: a past call's recording, served to the people who may hear it.

``GET /api/calls/{id}/recording?party=both|caller|agent`` answers a WAV: the stereo recording
(``both``: channel 1 the agent, what the caller heard; channel 2 the caller) or one party's
channel as mono, with every redacted transcript span silent. The console holds no recordings
itself: a :class:`CallRecordings` adapter (injected by the composition root) finds, decrypts,
splits and silences them. Who may listen: the console token, a supervisor, or the agent who took
the call. Browsers seek in ``<audio>`` with byte ranges, so single ranges get ``206 Partial
Content``; Starlette's ``FileResponse`` does ranges too, but only for a plain file on disk, and a
recording encrypted at rest must not be written out decrypted, so the bytes are served from
memory here.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from live.console import auth

PartyChoice = Literal["both", "caller", "agent"]
RECORDING_PATH = re.compile(r"^/api/calls/[^/]+/recording$")
"""The one call route an agent's session reaches (the handler checks it is their call)."""
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RecordingUnavailable(Exception):
    """The call has no playable recording here; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


class CallRecordings(Protocol):
    """Past calls' recordings, ready to play. Blocking: the router calls it from a thread."""

    def agent_of(self, call_id: str) -> str | None:
        """The id of the agent who took the call ("" when none); None when the call is unknown."""
        ...

    def wav(self, call_id: str, party: PartyChoice) -> bytes:
        """The WAV file to play, redacted spans silent; raises :class:`RecordingUnavailable`."""
        ...


def recording_path(path: str) -> bool:
    return RECORDING_PATH.match(path) is not None


def review_router(recordings: CallRecordings, sessions: auth.AgentSessions, token: str,
                  is_supervisor: Callable[[str], Awaitable[bool]]) -> APIRouter:
    """The recording route; ``is_supervisor(agent_id)`` asks the ACD (False without one)."""
    router = APIRouter()

    @router.get("/api/calls/{call_id}/recording")
    async def recording(call_id: str, request: Request,
                        party: PartyChoice = "both") -> Response:
        owner = await asyncio.to_thread(recordings.agent_of, call_id)
        if not auth.has_token(request, token):
            agent_id = sessions.from_request(request)
            if agent_id is None:
                raise HTTPException(401, "open the console with the token or log in")
            if agent_id != owner and not await is_supervisor(agent_id):
                raise HTTPException(403, "not your call")
        if owner is None:
            raise HTTPException(404, "unknown call")
        try:
            body = await asyncio.to_thread(recordings.wav, call_id, party)
        except RecordingUnavailable as exc:
            raise HTTPException(exc.status, str(exc)) from exc
        return ranged(body, request.headers.get("range"), media_type="audio/wav")

    return router


def ranged(body: bytes, range_header: str | None, *, media_type: str) -> Response:
    """``body`` whole (200) or one byte range of it (206, or 416 when outside). A header with
    several ranges, or one this does not parse, is ignored (200), as RFC 9110 allows."""
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store"}
    size = len(body)
    m = _RANGE.match(range_header.strip()) if range_header else None
    if m is None or m.group(1) == m.group(2) == "":
        return Response(body, media_type=media_type, headers=headers)
    first, last = m.group(1), m.group(2)
    if first == "":  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(body[start:end + 1], status_code=206, media_type=media_type, headers=headers)
