"""Generates docs/events.md from the event classes and their declarations, so it cannot drift.

Run ``python -m speech.events_doc > docs/events.md``; a test checks the file is current. Each
event's section comes from its class: the ``EventType`` member's docstring, ``meta`` (category
topic, urgency, personal data) and the docstrings under its fields.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
import textwrap
import typing
from enum import Enum

from speech import events as ev
from speech.event_base import COMMON_SAFE, Category, Pii, text_like
from speech.frames import Party

HEADER = f"""# Event schema (version {ev.SCHEMA_VERSION})

Every event a call produces (live or replayed) is one JSON object. The same objects go to MQTT
(docs/mqtt.md), the agent console, `callcenter replay --json` and the CRM's event log.

Common fields, present in every event:

| field | type | meaning |
|---|---|---|
| `schema` | int | schema version, currently {ev.SCHEMA_VERSION}; additive changes keep it, breaking ones bump it |
| `type` | string | one of the types below |
| `call_id` | string | the call |
| `t` | number | seconds on the call's clock (from answer, or from the start of a recording) |
| `party` | `"caller"`, `"agent"` or null | whose audio the event is about |

Consumers must ignore fields they do not know. Times are seconds rounded to 0.1 ms. Events marked
**urgent** are control events and alerts: MQTT delivers them at QoS 1 and no queue drops them.
Personal data in transcripts, digits and IVR input (card numbers, national ids, secure IVR
input) is redacted before an event leaves the pipeline, unless settings allow originals; caller
addresses are kept (kind `address` below).

Each event class in `speech/events.py` declares all of this itself (`meta`: its MQTT category
topic, urgency, and which fields hold personal data of which kind; `render()`: its line on a
terminal), and this document is generated from those declarations
(`python -m speech.events_doc > docs/events.md`). Redaction is deny-by-default: a text-like
field declared neither personal nor safe stops the class from registering, and the redactor
treats such a field as free text.

Kinds of personal data, and what the redactor (`summaries/redact.py`) does with each:

| kind | rule |
|---|---|
"""


def render() -> str:
    out = [HEADER, *(f"| {kind.value} | {doc} |\n" for kind, doc in _enum_docs(Pii).items())]
    for etype, cls in ev.EVENT_CLASSES.items():
        meta = cls.meta
        urgent = " (urgent)" if meta.urgent else ""
        out.append(f"\n## `{etype.value}`{urgent}\n\n{_enum_docs(ev.EventType).get(etype, '')}\n\n")
        out.append(f"{_topic_line(meta.category)} Personal data: {_pii_line(meta.pii)}.\n")
        hints = typing.get_type_hints(cls)
        own = [f for f in dataclasses.fields(cls) if f.name not in ("call_id", "t", "party")]
        if not own:
            out.append("\nNo fields beyond the common ones.\n")
            continue
        out.append("\n| field | type | personal data | meaning |\n|---|---|---|---|\n")
        docs = _field_docs(cls)
        for f in own:
            tp = hints[f.name]
            meaning = " ".join(d for d in (docs.get(f.name, ""), _values_of(tp)) if d)
            out.append(f"| `{f.name}` | {_type_name(tp)} | {_privacy(cls, f.name, tp)} | {meaning} |\n")
    out.append(_example())
    return "".join(out)


def _topic_line(category: Category | None) -> str:
    if category is None:
        return "MQTT: `events` only."
    return f"MQTT: `{category.value}` and `events`."


def _pii_line(pii: typing.Mapping[str, Pii]) -> str:
    if not pii:
        return "none"
    return ", ".join(f"`{name}` ({kind.value})" for name, kind in pii.items())


def _privacy(cls: type[ev.Event], name: str, tp: object) -> str:
    if name in cls.meta.pii:
        return f"**{cls.meta.pii[name].value}**"
    if name in cls.meta.safe or name in COMMON_SAFE:
        return "safe"
    return "undeclared" if text_like(tp) else "-"


def _type_name(tp: object) -> str:
    text = tp.__name__ if isinstance(tp, type) else str(tp)
    return re.sub(r"\b(?:\w+\.)+(\w)", r"\1", text).replace("|", "\\|")  # inside a table cell


def _values_of(tp: object) -> str:
    """``One of `a`, `b`.`` for an enum-typed field."""
    options = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    enum = options[0] if len(options) == 1 else None
    if isinstance(enum, type) and issubclass(enum, Enum):
        return "One of " + ", ".join(f"`{m.value}`" for m in enum) + "."
    return ""


def _docstrings(cls: type) -> dict[str, str]:
    """Name → the string literal written right under an assignment in the class body."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for stmt, nxt in zip(body, body[1:], strict=False):
        target = stmt.target if isinstance(stmt, ast.AnnAssign) else (
            stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else None)
        if isinstance(target, ast.Name) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            if isinstance(nxt.value.value, str):
                docs[target.id] = " ".join(nxt.value.value.split()).replace("|", "\\|")
    return docs


def _enum_docs(enum: type[Enum]) -> dict[typing.Any, str]:
    docs = _docstrings(enum)
    return {member: docs.get(member.name, "") for member in enum}


def _field_docs(cls: type) -> dict[str, str]:
    return {k: v for k, v in _docstrings(cls).items() if k not in ("type", "meta")}


def _example() -> str:
    sample = ev.FinalTranscript(
        call_id="replay-3f2a9c", t=4.62, party=Party.CALLER, text="i have a question about my bill",
        words=(ev.Word("question", 2.1, 2.5, 0.91), ev.Word("bill", 3.9, 4.2, 0.88)),
        confidence=0.84, start=1.5, end=4.62, engine="pocketsphinx",
    )
    return "\n## Example\n\n```json\n" + json.dumps(sample.to_dict(), indent=2) + "\n```\n"


if __name__ == "__main__":
    print(render(), end="")
