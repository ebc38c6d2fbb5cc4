"""Where a replay batch runs: a pool of worker processes on this machine, or Ray actors.

A backend starts ``jobs`` workers (each a ``ReplayWorker``: one model, one after-call chain),
hands them the files one at a time from a shared queue (a long file never holds the others
back) and yields each file's outcome as it finishes, in any order; the caller restores the input
order. At the end every worker closes its after-call chain (store writer flushed), so the batch
is stored when the backend is done. A worker that dies takes only the file it was replaying
with it: that file is reported failed and a new worker takes its place.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import multiprocessing
import signal
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from callcenter.replay import ReplayResult
from callcenter.replay_worker import (
    ReplayJob,
    ReplayOutcome,
    ReplayWorker,
    WorkerOptions,
)


class ReplayPoolError(RuntimeError):
    """The pool cannot run the batch (a worker could not load its model, workers keep dying):
    one line for the user, exit 2."""


class ReplayBackend(Protocol):
    """Runs replay jobs on workers; yields outcomes as they finish, in any order."""

    jobs: int

    def outcomes(self, jobs: Sequence[ReplayJob]) -> AsyncGenerator[ReplayOutcome, None]:
        """An async generator: close it (``contextlib.aclosing``) to stop the workers early."""
        ...


def died(job: ReplayJob, why: str) -> ReplayOutcome:
    """The outcome of a file whose worker went away while replaying it."""
    return ReplayOutcome(job.index, ReplayResult(path=job.path, error=f"{job.path}: {why}"))


# -- local processes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Msg:
    """Worker → parent. ``kind``: ready, failed (payload: the error line), done (ReplayOutcome),
    closed (WorkerReport)."""

    kind: str
    payload: Any = None


def _process_main(options: WorkerOptions, conn: Connection) -> None:
    """A worker process: Ctrl-C is the parent's to handle (it stops the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_serve(options, conn))


async def _serve(options: WorkerOptions, conn: Connection) -> None:
    """Replay the jobs the parent sends, one at a time, until it sends None."""
    try:
        replayer = await ReplayWorker.open(options)
    except Exception as exc:  # model missing, store unreadable: the parent says it once
        conn.send(_Msg("failed", str(exc) or type(exc).__name__))
        return
    conn.send(_Msg("ready"))
    try:
        while (job := await asyncio.to_thread(conn.recv)) is not None:
            outcome = await replayer.replay(job)
            await asyncio.to_thread(conn.send, _Msg("done", outcome))
    except EOFError:  # the parent went away: close what this worker holds all the same
        pass
    finally:
        report = await replayer.close()
        with contextlib.suppress(OSError):
            conn.send(_Msg("closed", report))


@dataclass(slots=True)
class _Worker:
    proc: BaseProcess
    conn: Connection
    job: ReplayJob | None = None
    closed: bool = False


class ProcessBackend:
    """``jobs`` local worker processes, forked from a forkserver that imported the pipeline once:
    not forked from the parent, which already runs threads (store writer, MQTT publisher, the
    progress bar) and an event loop a fork would copy half-way; not spawned, which imports
    everything again in each worker (~4 s of CPU each). Pages of the imported code stay shared.

    Each worker has its own pipe and gets its next file when it hands back the last one: no
    queue or lock is shared, so a worker killed at any moment (the OOM killer) cannot leave one
    held and stall the others."""

    def __init__(self, options: WorkerOptions, jobs: int, *, max_restarts: int | None = None) -> None:
        self.options = options
        self.jobs = max(1, jobs)
        self.max_restarts = self.jobs * 2 if max_restarts is None else max_restarts

    async def outcomes(self, jobs: Sequence[ReplayJob]) -> AsyncGenerator[ReplayOutcome, None]:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        todo = collections.deque(jobs)
        workers: list[_Worker] = []
        restarts = 0

        def start() -> None:
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_process_main, args=(self.options, theirs),
                               name=f"callcenter-replay-{len(workers)}", daemon=True)
            proc.start()
            theirs.close()
            workers.append(_Worker(proc, ours))

        def hand_out(worker: _Worker) -> bool:
            """Send the next file (None: no more, close); False when the worker is gone."""
            job = todo.popleft() if todo else None
            try:
                worker.conn.send(job)
            except OSError:
                if job is not None:
                    todo.appendleft(job)  # never started: the next worker takes it
                worker.job = None
                return False
            worker.job = job
            return True

        try:
            for _ in range(min(self.jobs, len(todo))):
                start()
            while live := [w for w in workers if not w.closed]:
                ready = await asyncio.to_thread(wait, [w.conn for w in live] + [w.proc.sentinel for w in live])
                for worker in live:
                    lost = False
                    if worker.conn in ready:
                        try:
                            msg: _Msg = worker.conn.recv()
                        except EOFError:
                            lost = True
                        else:
                            if msg.kind == "failed":
                                raise ReplayPoolError(msg.payload)
                            if msg.kind == "closed":
                                worker.closed = True
                                continue
                            finished = None
                            if msg.kind == "done":
                                worker.job, finished = None, msg.payload
                            # the next file first, then the caller's work on this one (its
                            # lines, checks, progress): the worker replays meanwhile
                            lost = not hand_out(worker)  # after ready or done
                            if finished is not None:
                                yield finished
                    elif worker.proc.sentinel in ready:
                        lost = True
                    if not lost:
                        continue
                    worker.closed = True
                    worker.proc.join(5.0)
                    if worker.job is not None:
                        why = f"the replay worker process died (exit code {worker.proc.exitcode})"
                        yield died(worker.job, why)
                    if todo:
                        if restarts >= self.max_restarts:
                            raise ReplayPoolError(f"replay workers died {restarts + 1} times; batch stopped")
                        restarts += 1
                        start()
        finally:
            for worker in workers:
                if not worker.closed and worker.proc.is_alive():
                    worker.proc.terminate()  # stopped early: the batch is abandoned
            for worker in workers:
                await asyncio.to_thread(worker.proc.join, 10.0)
                if worker.proc.is_alive():
                    worker.proc.kill()
                worker.conn.close()
