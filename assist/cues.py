"""De-escalation cues: when the caller turns tense or angry, or says an escalation phrase, the
agent view shows why and what to say (the playbook); then whether the agent acknowledged the
caller within a window, and where the caller's tension went.

Everything is decided on event call times ``t``, never the wall clock, so a replay and a live call
of the same audio give the same cues and outcomes. An outcome is decided once the call clock has
passed the end of both windows plus ``settle_s`` (finals of a live call arrive after their ``t``),
or at the end of the call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from assist.phrases import PhraseMatcher
from assist.playbook import Playbook, load_playbook
from speech.events import (
    AssistCue,
    AssistCueOutcome,
    Event,
    FinalTranscript,
    SpeechStarted,
    ToneAlert,
    ToneUpdate,
)
from speech.frames import AudioFrame, Party
from speech.stage import Stage


class CueSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    playbook: Path | None = None
    """Playbook YAML (default: ``assist/defaults/playbook.yaml``)."""
    ack_window_s: float = Field(15.0, gt=0)
    """An agent utterance beginning this soon after a cue may acknowledge it."""
    trajectory_s: float = Field(30.0, gt=0)
    """The caller's tension is followed this long after a cue."""
    cooldown_s: float = Field(20.0, ge=0)
    """No new cue this soon after the last one (one tense turn often trips both triggers)."""
    tension_delta: float = Field(0.1, gt=0, le=1)
    """A change of tension score at least this large counts as eased or rose."""
    settle_s: float = Field(3.0, ge=0)
    """Wait this long past a window before deciding: a live call's finals arrive late."""
    fuzzy_threshold: float = Field(85.0, ge=50, le=100)
    """Least rapidfuzz ratio (0-100) for escalation and acknowledgement phrases."""


@dataclass
class _Cue:
    n: int
    t: float
    acked_t: float | None = None
    ack_phrase: str = ""


@dataclass
class _Reading:
    t: float
    score: float
    label: str


@dataclass
class CueTracker:
    """The cue logic on events alone (the stage adds the clock); usable on stored events too."""

    settings: CueSettings
    playbook: Playbook
    _open: list[_Cue] = field(default_factory=list, init=False)
    _count: int = field(default=0, init=False)
    _last_t: float | None = field(default=None, init=False)
    _readings: list[_Reading] = field(default_factory=list, init=False)
    _agent_spoke: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self._escalation = PhraseMatcher(self.playbook.escalation_phrases, threshold=s.fuzzy_threshold)
        self._ack = PhraseMatcher(self.playbook.acknowledgements, threshold=s.fuzzy_threshold)

    def on_event(self, event: Event) -> list[Event]:
        caller = event.party in (None, Party.CALLER)
        if event.party is Party.AGENT and isinstance(event, SpeechStarted | FinalTranscript):
            self._agent_spoke = True
        if isinstance(event, ToneAlert) and caller:
            return self._cue(event.t, "tone", (f"tone {event.kind.replace('_', ' ')}: {event.label}", *event.reasons))
        if isinstance(event, ToneUpdate) and caller:
            self._readings.append(_Reading(event.t, event.score, event.label))
        elif isinstance(event, FinalTranscript) and event.text.strip():
            if caller:
                phrase = self._escalation.match(event.text)
                if phrase is not None:
                    return self._cue(event.t, "phrase", (f'said "{phrase}"',))
            else:
                self._agent_said(event)
        return []

    def advance(self, now: float) -> list[Event]:
        """Decide the outcomes whose windows (plus ``settle_s``) are over at call time ``now``."""
        horizon = max(self.settings.ack_window_s, self.settings.trajectory_s) + self.settings.settle_s
        due = [c for c in self._open if now >= c.t + horizon]
        return [self._outcome(c) for c in due]

    def finish(self) -> list[Event]:
        return [self._outcome(c) for c in list(self._open)]

    def _cue(self, t: float, trigger: str, reasons: tuple[str, ...]) -> list[Event]:
        if self._last_t is not None and t - self._last_t < self.settings.cooldown_s:
            return []
        self._count += 1
        self._last_t = t
        self._open.append(_Cue(self._count, t))
        return [AssistCue(t=t, party=Party.CALLER, cue=self._count, trigger=trigger, reasons=reasons,
                          phrases=dict(self.playbook.steps))]

    def _agent_said(self, final: FinalTranscript) -> None:
        start = final.start or final.t
        for cue in self._open:
            if cue.acked_t is None and final.t > cue.t and start <= cue.t + self.settings.ack_window_s:
                phrase = self._ack.match(final.text)
                if phrase is not None:
                    cue.acked_t, cue.ack_phrase = start, phrase

    def _outcome(self, cue: _Cue) -> Event:
        self._open.remove(cue)
        before = [r for r in self._readings if r.t <= cue.t]
        after = [r for r in self._readings if cue.t < r.t <= cue.t + self.settings.trajectory_s]
        path = ([before[-1]] if before else []) + after
        tension = "unknown"
        if after and len(path) > 1:
            change = path[-1].score - path[0].score
            delta = self.settings.tension_delta
            tension = "eased" if change <= -delta else "rose" if change >= delta else "steady"
        acknowledged = True if cue.acked_t is not None else (False if self._agent_spoke else None)
        return AssistCueOutcome(
            t=cue.t, party=Party.AGENT, cue=cue.n, cue_t=cue.t, acknowledged=acknowledged,
            ack_t=cue.acked_t, ack_phrase=cue.ack_phrase, scores=tuple(round(r.score, 3) for r in path),
            labels=tuple(r.label for r in path), tension=tension)


class CueStage(Stage):
    """Runs a :class:`CueTracker` on the call's events; the frames only move its clock."""

    name = "cues"

    def __init__(self, settings: CueSettings, playbook: Playbook | None = None) -> None:
        self.tracker = CueTracker(settings, playbook or load_playbook(settings.playbook))

    def process_frame(self, frame: AudioFrame) -> list[Event]:
        return self.tracker.advance(frame.end)

    def process_event(self, event: Event) -> list[Event]:
        return self.tracker.on_event(event)

    def finish(self, t: float) -> list[Event]:
        return self.tracker.finish()
