"""The shared decode pool: finals before partials, strands in order and never concurrent."""

from __future__ import annotations

import threading
import time

from speech.asr.pool import DecodePool, Priority, Strand


def test_finals_run_before_partials_and_feeds_queued_earlier() -> None:
    pool = DecodePool(1, name="t")
    gate = threading.Event()
    order: list[str] = []
    pool.submit(gate.wait, priority=Priority.FEED)  # occupy the only thread
    time.sleep(0.05)
    futs = [
        pool.submit(order.append, "partial-1", priority=Priority.PARTIAL),
        pool.submit(order.append, "feed", priority=Priority.FEED),
        pool.submit(order.append, "partial-2", priority=Priority.PARTIAL),
        pool.submit(order.append, "final", priority=Priority.FINAL),
    ]
    assert pool.idle == 0
    gate.set()
    for f in futs:
        f.result(timeout=5)
    assert order == ["final", "feed", "partial-1", "partial-2"]
    assert pool.done[Priority.PARTIAL] == 2 and pool.done[Priority.FINAL] == 1
    pool.shutdown()


def test_a_strand_keeps_order_and_never_runs_twice_at_once() -> None:
    pool = DecodePool(4, name="t")
    strand = Strand()
    seen: list[int] = []
    running = [0]
    overlap = [False]
    lock = threading.Lock()

    def task(i: int) -> None:
        with lock:
            running[0] += 1
            overlap[0] |= running[0] > 1
        time.sleep(0.002)
        seen.append(i)
        with lock:
            running[0] -= 1

    futs = [pool.submit(task, i, priority=Priority.FEED, strand=strand) for i in range(30)]
    futs.append(pool.submit(task, 30, priority=Priority.FINAL, strand=strand))
    for f in futs:
        f.result(timeout=10)
    assert seen == list(range(31))  # a final on a strand waits for that strand's earlier audio
    assert not overlap[0]
    pool.shutdown()


def test_errors_reach_the_caller_and_idle_counts_threads() -> None:
    pool = DecodePool(2, name="t")
    assert pool.idle == 2
    fut = pool.submit(lambda: 1 / 0, priority=Priority.FINAL)
    try:
        fut.result(timeout=5)
    except ZeroDivisionError:
        pass
    else:  # pragma: no cover - the assertion below reports it
        raise AssertionError("the exception was swallowed")
    assert pool.submit(lambda: 42, priority=Priority.PARTIAL).result(timeout=5) == 42
    pool.shutdown()


def test_time_is_accounted_to_the_kind_of_decode_that_spent_it() -> None:
    """Workers report where their recognizer time went (finals or partials): a task's running
    time lands on its own priority, whatever thread ran it."""
    pool = DecodePool(2, name="t")
    futs = [pool.submit(time.sleep, 0.3, priority=Priority.PARTIAL),
            pool.submit(time.sleep, 0.02, priority=Priority.FINAL)]
    for f in futs:
        f.result(timeout=5)
    assert pool.busy_s[Priority.PARTIAL] >= 0.3
    assert 0.02 <= pool.busy_s[Priority.FINAL] < 0.3
    assert pool.busy_s[Priority.FEED] == 0.0
    pool.shutdown()


def test_a_decode_is_counted_before_its_caller_sees_the_result() -> None:
    """A worker's stats must hold every decode its pipelines already got: the accounting comes
    first, then the result (a done-callback runs at the moment the result is set)."""
    pool = DecodePool(1, name="t")
    seen: list[tuple[int, float]] = []
    for priority, fn in ((Priority.FINAL, lambda: time.sleep(0.01)), (Priority.PARTIAL, lambda: 1 / 0)):
        fut = pool.submit(fn, priority=priority)
        fut.add_done_callback(lambda _f, p=priority: seen.append((pool.done[p], pool.busy_s[p])))
        try:
            fut.result(timeout=10)
        except ZeroDivisionError:
            pass
    assert [done for done, _ in seen] == [1, 1] and seen[0][1] >= 0.01
    pool.shutdown()
