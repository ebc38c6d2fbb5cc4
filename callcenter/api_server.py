"""Serves the CRM REST API (``summaries.api``) with uvicorn, for ``serve`` and ``callcenter api``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from callcenter.settings import Settings

if TYPE_CHECKING:
    from uvicorn._types import ASGIApplication


@dataclass
class RunningServer:
    server: object
    task: asyncio.Task[None]
    store: object

    async def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 10)
        with contextlib.suppress(Exception):
            self.store.stop()  # type: ignore[attr-defined]


async def start_uvicorn(
    app: ASGIApplication | Callable[..., Any] | str, host: str, port: int, what: str
) -> tuple[object, asyncio.Task[None]]:
    """Start uvicorn in this loop; return once it listens (or raise with the reason)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not server.started:
        if task.done():
            raise RuntimeError(f"{what} could not listen on {host}:{port} (port in use?)")
        if loop.time() > deadline:
            server.should_exit = True
            raise RuntimeError(f"{what} did not start within 15 s")
        await asyncio.sleep(0.05)
    return server, task


async def start_api(settings: Settings) -> RunningServer:
    from summaries.api import create_api
    from summaries.store import CrmStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Posted calls are redacted as live ones are: same secure IVR nodes, same originals policy.
    store = CrmStore(settings.store_url, secure_ivr_nodes=settings.summary.secure_ivr_nodes,
                     keep_original_pii=settings.store.keep_original_pii)
    await asyncio.to_thread(store.start)
    app = create_api(store, token=settings.store.api_token or settings.console.token)
    server, task = await start_uvicorn(app, settings.store.api_host, settings.store.api_port, "CRM API")
    return RunningServer(server, task, store)


async def run_api(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        running = await start_api(settings)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"CRM API on http://{settings.store.api_host}:{settings.store.api_port}/api/calls "
          f"(OpenAPI: /openapi.json, /docs?token=...; bearer token required on all)", file=sys.stderr)
    await stop.wait()
    await running.stop()
    return 0
