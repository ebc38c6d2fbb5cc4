"""The progress of a replay batch: files done of total, failures, and speed in audio hours per
wall hour. One rich bar on stderr when stderr is a terminal; otherwise a plain line now and then
(logs of a CI job or a cron run), so a long batch never runs silent."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, TextIO, cast

if TYPE_CHECKING:  # imported when a terminal shows the bar
    from rich.progress import Progress, TaskID

PLAIN_INTERVAL_S = 10.0
"""Seconds between two plain progress lines; the last file always prints one."""


class BatchProgress:
    """Use as a context manager around the batch; :meth:`advance` once per finished file."""

    def __init__(
        self,
        total: int,
        err: TextIO,
        *,
        jobs: int = 1,
        enabled: bool = True,
        interval_s: float = PLAIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.err = err
        self.jobs = jobs
        self.enabled = enabled and total > 1
        self.interval_s = interval_s
        self.clock = clock
        self.done = 0
        self.failed = 0
        self.audio_s = 0.0
        self._started = clock()
        self._last_line = self._started
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    @property
    def terminal(self) -> bool:
        return self.enabled and self.err.isatty()

    def speed(self) -> float:
        """Audio hours replayed per wall hour so far (the batch's real-time factor)."""
        wall = self.clock() - self._started
        return self.audio_s / wall if wall > 0 else 0.0

    def __enter__(self) -> BatchProgress:
        self._started = self._last_line = self.clock()
        if self.terminal:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            bar = Progress(
                TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                TextColumn("{task.fields[failed]} failed"), TextColumn("{task.fields[speed]}"),
                TimeRemainingColumn(), console=Console(file=self.err),
            )
            bar.start()
            self._task = bar.add_task("replay", total=self.total, failed=0, speed=self._speed_text())
            self._bar = bar
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.stop()

    def stdout(self, out: TextIO) -> TextIO:
        """The stream to print a file's lines to: ``out``, or, when the bar and ``out`` share
        the terminal, a proxy that prints them above the bar instead of through it."""
        if self._bar is None or not out.isatty():
            return out
        from rich.file_proxy import FileProxy

        return cast(TextIO, FileProxy(self._bar.console, out))  # a TextIOBase with out's fileno

    def advance(self, audio_seconds: float, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        self.audio_s += audio_seconds
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=1, failed=self.failed, speed=self._speed_text())
        elif self.enabled:
            now = self.clock()
            if self.done == self.total or now - self._last_line >= self.interval_s:
                self._last_line = now
                self.err.write(f"progress: {self.line()}\n")
                self.err.flush()

    def line(self) -> str:
        """Where the batch stands, in one line."""
        jobs = f", {self.jobs} jobs" if self.jobs > 1 else ""
        return f"{self.done}/{self.total} files, {self.failed} failed, {self._speed_text()}{jobs}"

    def _speed_text(self) -> str:
        return f"{self.speed():.1f} audio h per wall h"
