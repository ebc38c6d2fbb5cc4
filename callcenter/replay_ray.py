"""The Ray backend of a replay batch (``callcenter replay --backend ray``), for QA teams whose
recordings outgrow one machine: each worker is a Ray actor holding one ``ReplayWorker`` (one
model, one after-call chain), on a local Ray instance or a cluster (``--ray-address``; every
node then needs this package installed and the recordings and the store reachable at the same
paths or URLs: use PostgreSQL as the store for a cluster).

Ray is an optional extra (``pip install 'callcenter[ray]'``); this module imports it only when
the backend runs.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from callcenter.replay_pool import ReplayPoolError, died
from callcenter.replay_worker import (
    ReplayJob,
    ReplayOutcome,
    ReplayWorker,
    WorkerOptions,
    WorkerReport,
)


class ReplayActor:
    """Ray actor body (async methods: Ray runs them on the actor's own event loop, which also
    runs the after-call chain's background tasks between files)."""

    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.worker: ReplayWorker | None = None

    async def start(self) -> str | None:
        """Load the model and start the chain; the error line when it cannot."""
        try:
            await self._open()
        except Exception as exc:
            return str(exc) or type(exc).__name__
        return None

    async def replay(self, job: ReplayJob) -> ReplayOutcome:
        worker = await self._open()  # again after Ray restarted a crashed actor
        return await worker.replay(job)

    async def close(self) -> WorkerReport | None:
        worker, self.worker = self.worker, None
        return await worker.close() if worker is not None else None

    async def _open(self) -> ReplayWorker:
        if self.worker is None:
            self.worker = await ReplayWorker.open(self.options)
        return self.worker


class RayBackend:
    """``jobs`` actors of one CPU each. Without ``address`` a private local Ray instance with
    ``jobs`` CPUs is started for the batch and shut down after it."""

    def __init__(self, options: WorkerOptions, jobs: int, *, address: str | None = None,
                 max_restarts: int = 2) -> None:
        self.options = options
        self.jobs = max(1, jobs)
        self.address = address
        self.max_restarts = max_restarts

    async def outcomes(self, jobs: Sequence[ReplayJob]) -> AsyncGenerator[ReplayOutcome, None]:
        try:
            import ray
        except ImportError as exc:
            raise ReplayPoolError("--backend ray needs Ray: pip install 'callcenter[ray]'") from exc
        own = not ray.is_initialized()
        if own:  # on the loop's thread, the main one: Ray installs its SIGTERM clean-up there
            ray.init(address=self.address, num_cpus=None if self.address else self.jobs,
                     include_dashboard=False, log_to_driver=True, configure_logging=False)
        actor_cls = ray.remote(num_cpus=1, max_restarts=self.max_restarts, max_task_retries=0)(ReplayActor)
        actors: list[Any] = [actor_cls.remote(self.options) for _ in range(self.jobs)]
        todo = collections.deque(jobs)
        done: asyncio.Queue[ReplayOutcome | BaseException] = asyncio.Queue()

        async def feed(actor: Any) -> None:
            """One actor's loop: take the next file until none is left, then close it."""
            try:
                error = await actor.start.remote()
                if error is not None:
                    raise ReplayPoolError(error)
                while todo:
                    job = todo.popleft()
                    try:
                        done.put_nowait(await actor.replay.remote(job))
                    except ray.exceptions.RayActorError:  # the process died on this file
                        done.put_nowait(died(job, "the replay worker (Ray actor) died"))
                await actor.close.remote()
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
                done.put_nowait(exc)

        feeders = [asyncio.create_task(feed(a), name=f"replay-ray-{i}") for i, a in enumerate(actors)]
        try:
            for _ in range(len(jobs)):
                item = await done.get()
                if isinstance(item, BaseException):
                    if isinstance(item, ReplayPoolError):
                        raise item
                    raise ReplayPoolError(f"Ray backend failed: {type(item).__name__}: {item}") from item
                yield item
            await asyncio.gather(*feeders)  # every actor closed: the batch is stored
            while not done.empty():
                item = done.get_nowait()
                if isinstance(item, BaseException):
                    raise ReplayPoolError(f"Ray backend failed at close: {type(item).__name__}: {item}")
        finally:
            for task in feeders:
                task.cancel()
            await asyncio.gather(*feeders, return_exceptions=True)
            for actor in actors:
                ray.kill(actor)
            if own:
                ray.shutdown()
