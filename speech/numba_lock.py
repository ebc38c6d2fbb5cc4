"""One process at a time where librosa's numba kernels may be compiled into their on-disk cache.

librosa decorates its kernels with numba ``cache=True``: those with declared signatures compile
when librosa is imported, the rest on first use with new argument types, and each writes its
cache files into librosa's package folder. Processes doing that at the same moment (two
workers of a fresh installation, a test process and a worker) corrupted the cache: segfaults in
numba loading a half-written entry, measured in 2 of 9 cold starts of 3 processes, and then in
every later start until the cache was deleted. So ``import librosa`` and every call that may
compile hold an inter-process lock (``fcntl.flock`` on a file beside the system's temp files,
one per librosa installation): two syscalls per call, nothing when uncontended. The lock made
the crash rare, not impossible (1 in 30 cold starts of 3 processes), so ``scripts/setup.sh``
also compiles the cache once after installing (``speech.prosody.precompile``): processes then
only load it (0 crashes in 60).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_lock_file: IO[str] | None = None


def lock_path() -> Path:
    spec = importlib.util.find_spec("librosa")
    origin = spec.origin if spec is not None and spec.origin else "librosa"
    key = hashlib.sha1(str(Path(origin).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"callcenter-numba-{key}.lock"


@contextmanager
def numba_lock() -> Iterator[None]:
    """Hold the installation-wide lock (re-entrant within a process: flock is per open file)."""
    global _lock_file
    if _lock_file is None:
        _lock_file = open(lock_path(), "a")  # noqa: SIM115 - held for the process's life
    fcntl.flock(_lock_file, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(_lock_file, fcntl.LOCK_UN)
