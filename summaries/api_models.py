"""Request models of the CRM REST API: every input is checked before it reaches the store.

The event and summary models are derived from the ``speech.events`` and ``summaries.summary``
dataclasses (so a new event field is accepted without touching this file), with bounds the
database can hold: string lengths of the columns, finite floats, integers a 64-bit column takes,
no NUL characters (PostgreSQL text cannot hold them). The generated OpenAPI schema therefore
says exactly what is accepted, which is what schemathesis checks.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    StringConstraints,
    Tag,
    create_model,
)

from speech.events import EVENT_CLASSES, Event, EventType, Word
from summaries.summary import CallSummary

MAX_ID_CHARS = 128
"""``calls.id`` is VARCHAR(128)."""
MAX_NUMBER_CHARS = 64
"""``contacts.number``, ``calls.caller``/``callee`` are VARCHAR(64)."""
MAX_TEXT_CHARS = 1_000
"""Longest free text (an utterance of the 20 s maximum is ~400 characters); redaction's cost
grows faster than linearly with a string's length."""
MAX_ITEMS = 5_000
"""Longest list in one call (events, words of an utterance...); the body limit caps it too."""
MAX_SECONDS = 1e7
"""Largest call-clock time (about 115 days); also bounds durations."""
MAX_INT = 2**31 - 1

_NO_NUL = r"^[^\x00]*$"


def text(max_length: int = MAX_TEXT_CHARS) -> Any:
    return Annotated[str, StringConstraints(max_length=max_length, pattern=_NO_NUL)]


Seconds = Annotated[float, Field(ge=-MAX_SECONDS, le=MAX_SECONDS, allow_inf_nan=False)]


def _whole_float_to_int(value: Any) -> Any:
    """JSON Schema counts ``3.0`` as an integer; strict pydantic would refuse it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def bounded_int(ge: int) -> Any:
    return Annotated[int, Field(ge=ge, le=MAX_INT), BeforeValidator(_whole_float_to_int)]


BoundedInt = bounded_int(-MAX_INT)
JsonScalar: Any = Union[text(), bool, BoundedInt, Seconds, None]  # noqa: UP007 - a runtime union value
JsonValue: Any = Union[JsonScalar, Annotated[list[JsonScalar], Field(max_length=100)]]  # noqa: UP007
"""Values of free-form maps (IVR step details): flat, finite, storable."""

_FIELD_TYPES: dict[str, Any] = {
    # Printable ASCII without spaces, as SIP Call-IDs and generated ids are ("" = not given).
    "call_id": Annotated[str, StringConstraints(max_length=MAX_ID_CHARS, pattern=r"^[!-~]*$")],
    "caller": text(MAX_NUMBER_CHARS),
    "callee": text(MAX_NUMBER_CHARS),
    "source": text(16),
    "reason": text(32),
    "end_reason": text(32),
    "resolution": text(16),
    "tone_start": text(16),
    "tone_end": text(16),
    "tone_peak": text(16),
    "producer": text(64),
    "owner": text(16),
    "due": text(64),
    "started_at": text(64),
    "word": text(64),
    "conf": Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)],
    "confidence": Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)],
}
"""Per field name: the column it lands in decides its bound."""
_LIST_LIMITS = {"words": 1000, "parties": 8, "reasons": 50}

_STRICT = ConfigDict(strict=True, extra="forbid", populate_by_name=True)
_LENIENT_KEYS = ConfigDict(strict=True, extra="ignore", populate_by_name=True)
"""Events ignore unknown keys, as ``Event.from_dict`` does (forward compatibility)."""


def _field_type(name: str, hint: Any) -> Any:
    """The constrained pydantic type for one dataclass field."""
    if name in _FIELD_TYPES:
        return _FIELD_TYPES[name]
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        inner = [_field_type(name, a) for a in args if a is not type(None)]
        out = inner[0] if len(inner) == 1 else Union[tuple(inner)]  # noqa: UP007
        return out | None if type(None) in args else out
    if origin in (tuple, list):
        most = _LIST_LIMITS.get(name, MAX_ITEMS)
        return Annotated[list[_field_type(name, args[0])], Field(max_length=most)]  # type: ignore[misc]
    if origin is dict:
        value = JsonValue if args[1] is Any else _field_type(name, args[1])
        # Keys unconstrained but for length: pydantic writes a key pattern as patternProperties,
        # which does not forbid other keys. The JSON columns take any key.
        key = Annotated[str, StringConstraints(max_length=200)]
        return Annotated[dict[key, value], Field(max_length=200)]  # type: ignore[valid-type]
    if isinstance(hint, type) and issubclass(hint, Enum):
        return Literal[tuple(m.value for m in hint)]
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _model(hint)
    if hint is str:
        return text()
    if hint is bool:
        return bool
    if hint is int:
        return bounded_int(0)
    if hint is float:
        return Seconds
    raise TypeError(f"no API type for field {name!r}: {hint!r}")


def _jsonable(value: Any) -> Any:
    """A dataclass default as it appears in JSON (the schema's ``default``)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


_MODELS: dict[tuple[str, str | None], type[BaseModel]] = {}


def _model(cls: Any, type_value: str | None = None) -> type[BaseModel]:
    """A pydantic model with the dataclass's fields (optional where they have defaults)."""
    key = (f"{cls.__module__}.{cls.__qualname__}", type_value)
    if key not in _MODELS:
        _MODELS[key] = _build_model(cls, type_value)
    return _MODELS[key]


def _build_model(cls: Any, type_value: str | None) -> type[BaseModel]:
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    if type_value is not None:
        fields["type"] = (Literal[type_value], ...)
        fields["schema_"] = (Literal[1], Field(1, alias="schema"))
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            spec: Any = Field(_jsonable(f.default))
        elif f.default_factory is not dataclasses.MISSING:
            spec = Field(_jsonable(f.default_factory()))
        else:
            spec = ...
        fields[f.name] = (_field_type(f.name, hints[f.name]), spec)
    name = f"{cls.__name__}In"
    config = _LENIENT_KEYS if type_value is not None else _STRICT
    return create_model(name, __config__=config, **fields)


STORED_EVENT_TYPES = tuple(t for t in EVENT_CLASSES if t is not EventType.SUMMARY)
"""What a posted call may contain (its summary goes in ``summary``, not as an event)."""


def _event_union() -> Any:
    members = tuple(Annotated[_model(EVENT_CLASSES[t], t.value), Tag(t.value)] for t in STORED_EVENT_TYPES)
    return Annotated[Union[members], Discriminator(_event_tag)]  # noqa: UP007


def _event_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        tag = value.get("type")
        return tag if isinstance(tag, str) else None
    return getattr(value, "type", None)


EventIn: Any = _event_union()
SummaryIn: Any = _model(CallSummary)
WordIn: Any = _model(Word)


class CallIn(BaseModel):
    """``POST /api/calls``: a finished call's events, and optionally its summary (else the
    offline summarizer writes one)."""

    model_config = _STRICT

    events: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_ITEMS)]
    summary: SummaryIn | None = None

    def to_events(self) -> list[Event]:
        return [Event.from_dict(_dump(e)) for e in self.events]

    def to_summary(self) -> CallSummary | None:
        if self.summary is None:
            return None
        return CallSummary.from_dict(_dump(self.summary))


def _dump(model: BaseModel) -> dict[str, Any]:
    """Only the keys the client sent, so the dataclass defaults apply to the rest."""
    return model.model_dump(by_alias=True, exclude_unset=True, exclude={"schema_"})


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: Any) -> datetime:
    """An RFC 3339 date-time, as the schema's ``format: date-time`` says (not a Unix time, not a
    bare date, not a time without offset), representable in UTC."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("expected an RFC 3339 date-time such as 2026-03-01T09:30:00Z")
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError("date-time out of range") from exc
    return parsed


QueryTime = Annotated[datetime, PlainValidator(_rfc3339, json_schema_input_type=datetime)]
