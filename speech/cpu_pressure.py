"""How contended the machine's cores are, from Linux pressure stall information (PSI).

``some avg10`` in ``cpu.pressure`` is the share of the last ~10 s during which at least one
runnable task waited for a core. Load average and per-process CPU cannot say that: several worker
processes each see a thread of their own decode pool idle while together they oversubscribe the
cores. The cgroup's file is read when the process runs in one (a container's own contention),
else the machine's (``/proc/pressure/cpu``); where neither exists (not Linux, PSI off) there is no
reading and nothing waits on it.
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
    for line in text.splitlines():
        if line.startswith("some "):
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "avg10":
                    try:
                        return float(value)
                    except ValueError:
                        return None
    return None


class CpuPressure:
    """The cores' recent contention in percent, read at most every ``max_age_s`` (a stat and a
    small read; callers ask on every frame that might start optional work)."""

    def __init__(self, path: Path | None = None, *, max_age_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path if path is not None else pressure_file()
        self.max_age_s = max_age_s
        self._clock = clock
        self._at = float("-inf")
        self._value: float | None = None

    def percent(self) -> float | None:
        """``some avg10``; None when there is no PSI to read."""
        if self.path is None:
            return None
        now = self._clock()
        if now - self._at >= self.max_age_s:
            self._at = now
            try:
                self._value = some_avg10(self.path.read_text())
            except OSError:
                self._value = None
        return self._value
