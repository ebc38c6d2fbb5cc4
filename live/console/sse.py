"""Server-sent event responses of the console: a first batch of frames, then a stream's queue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from live.console.state import Frame, LiveCalls, _Stream

SSE_KEEPALIVE_S = 15.0
"""Comment line sent on idle streams so proxies keep them open."""


def sse_response(request: Request, live: LiveCalls, stream: _Stream, first: list[Frame]) -> StreamingResponse:
    """``first``, then every batch ``stream`` receives, until the server stops, the browser goes
    or the stream overflows (the browser's EventSource then reconnects to a fresh replay)."""
    # The stream was opened before ``first`` was read, with no await in between for live calls,
    # so the queue holds exactly the events after the replay.
    async def body() -> AsyncIterator[str]:
        try:
            for name, data in first:
                yield frame(name, data)
            while True:
                try:
                    batch = await asyncio.wait_for(stream.queue.get(), SSE_KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keepalive\n\n"
                    continue
                if batch is None or stream.overflowed and stream.queue.empty():
                    return
                for name, data in batch:
                    yield frame(name, data)
        finally:
            live.close_stream(stream)

    return StreamingResponse(
        body(), media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def frame(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n"
