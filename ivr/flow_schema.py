"""What an IVR flow file may contain, as pydantic models of the YAML.

These models check shape and types (keys, kinds, keys a caller can press, numbers in range); what
needs the whole file (references between nodes and prompts, ``${params}``, duplicate keys across
choices, reachability) is checked by :mod:`ivr.flow`, which builds the runtime dataclasses of
:mod:`ivr.model`. :func:`problems_of` turns pydantic's errors into :class:`ivr.model.Problem`s
with the path inside the file and a message in the flow's own terms.

Validation is strict (YAML's ``yes`` is a boolean, never the phrase "True"), with two
conveniences YAML authors expect: unquoted numbers are accepted where text is wanted (``dtmf: 1``,
a prompt ``"123"``), and ``say:`` takes one phrase or a list.
"""

from __future__ import annotations

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

from ivr.model import DIGIT_KEYS, DTMF_KEYS, Problem
from speech.file_path import PathPart


def _scalar_text(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _dtmf_key(value: str) -> str:
    if value not in DTMF_KEYS:
        raise PydanticCustomError("flow", "dtmf {value} is not a single key 0-9 * # A-D", {"value": repr(value)})
    return value


def _terminator(value: str) -> str:
    if value not in DTMF_KEYS or value in DIGIT_KEYS:
        raise PydanticCustomError("flow", "terminator {value} must be one of * # A B C D", {"value": repr(value)})
    return value


def _phrases(value: Any) -> Any:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(s, str) for s in items):
        raise PydanticCustomError("flow", "'say' must be a phrase or a list of phrases")
    return tuple(s.strip() for s in items)


Text = Annotated[str, BeforeValidator(_scalar_text)]
"""Text; an unquoted YAML number counts as its digits."""
Ref = Annotated[str, Field(min_length=1)]
"""A name of a node or prompt (checked against the file by ivr.flow)."""
Seconds = Annotated[float, Field(gt=0)]
Retries = Annotated[int, Field(ge=0)]


class _Spec(BaseModel):
    """Strict, frozen, and unknown keys are an error that lists the allowed ones."""

    model_config = ConfigDict(strict=True, frozen=True, populate_by_name=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = sorted(f.alias or name for name, f in cls.model_fields.items())
            unknown = sorted(str(k) for k in data if k not in allowed)
            if unknown:
                raise PydanticCustomError(
                    "flow", "unknown key(s) {keys} (allowed: {allowed})",
                    {"keys": ", ".join(unknown), "allowed": ", ".join(allowed)},
                )
        return data


class ChoiceSpec(_Spec):
    goto: Ref
    dtmf: Annotated[Text, AfterValidator(_dtmf_key)] | None = None
    say: Annotated[tuple[str, ...], BeforeValidator(_phrases)] = ()
    name: Text | None = None

    @model_validator(mode="after")
    def _some_input(self) -> ChoiceSpec:
        if self.dtmf is None and not self.say:
            raise PydanticCustomError("flow", "a choice needs a 'dtmf' key or 'say' phrases")
        return self


class DigitsSpec(_Spec):
    min: int = 1
    max: int = 16

    @model_validator(mode="after")
    def _range(self) -> DigitsSpec:
        if self.min < 1 or self.max < self.min:
            raise PydanticCustomError(
                "flow", "digits need 1 <= min <= max (got min {lo}, max {hi})", {"lo": self.min, "hi": self.max}
            )
        return self


class _NodeSpec(_Spec):
    prompt: Ref | None = None


class _Prompting(_NodeSpec):
    """A node that waits for input: it re-prompts and falls back."""

    timeout_s: Seconds | None = None
    retries: Retries | None = None
    reprompt: Ref | None = None
    no_match: Ref | None = None
    fallback: Ref | None = None
    barge_in: bool | None = None


class MenuSpec(_Prompting):
    kind: Literal["menu"]
    choices: list[ChoiceSpec]

    @field_validator("choices")
    @classmethod
    def _some_choice(cls, value: list[ChoiceSpec]) -> list[ChoiceSpec]:
        if not value:
            raise PydanticCustomError("flow", "a menu needs at least one choice in 'choices'")
        return value


class CollectSpec(_Prompting):
    kind: Literal["collect"]
    goto: Ref
    digits: DigitsSpec = DigitsSpec()
    terminator: Annotated[Text, AfterValidator(_terminator)] | None = "#"
    secure: bool = False
    """Card numbers and PINs: digits masked everywhere, the recording silent meanwhile."""
    store_as: Ref | None = None


class PlaySpec(_NodeSpec):
    kind: Literal["play"]
    goto: Ref
    hold: bool = False
    barge_in: bool = False


class QueueSpec(_NodeSpec):
    kind: Literal["queue"]
    queue: Ref
    max_wait_s: float | None = Field(None, ge=0)
    """Longest wait in this queue (none: the ACD's default)."""
    overflow: Ref | None = None
    """Queue to move the caller to at the maximum wait (they keep their place by time)."""
    callback: bool = False
    """At the maximum wait (and no overflow): leave a callback request and end the call."""


class TransferSpec(_NodeSpec):
    kind: Literal["transfer"]
    uri: Ref
    fallback: Ref | None = None


class HangupSpec(_NodeSpec):
    kind: Literal["hangup"]


NodeSpec = Annotated[
    MenuSpec | CollectSpec | PlaySpec | QueueSpec | TransferSpec | HangupSpec, Field(discriminator="kind")
]
KINDS = ("menu", "collect", "play", "queue", "transfer", "hangup")
PROMPTED_KINDS = frozenset({"menu", "collect", "play", "hangup"})
"""Kinds that make no sense without a prompt (queue and transfer may announce nothing)."""


class DefaultsSpec(_Spec):
    """Applied to every menu and collect node that does not set its own."""

    timeout_s: Seconds | None = None
    retries: Retries | None = None
    barge_in: bool | None = None


class FlowSpec(_Spec):
    """The whole file."""

    name: Text | None = None
    start: Ref
    prompts: dict[Text, Text]
    nodes: dict[Text, NodeSpec]
    params: dict[Text, Text] = {}
    prompts_dir: Text | None = None
    defaults: DefaultsSpec = DefaultsSpec()

    @field_validator("prompts", "nodes")
    @classmethod
    def _not_empty(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise PydanticCustomError("flow", "must not be empty")
        return value

    @field_validator("params", "defaults", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


def problems_of(exc: ValidationError) -> list[Problem]:
    """pydantic's errors as flow problems: the path inside the file and what is wrong there."""
    return [Problem(_path(err), _message(err)) for err in exc.errors()]


def _path(err: ErrorDetails) -> tuple[PathPart, ...]:
    loc = list(err["loc"])
    if len(loc) > 2 and loc[0] == "nodes" and loc[2] in KINDS:
        del loc[2]  # the discriminated union's tag: the node's own kind, not a key in the file
    return tuple(loc)


def _message(err: ErrorDetails) -> str:
    kind, value = err["type"], err.get("input")
    keys = [p for p in _path(err) if isinstance(p, str)]
    key = keys[-1] if keys else "value"
    if kind == "flow":
        return err["msg"]
    if kind == "missing":
        return f"missing '{key}'"
    if kind == "union_tag_invalid":
        return f"unknown kind {(err.get('ctx') or {}).get('tag')!r} (expected one of {', '.join(KINDS)})"
    if kind == "union_tag_not_found":
        return f"a node needs a 'kind' (one of {', '.join(KINDS)})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        path = _path(err)
        what = "a node" if len(path) == 2 and path[0] == "nodes" else "each entry" if path and isinstance(path[-1], int) else f"'{key}'"
        return f"{what} must be a mapping (got {type(value).__name__})"
    if kind in ("tuple_type", "list_type"):
        return f"'{key}' must be a list (got {type(value).__name__})"
    if kind == "bool_type":
        return f"'{key}' must be true or false (got {value!r})"
    if kind == "string_type":
        return f"'{key}' must be text (got {value!r})"
    if kind == "string_too_short":
        return f"'{key}' must not be empty"
    if kind in ("int_type", "int_from_float"):
        return f"'{key}' must be a whole number (got {value!r})"
    if kind == "float_type":
        return f"'{key}' must be a number (got {value!r})"
    if kind in ("greater_than", "greater_than_equal"):
        op = ">" if kind == "greater_than" else ">="
        bound = (err.get("ctx") or {}).get("gt" if kind == "greater_than" else "ge")
        unit = " seconds" if key.endswith("_s") else ""
        return f"'{key}' must be {op} {bound:g}{unit} (got {value!r})"
    msg = err["msg"]
    return f"{msg[:1].lower()}{msg[1:]} (got {value!r})"
