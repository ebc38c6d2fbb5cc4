"""The one event vocabulary of a call.

Every stage turns frames into these; every sink (MQTT, console, CRM) consumes them. Each event
serializes to a flat JSON object ``{"schema": 1, "type": "...", "call_id": ..., "t": ..., ...}``
documented in docs/events.md. ``t`` is seconds on the call's clock (virtual in replay), so replayed
and live calls produce the same stream.

An event class describes itself (pipecat's frames, livekit's event enums): its ``meta``
(``speech.event_base.EventMeta``) names its MQTT category topic, whether it is urgent and which
fields may hold personal data of what kind; ``render()`` is its line on a terminal. Sinks read
these, so adding an event is this one class (and its generated doc). ``register`` refuses a class
whose text-like fields are declared neither personal nor safe.

Urgent events are control and alerts: sinks deliver them at QoS 1 and queues never drop them.
Audio may be dropped under load; events never.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from speech.event_base import SCHEMA_VERSION as SCHEMA_VERSION
from speech.event_base import Category, EventMeta, EventTypeBase, Pii, register, registered
from speech.event_base import Event as Event
from speech.event_base import Word as Word
from speech.frames import Party


class EventType(EventTypeBase):
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


@register
@dataclass(frozen=True, kw_only=True)
class CallStarted(Event):
    type: ClassVar[EventType] = EventType.CALL_STARTED
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.STATE, urgent=True,
        pii={"caller": Pii.ADDRESS, "callee": Pii.ADDRESS}, safe=("source", "started_at", "parties"))
    source: str = "replay"
    """``sip`` or ``replay``."""
    caller: str = ""
    """Who called: the SIP URI (the file name in replay)."""
    callee: str = ""
    """The address called."""
    started_at: str = ""
    """Wall-clock ISO 8601 time the call began (UTC)."""
    parties: tuple[str, ...] = ("caller",)

    def render(self) -> str:
        return f"call started ({self.source})"


@register
@dataclass(frozen=True, kw_only=True)
class CallEnded(Event):
    type: ClassVar[EventType] = EventType.CALL_ENDED
    meta: ClassVar[EventMeta] = EventMeta(category=Category.STATE, urgent=True, safe=("reason",))
    reason: str = "hangup"
    """``hangup``, ``end_of_recording`` or a SIP status and reason."""
    duration: float = 0.0

    def render(self) -> str:
        return f"call ended: {self.reason}, {self.duration:.1f} s"


@register
@dataclass(frozen=True, kw_only=True)
class SpeechStarted(Event):
    type: ClassVar[EventType] = EventType.SPEECH_STARTED
    meta: ClassVar[EventMeta] = EventMeta()

    def render(self) -> None:
        return None


@register
@dataclass(frozen=True, kw_only=True)
class SpeechEnded(Event):
    type: ClassVar[EventType] = EventType.SPEECH_ENDED
    meta: ClassVar[EventMeta] = EventMeta()
    start: float = 0.0
    duration: float = 0.0

    def render(self) -> None:
        return None


@register
@dataclass(frozen=True, kw_only=True)
class PartialTranscript(Event):
    type: ClassVar[EventType] = EventType.TRANSCRIPT_PARTIAL
    meta: ClassVar[EventMeta] = EventMeta(category=Category.TRANSCRIPT, pii={"text": Pii.TEXT})
    text: str = ""
    """The hypothesis so far."""
    start: float = 0.0

    def render(self) -> None:
        return None


@register
@dataclass(frozen=True, kw_only=True)
class FinalTranscript(Event):
    type: ClassVar[EventType] = EventType.TRANSCRIPT_FINAL
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.TRANSCRIPT, urgent=True, pii={"text": Pii.TEXT, "words": Pii.WORDS}, safe=("engine",))
    text: str = ""
    """What was said."""
    words: tuple[Word, ...] = ()
    """The recognized words with their call times and confidence."""
    confidence: float = 0.0
    start: float = 0.0
    end: float = 0.0
    engine: str = ""
    """The recognizer that heard it."""

    def render(self) -> str | None:
        who = self.party.value if self.party else "-"
        return f"{who}: {self.text!r}" if self.text else None


@register
@dataclass(frozen=True, kw_only=True)
class DeadAirStarted(Event):
    type: ClassVar[EventType] = EventType.DEAD_AIR_STARTED
    meta: ClassVar[EventMeta] = EventMeta(category=Category.ALERTS, urgent=True)
    start: float = 0.0
    threshold: float = 0.0

    def render(self) -> str:
        return f"DEAD AIR since {self.start:.2f} s (threshold {self.threshold:.1f} s)"


@register
@dataclass(frozen=True, kw_only=True)
class DeadAirEnded(Event):
    type: ClassVar[EventType] = EventType.DEAD_AIR_ENDED
    meta: ClassVar[EventMeta] = EventMeta(category=Category.ALERTS, urgent=True)
    start: float = 0.0
    end: float = 0.0
    duration: float = 0.0

    def render(self) -> str:
        return f"dead air over: {self.start:.2f}-{self.end:.2f} s ({self.duration:.1f} s)"


@register
@dataclass(frozen=True, kw_only=True)
class ToneUpdate(Event):
    type: ClassVar[EventType] = EventType.TONE_UPDATE
    meta: ClassVar[EventMeta] = EventMeta(category=Category.TONE, safe=("label", "signals"))
    label: str = "neutral"
    """calm, neutral, tense or angry."""
    score: float = 0.0
    """Tension in [0, 1]."""
    trend: float = 0.0
    """Slope of the score over recent utterances (per utterance)."""
    signals: dict[str, float] = field(default_factory=dict)
    """Signal name → value (prosody and lexicon measures)."""
    start: float = 0.0
    end: float = 0.0

    def render(self) -> str:
        return f"tone {self.label} ({self.score:.2f}, trend {self.trend:+.2f})"


@register
@dataclass(frozen=True, kw_only=True)
class ToneAlert(Event):
    type: ClassVar[EventType] = EventType.TONE_ALERT
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.ALERTS, urgent=True, safe=("kind", "label", "reasons"))
    kind: str = "rising_tension"
    """``rising_tension`` or ``angry``."""
    label: str = ""
    score: float = 0.0
    reasons: tuple[str, ...] = ()
    """Human-readable signals that drove the alert (fixed templates and lexicon phrases)."""

    def render(self) -> str:
        return f"TONE ALERT {self.kind}: {self.label} ({self.score:.2f}) — " + "; ".join(self.reasons)


@register
@dataclass(frozen=True, kw_only=True)
class DtmfDigit(Event):
    type: ClassVar[EventType] = EventType.DTMF
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.DTMF, urgent=True, pii={"digit": Pii.DIGITS}, safe=("source",))
    digit: str = ""
    """``0``-``9``, ``*``, ``#`` or ``A``-``D``; ``X`` once masked."""
    source: str = "inband"
    """``rfc4733``, ``sip_info`` or ``inband``."""
    duration: float = 0.0

    def render(self) -> str:
        return f"DTMF {self.digit} ({self.source})"


@register
@dataclass(frozen=True, kw_only=True)
class TalkOver(Event):
    type: ClassVar[EventType] = EventType.TALK_OVER
    meta: ClassVar[EventMeta] = EventMeta(category=Category.ALERTS, urgent=True)
    started_by: Party = Party.CALLER
    """The party that started talking while the other was speaking."""
    interrupted: Party = Party.AGENT
    start: float = 0.0
    end: float = 0.0
    duration: float = 0.0

    def render(self) -> str:
        return f"talk-over by {self.started_by.value}: {self.start:.2f}-{self.end:.2f} s"


@register
@dataclass(frozen=True, kw_only=True)
class PlaybackStarted(Event):
    type: ClassVar[EventType] = EventType.PLAYBACK_STARTED
    meta: ClassVar[EventMeta] = EventMeta(category=Category.IVR, urgent=True, safe=("kind", "name"))
    kind: str = "prompt"
    """``prompt`` or ``hold``."""
    name: str = ""
    """The prompt's name in the IVR flow, or who put the call on hold."""

    def render(self) -> str:
        return f"playing {self.kind} {self.name}"


@register
@dataclass(frozen=True, kw_only=True)
class PlaybackEnded(Event):
    type: ClassVar[EventType] = EventType.PLAYBACK_ENDED
    meta: ClassVar[EventMeta] = EventMeta(category=Category.IVR, urgent=True, safe=("kind", "name"))
    kind: str = "prompt"
    name: str = ""
    barged_in: bool = False

    def render(self) -> str:
        return f"{self.kind} {self.name} {'barged in' if self.barged_in else 'done'}"


class IvrAction(StrEnum):
    """What one IVR step did (``IvrStep.action``); JSON carries the value."""

    ENTER = "enter"
    """Entered a node (``detail.kind``)."""
    CHOICE = "choice"
    """A menu choice was taken (``by`` dtmf or speech, ``choice``, ``goto``)."""
    NO_MATCH = "no_match"
    """Input matched no choice, or digits were rejected."""
    TIMEOUT = "timeout"
    """No input within the node's ``timeout_s``."""
    RETRY = "retry"
    """The node prompts again (``attempt`` of ``of``)."""
    FALLBACK = "fallback"
    """Retries used up or a transfer failed: on to ``goto`` (none: hang up)."""
    COLLECT = "collect"
    """Digits collected (secure ones by count only)."""
    ROUTE = "route"
    """Handed to a queue."""
    TRANSFER = "transfer"
    """Blind transfer (SIP REFER) to ``uri``."""
    HANGUP = "hangup"
    """The call ended in the IVR (``by`` ivr or caller)."""


@register
@dataclass(frozen=True, kw_only=True)
class IvrStep(Event):
    type: ClassVar[EventType] = EventType.IVR_STEP
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.IVR, urgent=True, pii={"detail": Pii.DETAIL}, safe=("node", "action"))
    node: str = ""
    """The node's id in the IVR flow."""
    action: IvrAction = IvrAction.ENTER
    detail: dict[str, Any] = field(default_factory=dict)
    """What the step saw or did (``by``, ``choice``, ``digits``, ``queue``, ``attempt``...)."""

    def render(self) -> str:
        return f"IVR {self.node}: {self.action}"


@register
@dataclass(frozen=True, kw_only=True)
class SummaryReady(Event):
    type: ClassVar[EventType] = EventType.SUMMARY
    meta: ClassVar[EventMeta] = EventMeta(category=Category.SUMMARY, urgent=True, safe=("summary",))
    summary: dict[str, Any] = field(default_factory=dict)
    """The summary, built from the already redacted events."""

    def render(self) -> None:
        return None


EVENT_CLASSES: dict[EventType, type[Event]] = {EventType(name): cls for name, cls in registered().items()}
