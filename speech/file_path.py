"""Where a problem is inside a settings-like file (an IVR flow, a QA expectation, an assist
playbook): the path of keys and list indexes, and how error messages print it."""

from __future__ import annotations

from collections.abc import Sequence

PathPart = str | int
"""One step of a path inside a file: a mapping key or a list index."""


def dotted(path: Sequence[PathPart]) -> str:
    """``("nodes", "main_menu", "choices", 2, "goto")`` → ``nodes.main_menu.choices[2].goto``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
