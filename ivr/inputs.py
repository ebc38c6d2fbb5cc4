"""What the IVR session buffers between the pipeline's callbacks and its walk through the flow.

Callbacks (``on_event``) append caller input; the walk consumes it when a node waits. Keys
typed ahead of a prompt stay buffered, so a caller who knows the menu never waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Key:
    """A key press, at call time ``t``."""

    digit: str
    t: float


@dataclass(frozen=True, slots=True)
class Said:
    """A final transcript of the caller, at call time ``t`` (only while a menu listens)."""

    text: str
    t: float


@dataclass(frozen=True, slots=True)
class Playback:
    """The prompt playing now: whether input may cut it short, and whether speech may."""

    barge_in: bool
    speech: bool
