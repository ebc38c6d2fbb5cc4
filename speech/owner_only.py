"""Owner-only files for stores that hold personal data (SQLite databases, outboxes).

Shared by every package that writes such a file (the CRM and ACD stores, the MQTT and webhook
outboxes): the file is created 0600 before SQLite creates it (its WAL and shared-memory files
copy the database's mode), and an existing one is tightened by path.

An existing database is never opened here: closing *any* descriptor of a file drops every POSIX
lock this process holds on it, SQLite's included. A store opened beside live connections in the
same process (a test reading the CRM store while ``serve``'s ACD store runs) lost its WAL locks
that way, and then read a stale snapshot: calls committed by a worker were not seen.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def owner_only_file(path: str | Path | None) -> None:
    """Create ``path`` empty and 0600 if missing, else chmod it 0600; never opens an existing file.

    ``None``, ``:memory:`` and ``file:`` URIs are left alone; a missing folder is left for the
    caller's own open to report; someone else's file is theirs to protect."""
    if path is None or str(path) in ("", ":memory:") or str(path).startswith("file:"):
        return
    p = Path(path)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with contextlib.suppress(PermissionError):
            os.chmod(p, 0o600)  # an older file made under a loose umask is tightened too
        return
    except OSError:
        return  # no such folder: the caller's open reports it
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
    finally:
        os.close(fd)
