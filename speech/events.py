"""The one event vocabulary of a call.

Every stage turns frames into these; every sink (MQTT, console, CRM) consumes them. Each event
serializes to a flat JSON object ``{"schema": 1, "type": "...", "call_id": ..., "t": ..., ...}``
documented in docs/events.md. ``t`` is seconds on the call's clock (virtual in replay), so replayed
and live calls produce the same stream.

Urgent events (``URGENT``) are control and alerts: sinks deliver them at QoS 1 and queues never
drop them. Audio may be dropped under load; events never.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from speech.frames import Party

SCHEMA_VERSION = 1


class EventType(str, Enum):
    """Names of events as they appear in JSON (``type``) and MQTT topics."""

    CALL_STARTED = "call.started"
    """A call began (answered SIP call or a replayed recording)."""
    CALL_ENDED = "call.ended"
    """The call ended; no audio follows."""
    SPEECH_STARTED = "speech.started"
    """VAD found the start of an utterance of one party (``t`` is the speech onset)."""
    SPEECH_ENDED = "speech.ended"
    """VAD found the end of that utterance (after hangover)."""
    TRANSCRIPT_PARTIAL = "transcript.partial"
    """An interim hypothesis of the utterance in progress; may change."""
    TRANSCRIPT_FINAL = "transcript.final"
    """The final text of an utterance, with word timings and confidence."""
    DEAD_AIR_STARTED = "dead_air.started"
    """Nobody has spoken for the threshold: fired at the crossing, ``start`` says when it began."""
    DEAD_AIR_ENDED = "dead_air.ended"
    """Someone spoke (or a prompt began) after dead air; carries the whole interval."""
    TONE_UPDATE = "tone.update"
    """Tension score and label of one utterance, with the signals behind it."""
    TONE_ALERT = "tone.alert"
    """Rising tension or anger: an agent should look; ``reasons`` explains why."""
    DTMF = "dtmf"
    """A key press, from RFC 4733, SIP INFO or in-band tones."""
    TALK_OVER = "talk_over"
    """Both parties spoke at once for at least the minimum overlap."""
    PLAYBACK_STARTED = "playback.started"
    """The IVR began playing a prompt or hold music: not dead air, not caller speech."""
    PLAYBACK_ENDED = "playback.ended"
    """That playback finished or was barged in on."""
    IVR_STEP = "ivr.step"
    """The IVR entered a node, took a choice, timed out, retried or routed."""
    SUMMARY = "summary"
    """The after-call summary, once the call has ended."""


@dataclass(frozen=True, slots=True)
class Word:
    """One recognized word; ``start``/``end`` in call seconds, ``conf`` in [0, 1]."""

    word: str
    start: float
    end: float
    conf: float = 1.0


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of all events. ``t`` is when it happened on the call clock, in seconds."""

    type: ClassVar[EventType]
    urgent: ClassVar[bool] = False
    call_id: str = ""
    t: float = 0.0
    party: Party | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with ``schema`` and ``type`` first."""
        out: dict[str, Any] = {"schema": SCHEMA_VERSION, "type": self.type.value}
        for f in dataclasses.fields(self):
            out[f.name] = _jsonable(getattr(self, f.name))
        return out

    def with_call_id(self, call_id: str) -> Event:
        return dataclasses.replace(self, call_id=call_id)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Event:
        """Rebuild an event from ``to_dict`` output; unknown keys are ignored (forward compat)."""
        try:
            cls = _REGISTRY[EventType(data["type"])]
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown event type: {data.get('type')!r}") from exc
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.name == "party" and value is not None:
                value = Party(value)
            elif f.name in ("started_by", "interrupted") and value is not None:
                value = Party(value)
            elif f.name == "words":
                value = tuple(Word(**w) for w in value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Word):
        return {"word": value.word, "start": value.start, "end": value.end, "conf": value.conf}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 4)
    return value


_REGISTRY: dict[EventType, type[Event]] = {}


def _register(cls: type[Event]) -> type[Event]:
    _REGISTRY[cls.type] = cls
    return cls


@_register
@dataclass(frozen=True, kw_only=True)
class CallStarted(Event):
    type: ClassVar[EventType] = EventType.CALL_STARTED
    urgent: ClassVar[bool] = True
    source: str = "replay"
    """``sip`` or ``replay``."""
    caller: str = ""
    callee: str = ""
    started_at: str = ""
    """Wall-clock ISO 8601 time the call began (UTC)."""
    parties: tuple[str, ...] = ("caller",)


@_register
@dataclass(frozen=True, kw_only=True)
class CallEnded(Event):
    type: ClassVar[EventType] = EventType.CALL_ENDED
    urgent: ClassVar[bool] = True
    reason: str = "hangup"
    duration: float = 0.0


@_register
@dataclass(frozen=True, kw_only=True)
class SpeechStarted(Event):
    type: ClassVar[EventType] = EventType.SPEECH_STARTED


@_register
@dataclass(frozen=True, kw_only=True)
class SpeechEnded(Event):
    type: ClassVar[EventType] = EventType.SPEECH_ENDED
    start: float = 0.0
    duration: float = 0.0


@_register
@dataclass(frozen=True, kw_only=True)
class PartialTranscript(Event):
    type: ClassVar[EventType] = EventType.TRANSCRIPT_PARTIAL
    text: str = ""
    start: float = 0.0


@_register
@dataclass(frozen=True, kw_only=True)
class FinalTranscript(Event):
    type: ClassVar[EventType] = EventType.TRANSCRIPT_FINAL
    urgent: ClassVar[bool] = True
    text: str = ""
    words: tuple[Word, ...] = ()
    confidence: float = 0.0
    start: float = 0.0
    end: float = 0.0
    engine: str = ""


@_register
@dataclass(frozen=True, kw_only=True)
class DeadAirStarted(Event):
    type: ClassVar[EventType] = EventType.DEAD_AIR_STARTED
    urgent: ClassVar[bool] = True
    start: float = 0.0
    threshold: float = 0.0


@_register
@dataclass(frozen=True, kw_only=True)
class DeadAirEnded(Event):
    type: ClassVar[EventType] = EventType.DEAD_AIR_ENDED
    urgent: ClassVar[bool] = True
    start: float = 0.0
    end: float = 0.0
    duration: float = 0.0


@_register
@dataclass(frozen=True, kw_only=True)
class ToneUpdate(Event):
    type: ClassVar[EventType] = EventType.TONE_UPDATE
    label: str = "neutral"
    """calm, neutral, tense or angry."""
    score: float = 0.0
    """Tension in [0, 1]."""
    trend: float = 0.0
    """Slope of the score over recent utterances (per utterance)."""
    signals: dict[str, float] = field(default_factory=dict)
    start: float = 0.0
    end: float = 0.0


@_register
@dataclass(frozen=True, kw_only=True)
class ToneAlert(Event):
    type: ClassVar[EventType] = EventType.TONE_ALERT
    urgent: ClassVar[bool] = True
    kind: str = "rising_tension"
    """``rising_tension`` or ``angry``."""
    label: str = ""
    score: float = 0.0
    reasons: tuple[str, ...] = ()
    """Human-readable signals that drove the alert."""


@_register
@dataclass(frozen=True, kw_only=True)
class DtmfDigit(Event):
    type: ClassVar[EventType] = EventType.DTMF
    urgent: ClassVar[bool] = True
    digit: str = ""
    source: str = "inband"
    """``rfc4733``, ``sip_info`` or ``inband``."""
    duration: float = 0.0


@_register
@dataclass(frozen=True, kw_only=True)
class TalkOver(Event):
    type: ClassVar[EventType] = EventType.TALK_OVER
    urgent: ClassVar[bool] = True
    started_by: Party = Party.CALLER
    """The party that started talking while the other was speaking."""
    interrupted: Party = Party.AGENT
    start: float = 0.0
    end: float = 0.0
    duration: float = 0.0


@_register
@dataclass(frozen=True, kw_only=True)
class PlaybackStarted(Event):
    type: ClassVar[EventType] = EventType.PLAYBACK_STARTED
    urgent: ClassVar[bool] = True
    kind: str = "prompt"
    """``prompt`` or ``hold``."""
    name: str = ""


@_register
@dataclass(frozen=True, kw_only=True)
class PlaybackEnded(Event):
    type: ClassVar[EventType] = EventType.PLAYBACK_ENDED
    urgent: ClassVar[bool] = True
    kind: str = "prompt"
    name: str = ""
    barged_in: bool = False


@_register
@dataclass(frozen=True, kw_only=True)
class IvrStep(Event):
    type: ClassVar[EventType] = EventType.IVR_STEP
    urgent: ClassVar[bool] = True
    node: str = ""
    action: str = ""
    """``enter``, ``choice``, ``no_match``, ``timeout``, ``retry``, ``fallback``, ``collect``,
    ``route``, ``transfer`` or ``hangup``."""
    detail: dict[str, Any] = field(default_factory=dict)


@_register
@dataclass(frozen=True, kw_only=True)
class SummaryReady(Event):
    type: ClassVar[EventType] = EventType.SUMMARY
    urgent: ClassVar[bool] = True
    summary: dict[str, Any] = field(default_factory=dict)


EVENT_CLASSES: dict[EventType, type[Event]] = dict(_REGISTRY)
