"""Talk-over: both parties speaking at once for at least ``min_overlap_s``.

Works on VAD utterances only (SpeechStarted / SpeechEnded of each party), so it costs nothing
per frame. The party whose utterance began second is the one who ``started_by`` the overlap; the
report is emitted once, when the overlap ends (one of the two stops), with its whole interval.
"""

from __future__ import annotations

from dataclasses import dataclass

from speech.events import Event, SpeechEnded, SpeechStarted, TalkOver
from speech.frames import Party
from speech.settings import TalkOverSettings
from speech.stage import Stage


@dataclass(frozen=True, slots=True)
class _Overlap:
    started_by: Party
    interrupted: Party
    start: float


class TalkOverStage(Stage):
    """Pairs overlapping utterances of different parties."""

    name = "talk_over"

    def __init__(self, settings: TalkOverSettings) -> None:
        self.settings = settings
        self._onsets: dict[Party, float] = {}
        """Onset of the utterance each party is in now."""
        self._open: list[_Overlap] = []

    def process_event(self, event: Event) -> list[Event]:
        if event.party is None:
            return []
        if isinstance(event, SpeechStarted):
            self._started(event.party, event.t)
        elif isinstance(event, SpeechEnded):
            return self._ended(event.party, event.t)
        return []

    def finish(self, t: float) -> list[Event]:
        out: list[Event] = []
        for party in list(self._onsets):
            out.extend(self._ended(party, t))
        return out

    def _started(self, party: Party, onset: float) -> None:
        if party in self._onsets:
            return
        for other, other_onset in self._onsets.items():
            if other_onset <= onset:
                self._open.append(_Overlap(started_by=party, interrupted=other, start=onset))
            else:
                self._open.append(_Overlap(started_by=other, interrupted=party, start=other_onset))
        self._onsets[party] = onset

    def _ended(self, party: Party, end: float) -> list[Event]:
        self._onsets.pop(party, None)
        out: list[Event] = []
        still_open: list[_Overlap] = []
        for ov in self._open:
            if party not in (ov.started_by, ov.interrupted):
                still_open.append(ov)
                continue
            duration = end - ov.start
            if duration + 1e-9 >= self.settings.min_overlap_s:
                out.append(
                    TalkOver(
                        t=end,
                        started_by=ov.started_by,
                        interrupted=ov.interrupted,
                        start=ov.start,
                        end=end,
                        duration=duration,
                    )
                )
        self._open = still_open
        return out
