"""Name the calling OS thread (Linux ``prctl(PR_SET_NAME)``), so per-thread CPU can be told apart.

Every thread of a worker is ``python`` in ``/proc/<pid>/task/*/comm`` otherwise: the PJSIP
thread, the conference clock thread that runs the media ports' callbacks, the recognizer's
threads. Benchmarks (``bench_serve``) add up CPU by these names.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_PR_SET_NAME = 15
_libc: ctypes.CDLL | None = None


def name_current_thread(name: str) -> None:
    """Set this thread's name (at most 15 bytes kept); a no-op where prctl is missing."""
    global _libc
    if not sys.platform.startswith("linux"):
        return
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass
