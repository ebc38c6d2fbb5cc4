"""How events look on a terminal: one readable line each, or one JSON object each."""

from __future__ import annotations

import json
from typing import TextIO

from speech.events import (
    CallEnded,
    CallStarted,
    DeadAirEnded,
    DeadAirStarted,
    DtmfDigit,
    Event,
    FinalTranscript,
    IvrStep,
    PartialTranscript,
    PlaybackEnded,
    PlaybackStarted,
    SpeechEnded,
    SpeechStarted,
    SummaryReady,
    TalkOver,
    ToneAlert,
    ToneUpdate,
)


def describe(event: Event) -> str | None:
    """A short human line, or None for events too chatty for a terminal."""
    who = event.party.value if event.party else "-"
    match event:
        case CallStarted():
            return f"call started ({event.source})"
        case CallEnded():
            return f"call ended: {event.reason}, {event.duration:.1f} s"
        case SpeechStarted() | SpeechEnded() | PartialTranscript():
            return None
        case FinalTranscript():
            return f"{who}: {event.text!r}" if event.text else None
        case DeadAirStarted():
            return f"DEAD AIR since {event.start:.2f} s (threshold {event.threshold:.1f} s)"
        case DeadAirEnded():
            return f"dead air over: {event.start:.2f}-{event.end:.2f} s ({event.duration:.1f} s)"
        case ToneUpdate():
            return f"tone {event.label} ({event.score:.2f}, trend {event.trend:+.2f})"
        case ToneAlert():
            return f"TONE ALERT {event.kind}: {event.label} ({event.score:.2f}) — " + "; ".join(event.reasons)
        case DtmfDigit():
            return f"DTMF {event.digit} ({event.source})"
        case TalkOver():
            return f"talk-over by {event.started_by.value}: {event.start:.2f}-{event.end:.2f} s"
        case PlaybackStarted():
            return f"playing {event.kind} {event.name}"
        case PlaybackEnded():
            return f"{event.kind} {event.name} {'barged in' if event.barged_in else 'done'}"
        case IvrStep():
            return f"IVR {event.node}: {event.action}"
        case SummaryReady():
            return None
    return event.type.value


class EventPrinter:
    """A pipeline sink that prints events as they happen."""

    def __init__(self, out: TextIO, *, as_json: bool = False, label: str = "") -> None:
        self.out = out
        self.as_json = as_json
        self.label = label

    def __call__(self, event: Event) -> None:
        if self.as_json:
            data = event.to_dict()
            if self.label:
                data["file"] = self.label
            self.out.write(json.dumps(data, ensure_ascii=False) + "\n")
            return
        line = describe(event)
        if line is not None:
            self.out.write(f"{event.t:8.2f}  {line}\n")
        self.out.flush()
