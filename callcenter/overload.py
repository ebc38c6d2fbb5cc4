"""A worker's graceful overload: measure how far behind it is, refuse new calls, shed in order.

Every ``interval_s`` the governor reads how far behind the worker is, in seconds:

* the decode backlog: how long the oldest decode queued in the recognizer's pool (an
  utterance's final, a streaming feed, a partial) has waited for a thread, or how late the
  oldest unfinished final already is beyond ``final_allowance_s`` (its own decode time),
  whichever is more: several workers' pools seldom queue, yet when they share saturated cores
  every decode slows down and the transcripts lag;
* frame lateness: how much later than their own timestamps the call pipelines handled frames,
  beyond each call's usual delay (``speech.load.FrameLateness``);

and the process CPU (informative; a refusal signal only when ``cpu_refuse`` is set). From the
larger of the two it sets the process's :class:`~speech.load.ShedLevel`: new calls are refused
first (the endpoint answers 503 with Retry-After and ``serve`` takes the worker out of the
front's dispatcher), then live partials stop, then tone prosody; finals, detectors, recording
and storage go on. Thresholds sit far below what drops frames (a call's inbox holds 10 s), so
calls in progress keep every frame. Levels change one step at a time: a step up needs
``sustain_samples`` samples in a row over the next threshold, a step down ``recover_hold_s``
under ``recover_ratio`` of the current one (no flapping).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field, model_validator

from speech.asr.base import AsrEngine
from speech.load import ProcessLoad, ShedLevel

log = logging.getLogger(__name__)

HISTORY = 20
"""Level changes a worker's load report keeps."""


class OverloadSettings(BaseModel):
    """When a worker refuses new calls and sheds work (``[overload]``); seconds behind real time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    interval_s: float = Field(0.5, gt=0)
    """How often the worker samples its load."""
    refuse_behind_s: float = Field(1.5, gt=0)
    """Behind this much: new calls get 503 (the front sends them to other workers)."""
    partials_off_behind_s: float = Field(2.5, gt=0)
    """Behind this much: live partial transcripts stop."""
    prosody_off_behind_s: float = Field(4.0, gt=0)
    """Behind this much: tone prosody (pitch analysis) stops; tone from words only."""
    final_allowance_s: float = Field(1.0, ge=0)
    """Age of an unfinished final that is its own decode time, not lag (whisper: 0.05-0.5 s for
    an utterance on a free core; a 30 s one about 1 s)."""
    sustain_samples: int = Field(2, ge=1)
    """Samples in a row over a threshold before stepping up (one slow decode is not overload)."""
    recover_ratio: float = Field(0.5, gt=0, le=1)
    """A level is left once behind stays under this share of its threshold ..."""
    recover_hold_s: float = Field(5.0, ge=0)
    """... for this long; one level per hold."""
    cpu_refuse: float | None = Field(None, gt=0)
    """Process CPU (cores, 1.0 = one full core) from which new calls are refused; None: CPU is
    shown, not acted on (on a shared machine other processes' load is not this worker's)."""
    report_every_s: float = Field(2.0, gt=0)
    """How often the worker's stats file gets fresh load figures besides level changes."""

    @model_validator(mode="after")
    def _ordered(self) -> OverloadSettings:
        if not self.refuse_behind_s <= self.partials_off_behind_s <= self.prosody_off_behind_s:
            raise ValueError("overload: refuse_behind_s <= partials_off_behind_s <= prosody_off_behind_s")
        return self

    @property
    def thresholds(self) -> tuple[float, float, float]:
        """Seconds behind for each level above NORMAL, in order."""
        return (self.refuse_behind_s, self.partials_off_behind_s, self.prosody_off_behind_s)


@dataclass(frozen=True, slots=True)
class LoadSample:
    """One look at the worker's load."""

    backlog_s: float = 0.0
    """Wait of the oldest queued decode, or the oldest unfinished final's lateness beyond its
    allowance, whichever is more (0: nothing waits or lags)."""
    queued: int = 0
    """Decodes waiting for a pool thread."""
    lateness_s: float = 0.0
    """Largest frame lateness since the previous sample."""
    cpu: float = 0.0
    """Process CPU in cores since the previous sample."""

    @property
    def behind_s(self) -> float:
        return max(self.backlog_s, self.lateness_s)


class Ladder:
    """The level policy: pure, clocked by the caller (unit-testable without waiting)."""

    def __init__(self, settings: OverloadSettings) -> None:
        self.settings = settings
        self.level = ShedLevel.NORMAL
        self._above = 0
        self._calm_since: float | None = None

    def update(self, sample: LoadSample, now: float) -> ShedLevel:
        s = self.settings
        behind = sample.behind_s
        target = sum(behind >= t for t in s.thresholds)
        cpu_high = s.cpu_refuse is not None and sample.cpu >= s.cpu_refuse
        if cpu_high:
            target = max(target, int(ShedLevel.REFUSING))
        if target > self.level:
            self._above += 1
            self._calm_since = None
            if self._above >= s.sustain_samples:  # one level at a time: the order always shows
                self.level = ShedLevel(self.level + 1)
                self._above = 0
            return self.level
        self._above = 0
        if self.level == ShedLevel.NORMAL:
            return self.level
        calm = behind < s.recover_ratio * s.thresholds[self.level - 1] and not cpu_high
        if not calm:
            self._calm_since = None
        elif self._calm_since is None:
            self._calm_since = now
        elif now - self._calm_since >= s.recover_hold_s:
            self.level = ShedLevel(self.level - 1)
            self._calm_since = now  # the next step down needs its own calm hold
        return self.level


@dataclass
class LoadReport:
    """What the worker's stats file (and ``/api/health``) shows of its load."""

    level: int = 0
    state: str = ShedLevel.NORMAL.name.lower()
    admitting: bool = True
    partials: bool = True
    prosody: bool = True
    behind_s: float = 0.0
    backlog_s: float = 0.0
    queued: int = 0
    lateness_s: float = 0.0
    cpu: float = 0.0
    rss_mb: float = 0.0
    changes: int = 0
    """Level changes since start (degradations and recoveries)."""
    last_change: str = ""
    """``<from> -> <to>`` of the last change."""
    history: list[str] = field(default_factory=list)
    """The last ``HISTORY`` changes, oldest first, each ``<from> -> <to>``."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LoadGovernor:
    """Samples this worker's load and sets ``load.level``; ``on_change`` hears each change."""

    def __init__(self, settings: OverloadSettings, load: ProcessLoad, engine: AsrEngine | None, *,
                 on_change: Callable[[LoadReport], None] | None = None,
                 on_report: Callable[[LoadReport], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.load = load
        self.engine = engine
        self.on_change = on_change
        self.on_report = on_report
        self.clock = clock
        self.ladder = Ladder(settings)
        self.report = LoadReport()
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # the first call only starts the measurement

    def sample(self) -> LoadSample:
        """Read the signals now (lateness since the previous sample)."""
        backlog_s, queued = 0.0, 0
        if self.engine is not None:
            backlog = self.engine.pool.backlog()
            late = backlog.final_age_s - self.settings.final_allowance_s
            backlog_s, queued = max(backlog.oldest_s, late, 0.0), backlog.queued
        cpu = self._proc.cpu_percent(None) / 100.0
        return LoadSample(backlog_s=backlog_s, queued=queued, lateness_s=self.load.take_lateness(), cpu=cpu)

    def step(self, sample: LoadSample) -> bool:
        """Apply one sample; True when the level changed."""
        before = self.load.level
        level = self.ladder.update(sample, self.clock()) if self.settings.enabled else ShedLevel.NORMAL
        self.load.level = level
        r = self.report
        r.level, r.state = int(level), level.name.lower()
        r.admitting, r.partials, r.prosody = self.load.admitting, self.load.partials, self.load.prosody
        r.behind_s, r.backlog_s, r.queued = round(sample.behind_s, 3), round(sample.backlog_s, 3), sample.queued
        r.lateness_s, r.cpu = round(sample.lateness_s, 3), round(sample.cpu, 3)
        if level == before:
            return False
        r.changes += 1
        r.last_change = f"{before.name.lower()} -> {level.name.lower()}"
        r.history = [*r.history, r.last_change][-HISTORY:]
        # Figures only: no call ids, numbers or transcripts in this line.
        log.warning("load %s: behind %.2f s (decode backlog %.2f s, %d queued; frames late %.2f s), cpu %.2f",
                    r.last_change, sample.behind_s, sample.backlog_s, sample.queued, sample.lateness_s, sample.cpu)
        if self.on_change is not None:
            self.on_change(r)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until ``stop`` is set."""
        next_report = 0.0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.interval_s)
            if stop.is_set():
                return
            try:
                changed = self.step(self.sample())
                now = self.clock()
                if self.on_report is not None and (changed or now >= next_report):
                    self.report.rss_mb = round(self._proc.memory_info().rss / 2**20, 1)
                    self.on_report(self.report)
                    next_report = now + self.settings.report_every_s
            except Exception:  # the governor must never take the worker down
                log.exception("load sampling failed")
