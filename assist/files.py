"""Loading the assist YAML files (playbook, rules, checklists) into pydantic models.

A broken file is one ``AssistFileError`` line naming the file, the path inside it and the
problem, every problem after ``; `` (``rules.yaml: rules[0].when[1].seconds: must be > 0``).
Every call's stages load their files; a file is parsed once per process and again only when it
changes (its size or modification time), so an edited file applies from the next call without
a restart and an unchanged one costs a ``stat``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from speech.file_path import PathPart, dotted

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base of the file models: frozen, unknown keys are errors (a typo must not disable a check)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class AssistFileError(ValueError):
    """A playbook, rules or checklist file is unreadable or does not follow its schema."""

    def __init__(self, source: Path | None, problems: Sequence[tuple[Sequence[PathPart], str]]) -> None:
        self.source = source
        self.problems = tuple((dotted(p), m) for p, m in problems)
        text = "; ".join(f"{p}: {m}" if p else m for p, m in self.problems)
        super().__init__(f"{source}: {text}" if source is not None else text)


_PARSED_MAX = 32
_parsed: OrderedDict[tuple[str, type[BaseModel], int, int], BaseModel] = OrderedDict()
_parsed_lock = threading.Lock()  # stages are built on the loop, checks run in threads


def load_model(path: str | Path, model: type[M]) -> M:
    """Read a YAML file and validate it as ``model``; every problem is an ``AssistFileError``.
    The (frozen) result is reused while the file's size and modification time stay the same."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return _parse_file(p, model)  # the read below names the problem
    key = (str(p.resolve()), model, st.st_mtime_ns, st.st_size)
    with _parsed_lock:
        hit = _parsed.get(key)
        if hit is not None:
            _parsed.move_to_end(key)
            return hit  # type: ignore[return-value]  # keyed by model: an instance of it
    parsed = _parse_file(p, model)
    with _parsed_lock:
        _parsed[key] = parsed
        while len(_parsed) > _PARSED_MAX:
            _parsed.popitem(last=False)
    return parsed


def _parse_file(p: Path, model: type[M]) -> M:
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AssistFileError(p, [((), "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AssistFileError(p, [((), f"cannot read: {exc}")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise AssistFileError(p, [((), f"malformed YAML{where}: {getattr(exc, 'problem', exc)}")]) from None
    return parse_model(data, model, source=p)


def parse_model(data: Any, model: type[M], *, source: Path | None = None) -> M:
    """Validate already-decoded data; messages name ``source`` when given."""
    if not isinstance(data, dict):
        raise AssistFileError(source, [((), "top level must be a mapping")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [(_loc(e["loc"]), e) for e in exc.errors()]
        # a list whose items failed also reports itself "too short": only the items' problems count
        errors = [(loc, e) for loc, e in errors if not (e["type"] == "too_short" and any(
            other[: len(loc)] == loc and len(other) > len(loc) for other, _ in errors))]
        raise AssistFileError(source, [(loc, _message(e)) for loc, e in errors]) from None


def _loc(loc: Sequence[PathPart]) -> tuple[PathPart, ...]:
    # tagged unions and validators add their own loc parts (``<said>``, ``function-after[...]``)
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith(("function-", "<")))))


def _message(err: Any) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        return f"unknown kind {ctx.get('tag')!r} (one of {ctx.get('expected_tags')})"
    if kind == "union_tag_not_found":
        return "needs one of the condition keys"
    msg = str(err["msg"]).removeprefix("Value error, ")
    msg = msg[:1].lower() + msg[1:]
    return f"{msg}, not {value!r}" if kind.endswith("_type") or kind.startswith(("greater", "less")) else msg
