"""The one thread that may call pjsua2, and the command queue the event loop feeds it.

PJSIP is built for one thread here (``threadCnt=0``, ``mainThreadOnly``): a dedicated thread
creates the library, then loops: poll SIP and media events for ``POLL_MS``, run the commands
asyncio queued, run the owner's housekeeping. Results and callbacks go back to the event loop
through its ``LoopFeed`` (the same FIFO as the media frames, so their order holds); nothing else
crosses the boundary.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import pjsua2 as pj

from telephony.items import CallFailed, EndpointError
from telephony.loop_feed import feed_for
from telephony.thread_name import name_current_thread

log = logging.getLogger(__name__)

POLL_MS = 10
"""``libHandleEvents`` timeout per loop of the PJSIP thread."""

T = TypeVar("T")


class PjOwner(Protocol):
    """What the thread runs: set up, one poll, housekeeping after each loop, tear down."""

    def init_lib(self) -> None: ...
    def poll(self, timeout_ms: int) -> None: ...
    def after_poll(self) -> None: ...
    def destroy_lib(self) -> None: ...


class PjThread:
    """Runs ``owner`` on its own thread and executes submitted functions there, in order."""

    def __init__(self, owner: PjOwner, name: str) -> None:
        self._owner = owner
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._cmds: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any], bool]] = queue.SimpleQueue()
        self._running = threading.Event()
        self.stopped = False
        """Set once ``stop`` began: new commands fail with ``EndpointError``."""

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def running(self) -> bool:
        return self._running.is_set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "start() first"
        return self._loop

    async def start(self, describe: str) -> None:
        """Start the thread and wait for ``owner.init_lib``; its failure is an EndpointError."""
        self._loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, args=(started, describe), name=self._name, daemon=True)
        self._thread.start()
        try:
            await started
        except BaseException:
            await self.join()
            raise

    async def submit(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the PJSIP thread and return its result (pjsua2 errors as EndpointError)."""
        if self.stopped:
            raise EndpointError("endpoint is stopped")
        return await self._enqueue(fn, final=False)

    async def finish(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` as the last command (shutdown), then let the thread tear down and exit."""
        self.stopped = True
        if self._running.is_set():
            try:
                await self._enqueue(fn, final=True)
            except EndpointError:
                log.warning("endpoint shutdown reported an error", exc_info=True)
        await self.join()

    async def join(self) -> None:
        self._running.clear()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)

    def post(self, fn: Callable[..., object], *args: Any) -> None:
        """Call ``fn(*args)`` on the event loop (from the PJSIP thread), after the frames and
        callbacks posted before it."""
        feed_for(self.loop).post(fn, *args)

    def halt(self) -> None:
        """Leave the loop after the current pass (called on the PJSIP thread)."""
        self._running.clear()

    # ---- PJSIP thread ---------------------------------------------------------------------
    async def _enqueue(self, fn: Callable[[], T], *, final: bool) -> T:
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            raise EndpointError("endpoint is not running")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._cmds.put((fn, fut, final))
        return await fut

    def _reply(self, fut: asyncio.Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
        def settle() -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        self.post(settle)

    def _run(self, started: asyncio.Future[None], describe: str) -> None:
        name_current_thread("pjsip")  # per-thread CPU (benchmarks) tells it from the media clock
        try:
            self._owner.init_lib()
        except Exception as exc:  # noqa: BLE001
            self._reply(started, exc=EndpointError(f"SIP endpoint failed to start on {describe}: {exc}"))
            self._owner.destroy_lib()
            return
        self._running.set()
        self._reply(started)
        while self._running.is_set():
            try:
                self._owner.poll(POLL_MS)
            except Exception:  # noqa: BLE001
                log.exception("libHandleEvents failed")
            self._drain()
            try:
                self._owner.after_poll()
            except Exception:  # noqa: BLE001
                log.exception("endpoint housekeeping failed")
        self._drain()  # fail anything queued after stop
        self._owner.destroy_lib()

    def _drain(self) -> None:
        while True:
            try:
                fn, fut, final = self._cmds.get_nowait()
            except queue.Empty:
                return
            if not self._running.is_set() and not final:
                self._reply(fut, exc=EndpointError("endpoint is stopped"))
                continue
            try:
                self._reply(fut, fn())
            except CallFailed as exc:
                self._reply(fut, exc=exc)
            except pj.Error as exc:
                self._reply(fut, exc=EndpointError(f"{exc.title}: {exc.reason} (status {exc.status})"))
            except Exception as exc:  # noqa: BLE001
                self._reply(fut, exc=EndpointError(f"{type(exc).__name__}: {exc}"))
