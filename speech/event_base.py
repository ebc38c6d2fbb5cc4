"""The machinery under the event vocabulary (``speech.events``): the base class, its JSON form,
the registry, and what every event class declares about itself.

Every sink reads the declarations instead of keeping its own table per event type: the MQTT
layout (``live.topics``: category topic, QoS by urgency), the terminal printer
(``callcenter.render``: the event's own ``render()``), the redactor (``summaries.redact``: a rule
per kind of personal data) and the generated schema (``speech.events_doc`` → docs/events.md).

Redaction is deny-by-default: each text-like field (``str``, tuples, dicts, words, anything the
check cannot prove is a number, a flag or an enum) must be declared personal, with its kind, or
safe. ``redaction_coverage`` lists what is missing, ``register`` refuses a class with gaps, and
the redactor treats an undeclared text-like field as free text (``Pii.TEXT``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Literal, TypeVar

from speech.frames import Party

SCHEMA_VERSION = 1


class EventTypeBase(str, Enum):
    """Base of ``speech.events.EventType`` (an enum with members cannot be subclassed, one
    without can): lets the base ``Event`` name its type before the vocabulary exists."""


class Category(str, Enum):
    """The MQTT category topic an event goes to besides ``events`` (the lossless stream of all)."""

    STATE = "state"
    """The call's lifecycle (started, ended)."""
    TRANSCRIPT = "transcript"
    """Partial and final transcripts."""
    TONE = "tone"
    """Tension updates per utterance."""
    ALERTS = "alerts"
    """What an agent or supervisor should look at now."""
    DTMF = "dtmf"
    """Key presses."""
    IVR = "ivr"
    """The IVR's path and its prompts."""
    SUMMARY = "summary"
    """The after-call summary."""
    QUEUE = "queue"
    """The call's way through an ACD queue (entered, position, ringing, connected, abandoned)."""
    AGENT = "agent"
    """Agent state changes (ready, ringing, on call, wrap-up, not ready, logged out)."""
    ASSIST = "assist"
    """Help for the agent during the call: cue outcomes, the script checklist, suggestions."""


class Pii(str, Enum):
    """Kinds of personal data a field may hold; ``summaries.redact`` has one rule for each."""

    TEXT = "text"
    """Free text (also tuples or dicts of it): card numbers, national ids, IBANs, emails and phone
    numbers become tags such as ``[CARD]``; while the IVR collects secure input, every digit run."""
    WORDS = "words"
    """Recognized words with timings: redacted on the joined words; the words of a redacted span
    merge into one tagged word that keeps the span's timing."""
    DIGITS = "digits"
    """Keypad digits: ``X`` while the IVR collects secure input, and for every key of a run that
    types a card number (Luhn-valid, 13-19 digits)."""
    DETAIL = "detail"
    """A key/value dict of IVR input: in a secure node digits and input values become ``X``;
    elsewhere card numbers do."""
    ADDRESS = "address"
    """A party's address (SIP URI or caller number): kept, because calls are filed and searched
    by caller; never written to logs."""


COMMON_SAFE = frozenset({"call_id"})
"""Fields of every event that hold no personal data: ``call_id`` is our id of the call (a SIP
Call-ID or ``replay-…``), not the caller's number. ``t`` and ``party`` are not text."""


@dataclass(frozen=True)
class EventMeta:
    """Declared once per event class (``meta: ClassVar[EventMeta] = EventMeta(...)``)."""

    category: Category | None = None
    """MQTT category topic; None: only the ``events`` stream (docs/mqtt.md)."""
    urgent: bool = False
    """Control events and alerts: QoS 1 on MQTT, never dropped from a queue."""
    pii: Mapping[str, Pii] = field(default_factory=dict)
    """Field name → the kind of personal data it may hold."""
    safe: tuple[str, ...] = ()
    """Text-like fields that hold no personal data (fixed vocabularies, names of our own things)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pii", types.MappingProxyType(dict(self.pii)))


class UndeclaredFieldError(TypeError):
    """An event class has text-like fields it declares neither personal nor safe."""


_PLAIN: tuple[type, ...] = (bool, int, float, complex, type(None))
_SEQUENCES: tuple[Any, ...] = (tuple, list, set, frozenset)


def text_like(annotation: object) -> bool:
    """Whether a field of this type can carry text. Unknown types count as text (deny by default)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return False  # a fixed vocabulary written in the code
    if origin is typing.Union or origin is types.UnionType:
        return any(text_like(a) for a in args)
    if origin in _SEQUENCES:
        return not args or any(text_like(a) for a in args if a is not Ellipsis)
    if origin is not None:
        return True  # dict, Mapping and other generics
    if isinstance(annotation, type):
        return not (issubclass(annotation, Enum) or issubclass(annotation, _PLAIN))
    return True


def meta_of(cls: type) -> EventMeta:
    """The class's declarations (its own or inherited ``meta``)."""
    meta = getattr(cls, "meta", None)
    if not isinstance(meta, EventMeta):
        raise TypeError(f"{cls.__name__}.meta is not an EventMeta")
    return meta


_TYPES: dict[type, dict[str, object]] = {}


def _field_types(cls: type) -> dict[str, object]:
    """Field name → resolved annotation (cached); one that cannot be resolved maps to ``object``,
    which counts as text."""
    found = _TYPES.get(cls)
    if found is None:
        try:
            hints = typing.get_type_hints(cls)
        except (NameError, TypeError):
            hints = {}
        found = _TYPES[cls] = {f.name: hints.get(f.name, object) for f in dataclasses.fields(cls)}
    return found


def undeclared_fields(cls: type) -> list[str]:
    """Text-like fields of ``cls`` declared neither personal (``meta.pii``) nor ``meta.safe``."""
    meta = meta_of(cls)
    return [
        name
        for name, annotation in _field_types(cls).items()
        if name not in COMMON_SAFE and name not in meta.pii and name not in meta.safe and text_like(annotation)
    ]


def redaction_coverage(cls: type) -> list[str]:
    """What is wrong with the class's personal-data declarations; empty when it is covered."""
    meta = meta_of(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    problems = [
        f"{cls.__name__}.{name}: text-like field declared neither personal (meta.pii) nor safe (meta.safe)"
        for name in undeclared_fields(cls)
    ]
    problems += [f"{cls.__name__}.{n}: declared but not a field" for n in sorted((set(meta.pii) | set(meta.safe)) - names)]
    problems += [f"{cls.__name__}.{n}: declared both personal and safe" for n in sorted(set(meta.pii) & set(meta.safe))]
    return problems


_PLANS: dict[type, tuple[tuple[str, Pii], ...]] = {}


def redaction_plan(cls: type) -> tuple[tuple[str, Pii], ...]:
    """The fields the redactor must look at, with their kind; undeclared text-like ones as TEXT."""
    plan = _PLANS.get(cls)
    if plan is None:
        declared = [(n, kind) for n, kind in meta_of(cls).pii.items() if n in _field_types(cls)]
        plan = _PLANS[cls] = (*declared, *((n, Pii.TEXT) for n in undeclared_fields(cls)))
    return plan


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

    type: ClassVar[EventTypeBase]
    meta: ClassVar[EventMeta] = EventMeta()
    call_id: str = ""
    t: float = 0.0
    party: Party | None = None

    @property
    def urgent(self) -> bool:
        """``meta.urgent``, on the instance."""
        return self.meta.urgent

    def render(self) -> str | None:
        """One line for a terminal (``callcenter replay``), or None when too chatty to print."""
        return str(self.type.value)

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
            cls = _REGISTRY[data["type"]]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"unknown event type: {data.get('type')!r}") from exc
        decoders = _decoders(cls)
        return cls(**{name: decode(data[name]) for name, decode in decoders.items() if name in data})


_DECODERS: dict[type, dict[str, Callable[[Any], Any]]] = {}


def _decoders(cls: type) -> dict[str, Callable[[Any], Any]]:
    """Field name → how its JSON value becomes the field's type again (cached per class)."""
    found = _DECODERS.get(cls)
    if found is None:
        found = _DECODERS[cls] = {name: _decoder(tp) for name, tp in _field_types(cls).items()}
    return found


def _decoder(annotation: object) -> Callable[[Any], Any]:
    """Enums by value, words from their dicts, lists as tuples; None stays None."""
    options = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(options) == 1:
        annotation = options[0]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        enum = annotation
        return lambda v: None if v is None else enum(v)
    if typing.get_origin(annotation) is tuple and typing.get_args(annotation)[:1] == (Word,):
        return lambda v: None if v is None else tuple(Word(**w) for w in v)
    return lambda v: tuple(v) if isinstance(v, list) else v


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


_REGISTRY: dict[str, type[Event]] = {}
"""``type`` value → class, filled by ``register``."""
E = TypeVar("E", bound=type[Event])


def register(cls: E) -> E:
    """Add an event class to the vocabulary; refuses one without its own ``meta`` or with
    text-like fields declared neither personal nor safe (``redaction_coverage``)."""
    if "meta" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} must declare its own meta: ClassVar[EventMeta]")
    problems = redaction_coverage(cls)
    if problems:
        raise UndeclaredFieldError("; ".join(problems))
    name = cls.type.value
    if name in _REGISTRY:
        raise TypeError(f"{name} is already {_REGISTRY[name].__name__}")
    _REGISTRY[name] = cls
    return cls


def registered() -> dict[str, type[Event]]:
    """Every registered event class by its ``type`` value, in registration order."""
    return dict(_REGISTRY)
