"""``serve`` keeps its workers (and the SIP front) running, and no call is lost without a trace.

When a worker process dies (``kill -9``, a pjlib assertion): the death is logged, the worker is
taken out of the dispatcher at once (OPTIONS probing would notice within a second or two), the
front BYEs the callers of its calls (Kamailio's dialog module: nobody sits in a dead call), its
stats file is marked ``dead``, every call left in its spool (``call_spool``) is stored with what
was persisted so far and ``end_reason=worker_lost``, and a new worker is started on the same
port after a backoff that grows while it keeps dying. It rejoins the dispatcher once it answers
OPTIONS. :meth:`Supervisor.health` is what the console's ``/api/health`` serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callcenter.call_spool import WORKER_LOST, LostCall, lost_calls
from callcenter.worker import call_record_path, worker_name
from telephony.kamailio import FrontError, Worker, _udp_options_ok, reap_group

if TYPE_CHECKING:
    from callcenter.aftercall import AfterCall
    from callcenter.serve import Service

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Delay before the n-th restart in a row; a worker that served ``HEALTHY_AFTER_S`` starts over."""
HEALTHY_AFTER_S = 60.0
READY_TIMEOUT_S = 60.0
"""How long a restarted worker may take to answer OPTIONS (it loads its speech model first)."""


@dataclass
class WorkerHealth:
    index: int
    port: int
    pid: int | None
    state: str = "serving"
    """``starting``, ``serving``, ``dead`` (waiting to restart) or ``stopped``."""
    restarts: int = 0
    last_exit: int | None = None
    """The return code of the last death (negative: killed by that signal)."""
    calls_lost: int = 0
    """Calls that were live on it when it died (stored with ``end_reason=worker_lost``)."""
    started_at: float = 0.0


class Supervisor:
    """Watches ``svc.workers`` (replacing dead ones in place) and ``svc.front``."""

    def __init__(self, svc: Service, spawn: Callable[[int], Awaitable[asyncio.subprocess.Process]]) -> None:
        self.svc = svc
        self.spawn = spawn
        now = time.monotonic()
        self.workers = [WorkerHealth(i, port, proc.pid, started_at=now)
                        for i, (proc, port) in enumerate(zip(svc.workers, svc.worker_ports, strict=True))]
        self.front_restarts = 0
        self.stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._after: AfterCall | None = None

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._watch(i), name=f"watch-worker{i}") for i in range(len(self.workers))]
        if self.svc.front is not None:
            self._tasks.append(asyncio.create_task(self._watch_front(), name="watch-front"))

    async def stop(self) -> None:
        """Stop watching (before ``serve`` stops the workers on purpose); idempotent."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._after is not None:
            await self._after.stop()
            self._after = None

    def _stopped(self) -> bool:
        """Read anew after each await (``stop`` may have run meanwhile)."""
        return self.stopping

    def health(self) -> dict[str, Any]:
        """Service health: ``ok`` when every worker serves, ``degraded`` otherwise."""
        serving = sum(w.state == "serving" for w in self.workers)
        front = self.svc.front
        front_up = front is None or (front.proc is not None and front.proc.returncode is None)
        return {
            "status": "ok" if serving == len(self.workers) and front_up else "degraded",
            "workers_serving": serving,
            "capacity_calls": serving * (self.svc.calls_per_worker or self.svc.settings.sip.max_calls),
            "front": "none" if front is None else ("running" if front_up else "restarting"),
            "front_restarts": self.front_restarts,
            "workers": [asdict(w) for w in self.workers],
        }

    # -- workers --------------------------------------------------------------------------------

    async def _watch(self, i: int) -> None:
        streak = 0
        while not self.stopping:
            proc = self.svc.workers[i]
            rc = await proc.wait()
            if self._stopped():
                return
            health = self.workers[i]
            if time.monotonic() - health.started_at > HEALTHY_AFTER_S:
                streak = 0
            delay = RESTART_BACKOFF_S[min(streak, len(RESTART_BACKOFF_S) - 1)]
            streak += 1
            await self._on_death(i, proc.pid, rc, delay)
            await asyncio.sleep(delay)
            if self._stopped():
                return
            await self._restart(i)

    async def _on_death(self, i: int, pid: int, rc: int, delay: float) -> None:
        health = self.workers[i]
        health.state, health.last_exit, health.pid = "dead", rc, None
        worker = Worker(self.svc.settings.sip.worker_host, health.port)
        front = self.svc.front
        ended: list[str] = []
        if front is not None and front.proc is not None:
            try:
                await front.set_worker_active(worker, False)
                ended = await front.end_worker_dialogs(worker)
            except FrontError as exc:
                log.warning("front could not drop worker %d: %s", i, exc)
        await asyncio.to_thread(_mark_dead, self.svc.settings.data_dir, i, pid, rc)
        lost = await asyncio.to_thread(lost_calls, self.svc.settings.data_dir, i)
        await self._free_agents(i, [call.call_id for call in lost])
        health.calls_lost += len(lost)
        log.error("worker %d (pid %d) died (exit %s): %d live call(s) lost, %d caller(s) sent BYE; "
                  "restarting in %.1f s", i, pid, rc, len(lost), len(ended), delay)
        for call in lost:
            try:
                await self._store_lost(call)
            except Exception:  # one bad spool must not keep the worker down
                log.exception("could not store a call lost with worker %d", i)

    async def _free_agents(self, i: int, live_calls: list[str]) -> None:
        """The dead worker's callers left its queues and the agents it rang, bridged or recorded
        (``live_calls``: its spool's) are free (their legs died with it): the shared ACD store
        must not keep them busy."""
        from telephony.acd.store import AcdStore

        store = AcdStore(self.svc.settings.store_url)
        try:
            changes = await asyncio.to_thread(store.release_worker, worker_name(self.svc.settings, i), live_calls)
        except Exception:  # noqa: BLE001 - the store may be down; the restart must go on
            log.warning("could not release worker %d's agents in the ACD store", i, exc_info=True)
            return
        finally:
            store.close()
        if changes:
            log.warning("worker %d's %d agent(s) set ready again", i, len(changes))

    async def _store_lost(self, call: LostCall) -> None:
        data_dir = self.svc.settings.data_dir
        record_path = call_record_path(data_dir, call.call_id)
        if not record_path.exists():  # else the worker finished it just before dying
            stored = False
            after = await self._after_call()
            recording = call.meta.get("recording")
            try:
                await after.complete(call.call_id, call.ended_events(), recording=recording,
                                     frames_dropped=0)
                stored = True
            finally:
                await asyncio.to_thread(_write_lost_record, record_path, call, stored)
        with contextlib.suppress(FileNotFoundError):
            call.path.unlink()

    async def _after_call(self) -> AfterCall:
        if self._after is None:
            from callcenter.aftercall import AfterCall

            after = AfterCall(self.svc.settings)
            await after.start()
            self._after = after
        return self._after

    async def _restart(self, i: int) -> None:
        health = self.workers[i]
        proc = await self.spawn(i)
        self.svc.workers[i] = proc
        health.pid, health.state, health.started_at = proc.pid, "starting", time.monotonic()
        health.restarts += 1
        host = self.svc.settings.sip.worker_host
        deadline = time.monotonic() + READY_TIMEOUT_S
        while proc.returncode is None and time.monotonic() < deadline:
            if await asyncio.to_thread(_udp_options_ok, host, health.port):
                break
            await asyncio.sleep(0.2)
        if proc.returncode is not None:
            return  # died while starting: _watch sees it and backs off further
        front = self.svc.front
        if front is not None and front.proc is not None:
            with contextlib.suppress(FrontError):
                await front.set_worker_active(Worker(host, health.port), True)
        health.state = "serving"
        log.warning("worker %d answering again on port %d (pid %d, restart %d)", i, health.port, proc.pid,
                    health.restarts)

    # -- the front ------------------------------------------------------------------------------

    async def _watch_front(self) -> None:
        front = self.svc.front
        streak = 0
        while not self.stopping and front is not None and front.proc is not None:
            started = time.monotonic()
            rc = await front.proc.wait()
            reap_group(front.proc.pid)  # its forked workers outlive a killed main process
            if self._stopped():
                return
            if time.monotonic() - started > HEALTHY_AFTER_S:
                streak = 0
            delay = RESTART_BACKOFF_S[min(streak, len(RESTART_BACKOFF_S) - 1)]
            streak += 1
            log.error("SIP front (kamailio) exited with %s; restarting in %.1f s", rc, delay)
            await asyncio.sleep(delay)
            front.proc = None
            try:
                await front.start()
                self.front_restarts += 1
            except FrontError as exc:
                log.error("SIP front did not restart: %s", exc)
                return


def _mark_dead(data_dir: Path, index: int, pid: int, rc: int) -> None:
    """The stats file must not show a dead pid as serving."""
    path = Path(data_dir) / "workers" / f"worker{index}.json"
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError):
        stats = {"index": index}
    if stats.get("pid") not in (None, pid):
        return  # already the new worker's
    stats.update(pid=pid, state="dead", stopped=True, active_calls=0, endpoint_calls=0, exit_code=rc)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stats))
    os.replace(tmp, path)


def _write_lost_record(path: Path, call: LostCall, stored: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "call_id": call.call_id,
        "worker": call.meta.get("worker"),
        "frames_dropped": 0,
        "frames_received": 0,
        "recording": call.meta.get("recording"),
        "ivr": None,
        "end_reason": WORKER_LOST,
        "stored": stored,
        "events_recovered": len(call.events),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
