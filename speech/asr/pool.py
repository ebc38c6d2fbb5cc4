"""One decode pool per process, shared by every call: a priority queue with ordered strands.

Today's alternative (a thread per party per call) lets 8 calls start 16 decodes on 2 cores, and a
partial can hold up the final somebody is waiting for. Here a fixed number of threads (sized from
settings) take the most urgent work first: ``FINAL`` before ``FEED`` before ``PARTIAL``. A
*strand* keeps one stateful session's calls in order and never concurrent (a streaming
recognizer is not thread-safe); a strand's urgency is that of its most urgent queued task, so a
final is never stuck behind another call's partials, only behind its own earlier audio.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from speech.cpu_pressure import CpuPressure

log = logging.getLogger(__name__)


class Priority(IntEnum):
    """Lower runs first."""

    FINAL = 0
    """End of an utterance: someone (IVR, agent screen) is waiting for it."""
    FEED = 1
    """Audio for a streaming session (its partials come out of it)."""
    PARTIAL = 2
    """A re-decode for a live partial: only worth doing when nothing else waits."""


@dataclass(frozen=True, slots=True)
class Backlog:
    """How far the pool is behind: what a worker's overload governor reads."""

    queued: int
    """Tasks waiting for a thread."""
    running: int
    oldest_s: float
    """How long the oldest queued task has waited for a thread; 0 when none waits. (A long
    decode that runs is not backlog; the work it holds up is.)"""
    final_age_s: float = 0.0
    """Age of the oldest final (or streaming feed) not done yet, queued or running: how late the
    transcript somebody waits for already is. A pool with a thread per core in each of several
    worker processes never queues, yet its decodes slow down together when the cores are
    saturated; this is where that shows."""


class Strand:
    """Tasks of one session: run one at a time, in submission order."""

    def __init__(self) -> None:
        self.tasks: deque[tuple[Priority, Future[Any], Callable[[], Any], int]] = deque()
        """(priority, future, call, submit token) in submission order."""
        self.running = False

    def urgency(self) -> Priority:
        return min(t[0] for t in self.tasks)


class DecodePool:
    """``workers`` daemon threads serving a priority heap of strands. Thread-safe."""

    def __init__(self, workers: int, *, name: str = "asr") -> None:
        self.workers = max(1, workers)
        self.name = name
        self._cv = threading.Condition()
        self._heap: list[tuple[int, int, Strand]] = []
        self._seq = itertools.count()
        self._busy = 0
        self._queued = 0
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self._submitted: dict[int, float] = {}
        """Submit time of each queued task, oldest first (dicts keep insertion order)."""
        self._urgent: dict[int, float] = {}
        """Submit time of each final or feed task not done yet (queued or running), oldest first."""
        self.done = {p: 0 for p in Priority}
        """Tasks completed per priority (for benchmarks and tests)."""
        self.pressure = CpuPressure()
        """The cores' contention across processes: optional work (partials) waits on it."""
        self.busy_s = {p: 0.0 for p in Priority}
        """Seconds pool threads spent running tasks of each priority: where a worker's recognizer
        time goes (finals or partials), in its stats and the capacity benchmark. Wall time, not
        thread CPU: CTranslate2 decodes on its own threads while the pool thread waits."""

    @property
    def idle(self) -> int:
        """Threads with nothing to do right now (queued work counts against them)."""
        with self._cv:
            return max(0, self.workers - self._busy - self._queued)

    def backlog(self) -> Backlog:
        """Queued and running tasks, how long the oldest queued one has waited and how old the
        oldest unfinished final is."""
        with self._cv:
            now = time.monotonic()
            oldest = next(iter(self._submitted.values()), None)
            urgent = next(iter(self._urgent.values()), None)
            return Backlog(self._queued, self._busy,
                           round(now - oldest, 3) if oldest is not None else 0.0,
                           round(now - urgent, 3) if urgent is not None else 0.0)

    def submit(
        self, fn: Callable[..., Any], *args: Any, priority: Priority, strand: Strand | None = None
    ) -> Future[Any]:
        """Run ``fn(*args)`` on a pool thread; tasks of one ``strand`` run in order, one at a time."""
        fut: Future[Any] = Future()
        with self._cv:
            if self._stopped:
                raise RuntimeError(f"decode pool {self.name} is shut down")
            if not self._threads:
                self._start()
            s = strand or Strand()
            token = next(self._seq)
            self._submitted[token] = time.monotonic()
            if priority < Priority.PARTIAL:
                self._urgent[token] = self._submitted[token]
            s.tasks.append((priority, fut, lambda: fn(*args), token))
            self._queued += 1
            if not s.running:
                self._push(s)
            self._cv.notify()
        return fut

    def shutdown(self) -> None:
        """Stop taking work; threads exit when the queue is empty. Idempotent."""
        with self._cv:
            self._stopped = True
            self._cv.notify_all()

    # -- internals (hold self._cv) -----------------------------------------------------------

    def _start(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"{self.name}-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def _push(self, strand: Strand) -> None:
        heapq.heappush(self._heap, (int(strand.urgency()), next(self._seq), strand))

    def _take(self) -> Strand | None:
        while True:
            while self._heap:
                _, _, strand = heapq.heappop(self._heap)
                if strand.running or not strand.tasks:
                    continue  # a stale entry: the strand is served or was re-pushed
                strand.running = True
                return strand
            if self._stopped:
                return None
            self._cv.wait()

    def _work(self) -> None:
        while True:
            with self._cv:
                strand = self._take()
                if strand is None:
                    return
                priority, fut, call, token = strand.tasks.popleft()
                self._submitted.pop(token, None)
                self._queued -= 1
                self._busy += 1
            t0 = time.monotonic()
            running = result = error = None
            try:
                if running := fut.set_running_or_notify_cancel():
                    try:
                        result = call()
                    except BaseException as exc:  # handed to the caller through the future
                        error = exc
            finally:
                with self._cv:
                    self._busy -= 1
                    self._urgent.pop(token, None)
                    self.done[priority] += 1
                    self.busy_s[priority] += time.monotonic() - t0
                    strand.running = False
                    if strand.tasks:
                        self._push(strand)
                        self._cv.notify()
            # Only once it is counted: whoever awaits the decode then sees it in ``done``/``busy_s``.
            if running:
                if error is not None:
                    fut.set_exception(error)
                else:
                    fut.set_result(result)
