"""``serve``'s view of its workers' load: the health fields, and the front kept off busy workers.

Each worker's overload governor (``callcenter.overload``) writes its shed level and figures into
its stats file. Here ``serve`` (1) shows them in ``/api/health`` with each worker's memory
(RSS, and USS/PSS: what the process holds alone, and its share of pages shared with others,
such as a model file mapped read-only), and (2) takes a worker that refuses new calls out of
the Kamailio dispatcher (state ``d``, which OPTIONS probing does not undo) and puts it back
when it admits again. Until the front has heard, the worker's own 503 sends the caller on to
the next worker (the front's failure route), so nobody waits on an overloaded worker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import psutil

from telephony.acd.queue_call import cancel_task
from telephony.kamailio import FrontError, Worker

if TYPE_CHECKING:
    from callcenter.serve import Service

log = logging.getLogger(__name__)

POLL_S = 0.5
"""How often ``serve`` reads the workers' load to steer the front."""


def memory_of(pid: int | None) -> dict[str, float]:
    """RSS, USS and PSS of ``pid`` in MiB (empty when it is gone or not readable)."""
    if pid is None:
        return {}
    try:
        info = psutil.Process(pid).memory_full_info()
    except (psutil.Error, OSError):
        return {}
    mib = 2**20
    out = {"rss_mb": round(info.rss / mib, 1), "uss_mb": round(info.uss / mib, 1)}
    pss = getattr(info, "pss", None)
    if pss is not None:
        out["pss_mb"] = round(pss / mib, 1)
    return out


def load_health(svc: Service) -> dict[str, Any]:
    """The capacity plan and each local worker's load and memory, for ``/api/health``."""
    stats = {s.get("index"): s for s in svc.worker_stats()}
    workers = []
    for i, proc in enumerate(svc.workers):
        s = stats.get(i, {})
        load = s.get("load") or {}
        workers.append({
            "index": i,
            "port": svc.worker_ports[i] if i < len(svc.worker_ports) else None,
            "state": load.get("state", "normal"),
            "admitting": load.get("admitting", True),
            "partials": load.get("partials", True),
            "prosody": load.get("prosody", True),
            "behind_s": load.get("behind_s", 0.0),
            "backlog_s": load.get("backlog_s", 0.0),
            "queued": load.get("queued", 0),
            "lateness_s": load.get("lateness_s", 0.0),
            "cpu": load.get("cpu", 0.0),
            "load_changes": load.get("changes", 0),
            "last_change": load.get("last_change", ""),
            "history": load.get("history", []),
            "active_calls": s.get("active_calls", 0),
            "refused": s.get("refused", {}),
            "decode": s.get("decode", {}),
            **memory_of(proc.pid if proc.returncode is None else None),
        })
    capacity: dict[str, Any] = (svc.capacity.to_dict() if svc.capacity is not None
                                else {"workers": len(svc.workers), "cost_source": "sip.workers or one per core"})
    return {"capacity": capacity, "load": workers, "workers_admitting": sum(w["admitting"] for w in workers)}


class FrontAdmission:
    """Keeps the front's dispatcher off workers that refuse new calls (see the module doc)."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.out: set[int] = set()
        """Workers this task took out of dispatch."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="front-admission")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_task(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                await self.sync()
            except Exception:  # steering is an optimization: the workers' 503s still hold
                log.exception("could not steer the front by worker load")

    async def sync(self) -> None:
        """One pass: disable workers that refuse, re-enable those that admit again."""
        svc = self.svc
        front, supervisor = svc.front, svc.supervisor
        if front is None or front.proc is None or supervisor is None:
            return
        stats = {s.get("index"): s for s in await asyncio.to_thread(svc.worker_stats)}
        for health in supervisor.workers:
            i = health.index
            if health.state != "serving":
                self.out.discard(i)  # the supervisor owns a dead or restarting worker's state
                continue
            s = stats.get(i) or {}
            admitting = (s.get("load") or {}).get("admitting", True) or s.get("pid") != health.pid
            if admitting == (i not in self.out):
                continue
            worker = Worker(svc.settings.sip.worker_host, health.port)
            try:
                await front.rpc("dispatcher.set_state", "a" if admitting else "d", "1", worker.uri)
            except FrontError as exc:
                log.warning("front: could not set worker %d %s: %s", i, "active" if admitting else "disabled", exc)
                continue
            if admitting:
                self.out.discard(i)
                log.warning("front: worker %d back in dispatch (load recovered)", i)
            else:
                self.out.add(i)
                log.warning("front: worker %d out of dispatch (overloaded: it refuses new calls)", i)
