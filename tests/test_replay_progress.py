"""The replay batch's progress when stderr is not a terminal (a CI log): a plain line now and
then and always one at the end, with files done, failures and audio hours per wall hour."""

from __future__ import annotations

import io

from callcenter.replay_progress import BatchProgress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_every_interval_and_at_the_end() -> None:
    err, clock = io.StringIO(), Clock()
    with BatchProgress(5, err, jobs=2, interval_s=10.0, clock=clock) as bar:
        for seconds, ok in ((60.0, True), (0.0, False), (120.0, True), (60.0, True), (120.0, True)):
            clock.now += 4.0  # a file every 4 s of wall time
            bar.advance(seconds, ok)
    lines = err.getvalue().splitlines()
    # 12 s after the start (third file), then the last file at 20 s
    assert lines == [
        "progress: 3/5 files, 1 failed, 15.0 audio h per wall h, 2 jobs",
        "progress: 5/5 files, 1 failed, 18.0 audio h per wall h, 2 jobs",
    ]


def test_one_file_prints_no_progress() -> None:
    err = io.StringIO()
    with BatchProgress(1, err, clock=Clock()) as bar:
        bar.advance(10.0, True)
    assert err.getvalue() == ""
    assert bar.stdout(err) is err  # no bar: lines go straight out
