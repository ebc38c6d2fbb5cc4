"""A replay batch on a pool of workers (``callcenter replay --jobs N``): the parent loads the
expectations, hands the files to a backend, and prints each file's lines, verdict and errors in
input order, exactly as the one-process path prints them; files finish in any order and wait
their turn. ``--publish`` is done here, from the parent's one MQTT outbox, file by file as each
one finishes: every event the workers saw is published, each file's events in order.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from callcenter.replay import ReplayResult, report_file
from callcenter.replay_pool import ProcessBackend, ReplayBackend
from callcenter.replay_progress import BatchProgress
from callcenter.replay_worker import ReplayJob, ReplayOutcome, WorkerOptions
from callcenter.settings import Settings
from qa import Expectation, ExpectationError, expectation_for, load_expectation
from speech.events import Event


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def make_backend(
    name: str,
    settings: Settings,
    files: int,
    *,
    jobs: int | None = None,
    store: bool = True,
    as_json: bool = False,
    publish: bool = False,
    ray_address: str | None = None,
) -> ReplayBackend | None:
    """The pool for a batch of ``files``, or None to replay in this process (one file, or
    ``jobs`` 1 on the local backend). Never more workers than files: each loads a model."""
    options = WorkerOptions(settings, store=store, as_json=as_json, collect_events=publish)
    n = max(1, min(jobs or default_jobs(), files))
    if name == "ray":
        from callcenter.replay_ray import RayBackend

        return RayBackend(options, n, address=ray_address)
    if n == 1:
        return None
    return ProcessBackend(options, n)


async def replay_pooled(
    paths: Sequence[Path],
    backend: ReplayBackend,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    as_json: bool = False,
    expect: Path | None = None,
    check: bool = False,
    publish: Callable[[Event], None] | None = None,
    progress: bool = True,
) -> list[ReplayResult]:
    """Replay every file on ``backend``'s workers; results in input order. Raises
    ``ReplayPoolError`` when the pool cannot run at all."""
    out = out or sys.stdout
    err = err or sys.stderr
    ready: dict[int, ReplayOutcome] = {}
    jobs: list[ReplayJob] = []
    for index, path in enumerate(paths):
        try:
            jobs.append(ReplayJob(index, path, _expectation(path, expect, check)))
        except ExpectationError as exc:  # reported in its turn; the file is not replayed
            ready[index] = ReplayOutcome(index, ReplayResult(path=path, error=str(exc)))
    unreadable_expectation = set(ready)
    results: list[ReplayResult] = []
    with BatchProgress(len(paths), err, jobs=backend.jobs, enabled=progress) as bar:
        shown, shown_err = bar.stdout(out), bar.stdout(err)

        def print_ready() -> None:
            while (outcome := ready.pop(len(results), None)) is not None:
                res = outcome.result
                if outcome.index not in unreadable_expectation:
                    if not as_json:
                        shown.write(f"== {res.path}\n")
                    shown.write(outcome.printed)
                report_file(res, shown, shown_err, as_json=as_json)
                shown.flush()
                shown_err.flush()
                results.append(res)

        for _ in ready:
            bar.advance(0.0, ok=False)
        print_ready()
        if jobs:  # else every file's expectation was unreadable
            async with contextlib.aclosing(backend.outcomes(jobs)) as finished:
                async for outcome in finished:
                    if publish is not None:
                        for event in outcome.published:
                            publish(event)
                    ready[outcome.index] = outcome
                    bar.advance(outcome.result.audio_seconds, ok=outcome.result.ok)
                    print_ready()
        print_ready()
    return results


def _expectation(path: Path, expect: Path | None, check: bool) -> Expectation | None:
    exp_path = expect if expect is not None else (expectation_for(path) if check else None)
    if check and exp_path is None:
        raise ExpectationError(f"{path}: no expectation file ({path.stem}.expect.json)")
    return load_expectation(exp_path) if exp_path is not None else None
