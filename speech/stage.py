"""The stage contract: one detector, frames and events in, events out.

A stage sees every audio frame and every event emitted upstream of it, in call-time order, and
returns the events it produces (pipecat's ``process_frame``, without async: detectors here are
cheap numpy work, ~µs per frame). Slow work (ASR) lives outside the stage chain, in
``speech.asr.stream``. Thresholds come from settings, never literals in code.
"""

from __future__ import annotations

from speech.events import Event
from speech.frames import AudioFrame


class Stage:
    """Base class: override what you need; the default produces nothing."""

    name: str = "stage"

    def process_frame(self, frame: AudioFrame) -> list[Event]:
        """Handle one 20 ms frame of one party."""
        return []

    def process_event(self, event: Event) -> list[Event]:
        """See an event from upstream (VAD, ASR, IVR marks, RFC 4733 DTMF...)."""
        return []

    def finish(self, t: float) -> list[Event]:
        """End of the call at call time ``t``: close anything still open."""
        return []
