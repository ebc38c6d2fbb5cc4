"""One replay worker: a process's recognizer, after-call chain and event loop, serving many files.

Every pool backend (local processes, Ray actors) runs this same object, so a file replayed in a
pool is summarized, stored and checked exactly as in the one-process path (``replay_file``). Only
what would be printed or published while it plays is kept and handed back with the result, for
the parent to print in input order and to publish from its one MQTT outbox.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from callcenter.aftercall import AfterCall
from callcenter.render import EventPrinter
from callcenter.replay import ReplayResult, replay_file
from callcenter.settings import Settings
from qa import Expectation
from speech.asr.base import AsrEngine
from speech.events import Event


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What every worker of one batch shares (pickled once per worker)."""

    settings: Settings
    store: bool = True
    """Write after-call records to the CRM store (``--no-store`` turns it off)."""
    as_json: bool = False
    collect_events: bool = False
    """Hand back the redacted live events, for the parent's ``--publish``."""


@dataclass(frozen=True, slots=True)
class ReplayJob:
    """One file of the batch; ``index`` is its place in the input order."""

    index: int
    path: Path
    expectation: Expectation | None = None


@dataclass(slots=True)
class ReplayOutcome:
    """A replayed file as the parent needs it: the result without its event list (it can be
    large), the lines the one-process path would have printed live, the events to publish."""

    index: int
    result: ReplayResult
    printed: str = ""
    published: list[Event] = field(default_factory=list)
    worker: str = ""


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """A worker's end: how many files it replayed (the after-call chain's own warning says when
    call records still wait in the spool for the database)."""

    worker: str
    files: int


class ReplayWorker:
    """Loads the model once, then replays one file at a time. Open with :meth:`open` on the
    event loop that will run every :meth:`replay`, and :meth:`close` on the same loop."""

    def __init__(self, options: WorkerOptions, engine: AsrEngine | None, after: AfterCall) -> None:
        self.options = options
        self.engine = engine
        self.after = after
        self.name = f"pid {os.getpid()}"
        self.files = 0

    @classmethod
    async def open(cls, options: WorkerOptions) -> ReplayWorker:
        """Load the recognizer off the loop, start the after-call chain. Raises ``AsrError``."""
        from callcenter.wiring import prepare_process

        engine = await asyncio.to_thread(prepare_process, options.settings)
        after = AfterCall(options.settings, store=options.store)
        try:
            await after.start()
        except BaseException:
            if engine is not None:
                engine.close()
            raise
        return cls(options, engine, after)

    async def replay(self, job: ReplayJob) -> ReplayOutcome:
        """Replay one file; any failure becomes that file's error, so the batch goes on."""
        buf = io.StringIO()
        printer = EventPrinter(buf, as_json=self.options.as_json, label=str(job.path))
        published: list[Event] = []
        sinks: list[Callable[[Event], None]] = [printer]
        if self.options.collect_events:
            sinks.append(published.append)
        self.files += 1
        try:
            res = await replay_file(job.path, self.options.settings, self.engine, sinks=sinks,
                                    after_call=self.after, expectation=job.expectation)
        except Exception as exc:  # a bug or a library error on this file: report it, go on
            res = ReplayResult(path=job.path, error=f"{job.path}: replay failed ({type(exc).__name__}: {exc})")
        return ReplayOutcome(job.index, replace(res, events=[]), buf.getvalue(), published, self.name)

    async def close(self) -> WorkerReport:
        """Flush the store writer and webhook outbox, free the model."""
        try:
            await self.after.stop()
        finally:
            if self.engine is not None:
                self.engine.close()
                self.engine = None
        return WorkerReport(self.name, self.files)
