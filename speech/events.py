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
    PARTY_JOINED = "party.joined"
    """A party joined the call's audio (an agent answered and was bridged to the caller)."""
    PARTY_LEFT = "party.left"
    """A party left the call (hung up, transferred away); the call may go on without them."""
    HOLD_STARTED = "hold.started"
    """A party put the call on hold: the caller hears music; hold time is not dead air."""
    HOLD_ENDED = "hold.ended"
    """The hold ended; carries its duration."""
    QUEUE_UPDATE = "queue.update"
    """The call's progress through an ACD queue (``action`` says which step)."""
    AGENT_STATE = "agent.state"
    """An agent's state changed (``call_id`` is the call it concerns, or empty)."""
    SUPERVISION = "supervision"
    """A supervisor began listening to the call, switched to whisper or barge, or left."""
    ASSIST_CUE = "assist.cue"
    """De-escalation cue: the caller turned tense or angry, or said an escalation phrase;
    ``reasons`` says why, ``phrases`` what the agent could say (the playbook)."""
    ASSIST_CUE_OUTCOME = "assist.cue_outcome"
    """What followed a cue: whether the agent acknowledged within the window, and the caller's
    tension after it."""
    RULE_MATCHED = "rule.matched"
    """A live rule's conditions all held: the call is tagged and/or someone is alerted."""
    CHECKLIST = "checklist.update"
    """The script checklist of the call's queue; sent when it starts and when an item ticks."""
    ASSIST_SUGGESTION = "assist.suggestion"
    """Knowledge articles for what the caller just said, best first, with the words that matched."""
    ASSIST_FEEDBACK = "assist.feedback"
    """The agent marked a suggested article helpful or not (added to the call's events at its end)."""
    QA_SCORECARD = "qa.scorecard"
    """The call's scorecard on an evaluation form: sent when an answer changes, final at wrap-up."""


@register
@dataclass(frozen=True, kw_only=True)
class CallStarted(Event):
    type: ClassVar[EventType] = EventType.CALL_STARTED
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.STATE, urgent=True,
        pii={"caller": Pii.ADDRESS, "callee": Pii.ADDRESS}, safe=("source", "started_at", "parties"))
    source: str = "replay"
    """``sip``, ``siprec`` (a PBX's recording session, RFC 7866) or ``replay``."""
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


@register
@dataclass(frozen=True, kw_only=True)
class PartyJoined(Event):
    type: ClassVar[EventType] = EventType.PARTY_JOINED
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.STATE, urgent=True, safe=("agent_id", "queue"))
    agent_id: str = ""
    """The agent's id in the agents directory (``party`` is ``agent``)."""
    queue: str = ""
    """The queue the caller waited in ("" for a direct transfer)."""
    wait_s: float = 0.0
    """How long the caller waited in the queue before this party answered."""
    ring_s: float = 0.0
    """How long this party's phone rang."""

    def render(self) -> str:
        who = f" {self.agent_id}" if self.agent_id else ""
        party = self.party.value if self.party else "party"
        return f"{party}{who} joined after {self.wait_s:.1f} s in {self.queue or 'transfer'}"


@register
@dataclass(frozen=True, kw_only=True)
class PartyLeft(Event):
    type: ClassVar[EventType] = EventType.PARTY_LEFT
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.STATE, urgent=True, safe=("agent_id", "reason"))
    agent_id: str = ""
    reason: str = "hangup"
    """``hangup`` (that party hung up), ``transfer`` (handed the call on) or ``ended`` (the
    other side hung up)."""

    def render(self) -> str:
        who = f" {self.agent_id}" if self.agent_id else ""
        party = self.party.value if self.party else "party"
        return f"{party}{who} left ({self.reason})"


@register
@dataclass(frozen=True, kw_only=True)
class HoldStarted(Event):
    type: ClassVar[EventType] = EventType.HOLD_STARTED
    meta: ClassVar[EventMeta] = EventMeta(category=Category.STATE, urgent=True)
    by: Party = Party.AGENT
    """Who put the call on hold; ``party`` is the same."""

    def render(self) -> str:
        return f"on hold (by {self.by.value})"


@register
@dataclass(frozen=True, kw_only=True)
class HoldEnded(Event):
    type: ClassVar[EventType] = EventType.HOLD_ENDED
    meta: ClassVar[EventMeta] = EventMeta(category=Category.STATE, urgent=True)
    by: Party = Party.AGENT
    start: float = 0.0
    duration: float = 0.0

    def render(self) -> str:
        return f"hold over ({self.duration:.1f} s)"


class QueueAction(StrEnum):
    """What one queue step was (``QueueUpdate.action``)."""

    ENTERED = "entered"
    """The caller joined the queue (``position``)."""
    POSITION = "position"
    """A periodic announcement of position and expected wait."""
    RINGING = "ringing"
    """An agent's phone is ringing for this caller (``agent_id``)."""
    NO_ANSWER = "no_answer"
    """That agent did not answer in time (and was set not ready)."""
    CONNECTED = "connected"
    """An agent answered; the caller left the queue (``wait_s``)."""
    ABANDONED = "abandoned"
    """The caller hung up while waiting (``wait_s``)."""
    OVERFLOW = "overflow"
    """Maximum wait reached: moved to the queue ``target``."""
    CALLBACK = "callback"
    """Maximum wait reached: a callback request was left in the store."""
    TRANSFERRED = "transferred"
    """An agent sent the call to this queue or to another agent (``target``)."""


@register
@dataclass(frozen=True, kw_only=True)
class QueueUpdate(Event):
    type: ClassVar[EventType] = EventType.QUEUE_UPDATE
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.QUEUE, urgent=True, safe=("queue", "agent_id", "target"))
    queue: str = ""
    action: QueueAction = QueueAction.ENTERED
    position: int = 0
    """1 = next in line (0: not waiting)."""
    wait_s: float = 0.0
    """Time in the queue so far."""
    expected_wait_s: float = 0.0
    agent_id: str = ""
    target: str = ""
    """Overflow queue, or transfer target (a queue or ``agent:<id>``)."""

    def render(self) -> str:
        extra = f" #{self.position}" if self.position else ""
        who = f" {self.agent_id}" if self.agent_id else ""
        return f"queue {self.queue}: {self.action}{extra}{who} ({self.wait_s:.0f} s)"


class AgentStatus(StrEnum):
    """An agent's state in the ACD."""

    LOGGED_OUT = "logged_out"
    """Not logged in, or their phone is not registered."""
    READY = "ready"
    """Waiting for a call."""
    RINGING = "ringing"
    """A call is ringing their phone."""
    ON_CALL = "on_call"
    """Talking (or holding) with a caller."""
    WRAP_UP = "wrap_up"
    """After a call, for the configured wrap-up time; then ready again."""
    NOT_READY = "not_ready"
    """Logged in but taking no calls (``reason``: break, no_answer, ...)."""


@register
@dataclass(frozen=True, kw_only=True)
class AgentStateChanged(Event):
    type: ClassVar[EventType] = EventType.AGENT_STATE
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.AGENT, urgent=True, safe=("agent_id", "reason"))
    agent_id: str = ""
    state: AgentStatus = AgentStatus.LOGGED_OUT
    previous: AgentStatus = AgentStatus.LOGGED_OUT
    reason: str = ""
    """Why (``no_answer``, ``break``, ``console``, ``feature_code``, ``registered``...)."""

    def render(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"agent {self.agent_id}: {self.previous} -> {self.state}{why}"


class SupervisorMode(StrEnum):
    """How a supervisor is on a live call (``SupervisionChanged.mode``)."""

    LISTEN = "listen"
    """Hears caller and agent; nobody hears the supervisor."""
    WHISPER = "whisper"
    """Hears both; only the agent hears the supervisor (coaching)."""
    BARGE = "barge"
    """All three talk."""
    LEFT = "left"
    """No longer on the call (hung up, left from the console, or the call ended)."""


@register
@dataclass(frozen=True, kw_only=True)
class SupervisionChanged(Event):
    type: ClassVar[EventType] = EventType.SUPERVISION
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.AGENT, urgent=True, safe=("supervisor_id", "agent_id", "reason"))
    supervisor_id: str = ""
    """Who (their id in the agents directory, where they have ``supervisor: true``)."""
    mode: SupervisorMode = SupervisorMode.LISTEN
    previous: SupervisorMode = SupervisorMode.LEFT
    agent_id: str = ""
    """The agent on the call when it changed ("" on a call without one)."""
    reason: str = ""
    """What changed it (``console``, ``dtmf``, ``hangup``, ``call_ended``) or why it failed
    (``not_registered``, ``no_answer``, ``no_slot``, ``listen_only``)."""
    requested: SupervisorMode | None = None
    """Set only on a failure: the mode that was asked for (``mode`` stays ``previous``)."""

    def render(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        if self.requested is not None:
            return f"supervisor {self.supervisor_id}: {self.requested} refused{why}"
        return f"supervisor {self.supervisor_id}: {self.previous} -> {self.mode}{why}"


@register
@dataclass(frozen=True, kw_only=True)
class AssistCue(Event):
    type: ClassVar[EventType] = EventType.ASSIST_CUE
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.ALERTS, urgent=True, safe=("trigger", "reasons", "phrases"))
    cue: int = 0
    """Number of the cue in the call (1, 2, ...); its ``assist.cue_outcome`` carries it too."""
    trigger: str = "tone"
    """``tone`` (a caller tone alert) or ``phrase`` (an escalation phrase of the playbook)."""
    reasons: tuple[str, ...] = ()
    """Why: the tone alert's reasons, or ``said "<playbook phrase>"``."""
    phrases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Playbook step (acknowledge, validate, take ownership, next step) → suggested phrases."""

    def render(self) -> str:
        return f"CUE {self.cue} ({self.trigger}): " + "; ".join(self.reasons)


@register
@dataclass(frozen=True, kw_only=True)
class AssistCueOutcome(Event):
    type: ClassVar[EventType] = EventType.ASSIST_CUE_OUTCOME
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.ASSIST, urgent=True, safe=("ack_phrase", "labels", "tension"))
    cue: int = 0
    cue_t: float = 0.0
    """Call time of the cue."""
    acknowledged: bool | None = False
    """An agent final began within the window after the cue and matched an empathy phrase;
    None: no agent spoke on the call (an IVR-only call, a caller-only recording)."""
    ack_t: float | None = None
    """When that agent utterance began."""
    ack_phrase: str = ""
    """The playbook phrase it matched (not the agent's words)."""
    scores: tuple[float, ...] = ()
    """The caller's tension scores from the last reading before the cue to the end of the
    trajectory window."""
    labels: tuple[str, ...] = ()
    tension: str = "unknown"
    """``eased``, ``steady``, ``rose`` or ``unknown`` (no caller reading after the cue)."""

    def render(self) -> str:
        ack = (f"acknowledged at {self.ack_t:.1f} s" if self.acknowledged and self.ack_t is not None
               else "no agent to acknowledge" if self.acknowledged is None else "not acknowledged")
        return f"cue {self.cue}: {ack}; tension {self.tension}"


@register
@dataclass(frozen=True, kw_only=True)
class RuleMatched(Event):
    type: ClassVar[EventType] = EventType.RULE_MATCHED
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.ALERTS, urgent=True, safe=("rule", "categories", "message", "notify", "because"))
    rule: str = ""
    """The rule's name in the rules file."""
    categories: tuple[str, ...] = ()
    """Categories the call is tagged with."""
    message: str = ""
    """The alert text from the rules file ("" when the rule only tags)."""
    notify: tuple[str, ...] = ()
    """Who is alerted: ``agent`` and/or ``supervisor``."""
    because: tuple[str, ...] = ()
    """Each condition and the call time it held at (from the rule, never the transcript)."""

    def render(self) -> str:
        tags = f" [{', '.join(self.categories)}]" if self.categories else ""
        return f"RULE {self.rule}{tags}" + (f": {self.message}" if self.message else "")


@register
@dataclass(frozen=True, kw_only=True)
class ChecklistUpdate(Event):
    type: ClassVar[EventType] = EventType.CHECKLIST
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.ASSIST, urgent=True, safe=("queue", "items", "labels", "done", "ticked"))
    queue: str = ""
    """The queue whose checklist applies (``default`` when none is known)."""
    items: tuple[str, ...] = ()
    """Item ids in script order."""
    labels: tuple[str, ...] = ()
    """Their labels, in the same order."""
    done: dict[str, float] = field(default_factory=dict)
    """Item id → call time the agent said it."""
    ticked: str = ""
    """The item this update ticked ("" for the opening list)."""

    def render(self) -> str:
        return f"checklist {self.queue}: {len(self.done)}/{len(self.items)}" + (f" +{self.ticked}" if self.ticked else "")


@register
@dataclass(frozen=True, kw_only=True)
class AssistSuggestion(Event):
    type: ClassVar[EventType] = EventType.ASSIST_SUGGESTION
    meta: ClassVar[EventMeta] = EventMeta(category=Category.ASSIST, safe=("articles", "queue"))
    articles: tuple[dict[str, Any], ...] = ()
    """Best first: ``id``, ``title``, ``score`` (BM25 × queue boost), ``matched`` (the caller's
    words found in the article: knowledge-base vocabulary, never digits) and ``body`` (Markdown,
    for the agent to open)."""
    queue: str = ""
    """The IVR queue that boosted the ranking ("" when none was known)."""
    final_t: float = 0.0
    """Call time of the caller final that prompted it (``t`` is the same on replay)."""

    def render(self) -> str:
        return "KB: " + "; ".join(
            f"{a.get('id')} ({float(a.get('score', 0)):.1f}: {', '.join(a.get('matched', ()))})" for a in self.articles)


@register
@dataclass(frozen=True, kw_only=True)
class AssistFeedback(Event):
    type: ClassVar[EventType] = EventType.ASSIST_FEEDBACK
    meta: ClassVar[EventMeta] = EventMeta(category=Category.ASSIST, safe=("article_id", "title", "agent_id"))
    article_id: str = ""
    title: str = ""
    helpful: bool = True
    agent_id: str = ""
    """Who marked it ("" when the console's token was used)."""

    def render(self) -> str:
        return f"article {self.article_id} {'helpful' if self.helpful else 'not helpful'}"


@register
@dataclass(frozen=True, kw_only=True)
class QaScorecard(Event):
    type: ClassVar[EventType] = EventType.QA_SCORECARD
    meta: ClassVar[EventMeta] = EventMeta(
        category=Category.ASSIST, urgent=True, pii={"scorecard": Pii.TEXT}, safe=("form_id", "changed"))
    form_id: str = ""
    """The evaluation form's id (``qa/forms/<id>.yaml`` or the form file's ``id``)."""
    final: bool = False
    """True for the scorecard of the whole call, stored with it; live ones may still change."""
    score: float | None = None
    """Percent of the applicable points (None: nothing applies yet)."""
    changed: tuple[str, ...] = ()
    """Ids of the questions whose answer changed since the previous scorecard."""
    scorecard: dict[str, Any] = field(default_factory=dict)
    """The scorecard (the dict documented in ``qa/scorecard.py``): answers, why, evidence with the
    words heard (personal data: redacted like transcripts)."""

    def render(self) -> str:
        score = "n/a" if self.score is None else f"{self.score:.0f}%"
        return f"QA {self.form_id}{' final' if self.final else ''}: {score}" + (
            f" ({', '.join(self.changed)})" if self.changed else "")


EVENT_CLASSES: dict[EventType, type[Event]] = {EventType(name): cls for name, cls in registered().items()}
