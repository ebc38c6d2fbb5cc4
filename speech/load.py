"""A process's load as the speech side sees it, and what it switches off when it falls behind.

One ``ProcessLoad`` per process (made by the composition root, handed to every call's stages and
pipeline like the recognizer). Pipelines report how late they handle each frame against the
frame's own timestamp; stages read ``shed`` to know what to skip. The governor that decides
(``callcenter.overload``) lives outside this package: it also refuses new calls at the endpoint.

The degradation order is fixed (:class:`ShedLevel`): first new calls are refused, then live
partial transcripts stop, then tone prosody (pitch analysis on the event loop) stops and tone
comes from the words alone. Finals, detectors, recording and storage are never shed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum


class ShedLevel(IntEnum):
    """How much a process has switched off, in the order it is switched off. Each level keeps
    the ones below it."""

    NORMAL = 0
    """Everything on; new calls taken."""
    REFUSING = 1
    """New calls refused (503 with Retry-After; the front stops sending them here)."""
    NO_PARTIALS = 2
    """Live partial transcripts off: no re-decodes (batch engines) and none published."""
    NO_PROSODY = 3
    """Tone prosody off: tone is scored from the words only."""


@dataclass
class ProcessLoad:
    """The process's shared load state: what is shed now, and the frame lateness seen lately."""

    level: ShedLevel = ShedLevel.NORMAL
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _late_max: float = field(default=0.0, repr=False)

    @property
    def admitting(self) -> bool:
        return self.level < ShedLevel.REFUSING

    @property
    def partials(self) -> bool:
        """Whether live partials may be decoded and published now."""
        return self.level < ShedLevel.NO_PARTIALS

    @property
    def prosody(self) -> bool:
        """Whether tone prosody (pitch) may be analyzed now."""
        return self.level < ShedLevel.NO_PROSODY

    def report_lateness(self, seconds: float) -> None:
        """A pipeline handled a frame ``seconds`` later than its timestamp said (beyond the call's
        usual delay)."""
        if seconds > self._late_max:
            self._late_max = seconds

    def take_lateness(self) -> float:
        """The largest lateness reported since the last call (the governor samples this)."""
        late, self._late_max = self._late_max, 0.0
        return late

    def lateness_meter(self) -> FrameLateness:
        """A meter for one call's pipeline that reports here."""
        return FrameLateness(self.clock, self.report_lateness)


class FrameLateness:
    """How late one call's frames are handled, against their own timestamps.

    A frame's timestamp counts call audio (20 ms per frame), so ``now - timestamp`` is constant
    while the call keeps up; its smallest value over the call is the call's normal delay (when it
    started, network jitter buffer), and how far a frame is above it is how far behind the
    pipeline is. Frames dropped before the pipeline leave gaps that only lower the floor.
    """

    __slots__ = ("_clock", "_floor", "_report", "last")

    def __init__(self, clock: Callable[[], float], report: Callable[[float], None]) -> None:
        self._clock = clock
        self._report = report
        self._floor: float | None = None
        self.last = 0.0

    def observe(self, frame_end: float) -> None:
        offset = self._clock() - frame_end
        if self._floor is None or offset < self._floor:
            self._floor = offset
        self.last = offset - self._floor
        self._report(self.last)
