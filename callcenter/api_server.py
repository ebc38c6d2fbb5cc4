"""Serves the CRM REST API (``summaries.api``) with uvicorn, for ``serve`` and ``callcenter api``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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


@dataclass(frozen=True)
class Https:
    """Certificate and key uvicorn serves HTTPS with; ``hsts``: add Strict-Transport-Security."""

    cert: Path
    key: Path
    hsts: bool = False


HSTS_VALUE = "max-age=31536000"
"""One year; no ``includeSubDomains``: the console may share a name with other services."""


def https_options(settings: Settings) -> Https | None:
    """HTTPS for the console and the CRM API from ``console.tls_cert``/``tls_key`` (both or none)."""
    c = settings.console
    if c.tls_cert is None and c.tls_key is None:
        return None
    if c.tls_cert is None or c.tls_key is None:
        raise RuntimeError("HTTPS needs both console.tls_cert and console.tls_key")
    return Https(Path(c.tls_cert), Path(c.tls_key), c.hsts)


class Hsts:
    """ASGI middleware: ``Strict-Transport-Security`` on every HTTPS response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      (b"strict-transport-security", HSTS_VALUE.encode())]
            await send(message)

        await self.app(scope, receive, send_with_hsts)


async def start_uvicorn(
    app: ASGIApplication | Callable[..., Any] | str, host: str, port: int, what: str,
    *, https: Https | None = None,
) -> tuple[object, asyncio.Task[None]]:
    """Start uvicorn in this loop (with TLS when ``https``); return once it listens (or raise
    with the reason)."""
    import uvicorn

    tls: dict[str, Any] = {}
    if https is not None:
        for path in (https.cert, https.key):
            if not path.is_file():
                raise RuntimeError(f"{what}: HTTPS file {path} not found (make one with `callcenter certs`)")
        tls = {"ssl_certfile": str(https.cert), "ssl_keyfile": str(https.key)}
        if https.hsts:
            app = Hsts(app)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", **tls))
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
    from callcenter.credentials import resolve_secrets
    from callcenter.settings import SettingsError
    from summaries.api import create_api
    from summaries.store import CrmStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        settings = resolve_secrets(settings).settings
    except SettingsError as exc:
        raise RuntimeError(str(exc)) from exc
    # Posted calls are redacted as live ones are: same secure IVR nodes, same originals policy.
    store = CrmStore(settings.store_url, secure_ivr_nodes=settings.summary.secure_ivr_nodes,
                     keep_original_pii=settings.store.keep_original_pii)
    await asyncio.to_thread(store.start)
    app = create_api(store, token=settings.store.api_token or settings.console.token,
                     read_token=settings.store.api_read_token)
    try:
        server, task = await start_uvicorn(app, settings.store.api_host, settings.store.api_port, "CRM API",
                                           https=https_options(settings))
    except BaseException:
        store.stop()
        raise
    return RunningServer(server, task, store)


async def run_api(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    from callcenter.credentials import resolve_secrets, secrets_dir
    from callcenter.settings import SettingsError

    try:
        settings = resolve_secrets(settings).settings
        running = await start_api(settings)
    except (RuntimeError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    web = "https" if settings.console.tls_cert else "http"
    print(f"CRM API on {web}://{settings.store.api_host}:{settings.store.api_port}/api/calls "
          f"(OpenAPI: /openapi.json, /docs?token=...; bearer token required on all: read and write with "
          f"store.api_token, else the console token; read-only with {secrets_dir(settings)}/api_read_token "
          f"unless store.api_read_token is set)", file=sys.stderr)
    await stop.wait()
    await running.stop()
    return 0
