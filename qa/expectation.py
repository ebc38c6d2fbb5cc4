"""Expectation files (``<name>.expect.json``): what a replay of a recorded call must produce.

The file format is a pydantic model, :class:`Expectation` (schema in audio_fixtures/README.md).
Every key but ``schema`` is optional and an absent key is not checked; unknown keys are an error,
so a typo never silently disables a check. A broken file is one :class:`ExpectationError` naming
the file, the path inside it and the problem (``x.expect.json: dead_air[0].start: must be a
number, not '5'``).

To add a kind of check: a field here (a nested model if it takes several values) and one
``@check`` function in :mod:`qa.checks`. See /tmp/qa_api.md for the walk-through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from speech.file_path import PathPart, dotted
from speech.frames import Party

SCHEMA_VERSION = 1
TONE_LABELS = ("calm", "neutral", "tense", "angry")
"""Tone labels, least tense first: ``max_label`` compares by this order."""
DEFAULT_DEAD_AIR_TOLERANCE_S = 0.5
DEFAULT_TALK_OVER_TOLERANCE_S = 0.5
EXPECT_SUFFIX = ".expect.json"
G711_VARIANT = re.compile(r"^(?P<base>.+)_8k_(ulaw|alaw)$")
"""``<name>_8k_ulaw`` / ``<name>_8k_alaw``: telephone-rate copies that share ``<name>``'s file."""



class ExpectationError(ValueError):
    """An expectation file is unreadable or does not follow the schema.

    One line (``callcenter replay`` prints one ``error:`` line per bad file): ``<file>: <path>:
    <problem>``, further problems after ``; ``. ``source``, ``path`` and ``problems`` carry the
    same for code.
    """

    def __init__(
        self, message: str, *, source: Path | None = None, path: Sequence[PathPart] = (),
        more: Sequence[tuple[tuple[PathPart, ...], str]] = (),
    ) -> None:
        self.source = source
        self.path = dotted(path)
        self.problems: tuple[tuple[tuple[PathPart, ...], str], ...] = ((tuple(path), message), *more)
        text = "; ".join(f"{dotted(p)}: {m}" if p else m for p, m in self.problems)
        super().__init__(f"{source}: {text}" if source is not None else text)


# -- field types ----------------------------------------------------------------------------


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _party(value: Any) -> Any:
    if isinstance(value, Party):
        return value
    try:
        return Party(value)
    except ValueError:
        raise PydanticCustomError(
            "qa", "must be one of {allowed}, not {value}", {"allowed": [p.value for p in Party], "value": repr(value)}
        ) from None


def _dtmf(value: str) -> str:
    if not re.fullmatch(r"[0-9A-D*#]*", value):
        raise PydanticCustomError("qa", "must be a string of 0-9, A-D, * and #, not {value}", {"value": repr(value)})
    return value


def _word(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("qa", "must not be blank")
    return value


Seconds = Annotated[float, Field(ge=0)]
"""Call seconds or a tolerance: a number >= 0 (``true`` is not a number)."""
PartyName = Annotated[Party, BeforeValidator(_party)]
ToneLabel = Literal["calm", "neutral", "tense", "angry"]
Word = Annotated[str, AfterValidator(_word)]
KeywordGroup = Annotated[tuple[Word, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
"""Any one of these heard passes the group."""


class _Model(BaseModel):
    """Strict and frozen; unknown keys are an error that says which keys are allowed."""

    model_config = ConfigDict(strict=True, frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = sorted(f.alias or n for n, f in cls.model_fields.items() if not f.exclude)
            unknown = sorted(str(k) for k in data if k not in allowed)
            if unknown:
                raise PydanticCustomError(
                    "qa_keys", "unknown {what}key(s): {keys} (allowed: {allowed})",
                    {"what": "", "keys": ", ".join(unknown), "allowed": ", ".join(allowed)},
                )
        return data


class Interval(_Model):
    """A dead-air interval in call seconds."""

    start: Seconds
    end: Seconds

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if self.end <= self.start:
            raise PydanticCustomError("qa", f"ends before it starts ({self.start:g} -> {self.end:g} s)")
        return self


class ExpectedTalkOver(_Model):
    started_by: PartyName
    start: Seconds
    tolerance: Seconds = DEFAULT_TALK_OVER_TOLERANCE_S


class ExpectedTone(_Model):
    """Any subset: the last label is one of ``final_label_in``; no label above ``max_label``;
    a tone alert was (``True``) or was not (``False``) raised."""

    final_label_in: Annotated[tuple[ToneLabel, ...], BeforeValidator(_as_tuple), Field(min_length=1)] | None = None
    max_label: ToneLabel | None = None
    alert: bool | None = None


class TranscriptBound(_Model):
    """What one party (or, without ``party``, the whole call) said, and the word error rate its
    final transcripts may have against it: catches a recognizer that gets worse."""

    party: PartyName | None = None
    reference: Word
    max_wer: Annotated[float, Field(ge=0, le=1)]


class Expectation(_Model):
    """What one recorded call must produce. ``None`` means "not checked"."""

    schema_version: Literal[1] = Field(1, alias="schema")
    source: Path | None = Field(None, exclude=True)
    """The file it was read from (not a key of the file)."""
    keywords: Annotated[tuple[KeywordGroup, ...], BeforeValidator(_as_tuple)] | None = None
    keywords_party: PartyName | None = None
    dead_air: Annotated[tuple[Interval, ...], BeforeValidator(_as_tuple)] | None = None
    dead_air_tolerance: Seconds = DEFAULT_DEAD_AIR_TOLERANCE_S
    tone: ExpectedTone | None = None
    dtmf: Annotated[str, AfterValidator(_dtmf)] | None = None
    talk_over: Annotated[tuple[ExpectedTalkOver, ...], BeforeValidator(_as_tuple)] | None = None
    min_duration: Seconds | None = None
    max_duration: Seconds | None = None
    transcript: Annotated[tuple[TranscriptBound, ...], BeforeValidator(_as_tuple)] | None = None
    rendered: Any = None
    """Informational, not checked: how audio_fixtures/render.py laid the call out."""
    comment: Any = None
    """Informational, not checked: free text."""

    @field_validator("keywords", "dead_air", "talk_over", "transcript", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise PydanticCustomError("qa", "must be a list, not {value}", {"value": repr(value)})
        return value


# -- reading --------------------------------------------------------------------------------


def expectation_for(audio_path: str | Path) -> Path | None:
    """The expectation file of a recording: sibling ``<stem>.expect.json``, else the one of the
    call it is a G.711 copy of (``x_8k_ulaw.wav`` → ``x.expect.json``); ``None`` if neither."""
    p = Path(audio_path)
    own = p.with_name(p.stem + EXPECT_SUFFIX)
    if own.is_file():
        return own
    m = G711_VARIANT.match(p.stem)
    if m:
        base = p.with_name(m["base"] + EXPECT_SUFFIX)
        if base.is_file():
            return base
    return None


def load_expectation(path: str | Path) -> Expectation:
    """Read and validate an expectation file; every problem is an ``ExpectationError``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ExpectationError("file not found", source=p) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ExpectationError(f"cannot read: {exc}", source=p) from exc
    except json.JSONDecodeError as exc:
        raise ExpectationError(f"malformed JSON at line {exc.lineno}: {exc.msg}", source=p) from exc
    return parse_expectation(data, source=p)


def parse_expectation(data: Any, *, source: Path | None = None) -> Expectation:
    """Validate an already-decoded expectation object; messages name ``source`` when given."""
    if not isinstance(data, dict):
        raise ExpectationError("top level must be a JSON object", source=source)
    if data.get("schema") != SCHEMA_VERSION:
        raise ExpectationError(f"unsupported schema {data.get('schema')!r} (need {SCHEMA_VERSION})",
                               source=source, path=("schema",))
    try:
        exp = Expectation.model_validate(data)
    except ValidationError as exc:
        (first_path, first), *more = [(_path(e), _message(e)) for e in exc.errors()]
        raise ExpectationError(first, source=source, path=first_path, more=more) from None
    return exp.model_copy(update={"source": source})


def _path(err: ErrorDetails) -> tuple[PathPart, ...]:
    return tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))


def _message(err: ErrorDetails) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "qa":
        return err["msg"]
    if kind == "qa_keys":
        keys = [p for p in _path(err) if isinstance(p, str)]
        what = f"{keys[-1]} " if keys else ""
        ctx = err.get("ctx") or {}
        return f"unknown {what}key(s): {ctx.get('keys')} (allowed: {ctx.get('allowed')})"
    if kind == "missing":
        return "is required"
    if kind == "float_type":
        return f"must be a number, not {value!r}"
    if kind == "greater_than_equal":
        return f"must be >= {(err.get('ctx') or {}).get('ge')}, not {value!r}"
    if kind == "bool_type":
        return f"must be true or false, not {value!r}"
    if kind == "string_type":
        return f"must be a string, not {value!r}"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list, not {value!r}"
    if kind == "too_short":
        return "must not be empty"
    if kind == "literal_error":
        return f"must be {(err.get('ctx') or {}).get('expected')}, not {value!r}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be an object, not {value!r}"
    msg = err["msg"]
    return f"{msg[:1].lower()}{msg[1:]}, not {value!r}"
