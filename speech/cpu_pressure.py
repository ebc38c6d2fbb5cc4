"""How contended the machine's cores are, from Linux pressure stall information (PSI).

``cpu.pressure``'s ``some`` line gives the time during which at least one runnable task waited
for a core (``total``, and ``avg10``: its share of the last ~10 s). Load average and per-process
CPU cannot say that: several worker processes each see a thread of their own decode pool idle
while together they oversubscribe the cores. The cgroup's file is read when the process runs in
one (a container's own contention), else the machine's (``/proc/pressure/cpu``); where neither
exists (not Linux, PSI off) there is no reading and nothing waits on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

PROC_PRESSURE = Path("/proc/pressure/cpu")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def pressure_file() -> Path | None:
    """This process's cgroup v2 ``cpu.pressure``, else the machine's; None without PSI."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        if line.startswith("0::"):  # cgroup v2 (a hybrid host lists v1 controllers too)
            own = CGROUP_ROOT / line[3:].lstrip("/") / "cpu.pressure"
            if own.is_file():
                return own
    return PROC_PRESSURE if PROC_PRESSURE.is_file() else None


def some_avg10(text: str) -> float | None:
    """The ``some`` line's ``avg10`` (percent) of a PSI file's text."""
    return _some_field(text, "avg10")


def some_total(text: str) -> float | None:
    """The ``some`` line's ``total``: microseconds some task has waited, since boot."""
    return _some_field(text, "total")


def _some_field(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("some "):
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == name:
                    try:
                        return float(value)
                    except ValueError:
                        return None
    return None


class CpuPressure:
    """The cores' recent contention in percent, read at most every ``max_age_s`` (a stat and a
    small read; callers ask on every frame that might start optional work).

    The figure is the stall time (``total``) accrued between two readings over the time between
    them: ``avg10`` trails a burst of calls by seconds, long enough for the optional work it is
    meant to hold back to pile up. The first reading, with no earlier one, is ``avg10``."""

    def __init__(self, path: Path | None = None, *, max_age_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path if path is not None else pressure_file()
        self.max_age_s = max_age_s
        self._clock = clock
        self._at = float("-inf")
        self._total: float | None = None
        self._value: float | None = None

    def percent(self) -> float | None:
        """Recent ``some`` pressure; None when there is no PSI to read."""
        if self.path is None:
            return None
        now = self._clock()
        if now - self._at >= self.max_age_s:
            try:
                text = self.path.read_text()
            except OSError:
                self._at, self._total, self._value = now, None, None
                return None
            total = some_total(text)
            if total is not None and self._total is not None and now > self._at:
                stalled_s = max(0.0, total - self._total) / 1e6
                self._value = min(100.0, 100.0 * stalled_s / (now - self._at))
            else:
                self._value = some_avg10(text)
            self._at, self._total = now, total
        return self._value
