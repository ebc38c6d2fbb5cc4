"""Dead air: nobody speaking and nothing playing for at least the threshold.

Built only from upstream events (VAD utterances of every party, IVR playback marks, DTMF) plus
the frame clock: the frames only tell the stage what time it is, so the alert fires on the first
frame whose end reaches ``silence start + threshold`` instead of waiting for the silence to end.
Prompts and hold music are not dead air: the caller is being served. Neither is a hold
(``HoldStarted`` until ``HoldEnded``): someone chose that silence, and the caller hears music even
when nothing is played through this pipeline. While an agent is bridged, dead air is a stretch in
which neither party speaks. When a party leaves, its open utterance and the hold it held end with
it, and any silence goes on across the leaving (a caller left alone in silence is dead air).
"""

from __future__ import annotations

from speech.events import (
    CallStarted,
    DeadAirEnded,
    DeadAirStarted,
    DtmfDigit,
    Event,
    HoldEnded,
    HoldStarted,
    PartyLeft,
    PlaybackEnded,
    PlaybackStarted,
    SpeechEnded,
    SpeechStarted,
)
from speech.frames import AudioFrame, Party
from speech.settings import DeadAirSettings
from speech.stage import Stage

_EPS = 1e-6
"""Float slack when comparing call times built from frame counts."""


class DeadAirStage(Stage):
    """Tracks active speakers and playbacks; alerts once per silence longer than the threshold."""

    name = "dead_air"

    def __init__(self, settings: DeadAirSettings) -> None:
        self.settings = settings
        self._speakers: set[Party | None] = set()
        self._playbacks = 0
        self._hold_by: Party | None = None
        """Who holds the call; ``None`` when nobody does."""
        self._silence_start: float | None = 0.0
        """When the current silence began; ``None`` while someone speaks or something plays."""
        self._alerted = False

    @property
    def in_dead_air(self) -> bool:
        return self._alerted

    def process_frame(self, frame: AudioFrame) -> list[Event]:
        start = self._silence_start
        if start is None or self._alerted:
            return []
        if frame.end + _EPS < start + self.settings.threshold_s:
            return []
        self._alerted = True
        return [DeadAirStarted(t=frame.end, start=start, threshold=self.settings.threshold_s)]

    def process_event(self, event: Event) -> list[Event]:
        if isinstance(event, SpeechStarted):
            self._speakers.add(event.party)
            return self._activity(event.t)
        if isinstance(event, PlaybackStarted):
            self._playbacks += 1
            return self._activity(event.t)
        if isinstance(event, HoldStarted):
            self._hold_by = event.by
            return self._activity(event.t)
        if isinstance(event, PartyLeft):
            return self._left(event)
        if isinstance(event, DtmfDigit):
            out = self._activity(event.t)
            self._quiet(event.t + event.duration)
            return out
        if isinstance(event, SpeechEnded):
            self._speakers.discard(event.party)
            self._quiet(event.t)
        elif isinstance(event, PlaybackEnded):
            self._playbacks = max(0, self._playbacks - 1)
            self._quiet(event.t)
        elif isinstance(event, HoldEnded):
            self._hold_by = None
            self._quiet(event.t)
        elif isinstance(event, CallStarted):
            self._speakers.clear()
            self._playbacks = 0
            self._hold_by = None
            self._silence_start, self._alerted = event.t, False
        return []

    def finish(self, t: float) -> list[Event]:
        out = self._activity(t)
        self._silence_start = None
        return out

    def _left(self, event: PartyLeft) -> list[Event]:
        """A party left: it no longer speaks (its VAD may never close the utterance) and a hold it
        held ends with it (no HoldEnded follows); the silence, if any, goes on."""
        self._speakers.discard(event.party)
        if event.party is not None and event.party == self._hold_by:
            self._hold_by = None
        self._quiet(event.t)
        return []

    def _activity(self, onset: float) -> list[Event]:
        """Something audible began at ``onset``: end dead air (if alerted) and stop the timer."""
        out: list[Event] = []
        start = self._silence_start
        if self._alerted and start is not None:
            end = max(onset, start)
            out.append(DeadAirEnded(t=end, start=start, end=end, duration=end - start))
        self._alerted = False
        self._silence_start = None
        return out

    def _quiet(self, t: float) -> None:
        """Something audible ended at ``t``: the silence starts if nothing else is going on."""
        if self._speakers or self._playbacks or self._hold_by is not None or self._silence_start is not None:
            return
        self._silence_start = t
