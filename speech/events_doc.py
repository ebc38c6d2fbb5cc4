"""Generates docs/events.md from the event classes, so the schema document cannot drift.

Run ``python -m speech.events_doc > docs/events.md``; a test checks the file is current.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing

from speech import events as ev
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
Transcript text, digits and caller numbers are redacted (card numbers, national ids, secure IVR
input) before an event leaves the pipeline, unless settings allow originals.
"""


def _type_name(tp: object) -> str:
    text = str(tp).replace("typing.", "").replace("speech.frames.", "").replace("speech.events.", "")
    return text.replace("<class '", "").replace("'>", "")


def render() -> str:
    out = [HEADER]
    hints_cache: dict[type, dict[str, object]] = {}
    for etype, cls in ev.EVENT_CLASSES.items():
        member_doc = _member_doc(etype)
        urgent = " (urgent)" if cls.urgent else ""
        out.append(f"\n## `{etype.value}`{urgent}\n\n{member_doc}\n")
        hints = hints_cache.setdefault(cls, typing.get_type_hints(cls))
        own = [f for f in dataclasses.fields(cls) if f.name not in ("call_id", "t", "party")]
        if not own:
            out.append("\nNo fields beyond the common ones.\n")
            continue
        out.append("\n| field | type | meaning |\n|---|---|---|\n")
        docs = _field_docs(cls)
        for f in own:
            out.append(f"| `{f.name}` | {_type_name(hints[f.name])} | {docs.get(f.name, '')} |\n")
    out.append(_example())
    return "".join(out)


def _member_doc(etype: ev.EventType) -> str:
    src = inspect.getsource(ev.EventType)
    lines = src.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(f"{etype.name} ="):
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if nxt.startswith('"""'):
                return nxt.strip('"')
    return ""


def _field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under dataclass fields."""
    docs: dict[str, str] = {}
    try:
        lines = inspect.getsource(cls).splitlines()
    except OSError:
        return docs
    for i, line in enumerate(lines):
        stripped = line.strip()
        if ":" in stripped and not stripped.startswith(('"', "#", "type:", "urgent:")) and i + 1 < len(lines):
            name = stripped.split(":")[0].strip()
            nxt = lines[i + 1].strip()
            if nxt.startswith('"""') and nxt.endswith('"""') and len(nxt) > 6:
                docs[name] = nxt.strip('"').replace("|", "\\|")
    return docs


def _example() -> str:
    import json

    sample = ev.FinalTranscript(
        call_id="replay-3f2a9c", t=4.62, party=Party.CALLER, text="i have a question about my bill",
        words=(ev.Word("question", 2.1, 2.5, 0.91), ev.Word("bill", 3.9, 4.2, 0.88)),
        confidence=0.84, start=1.5, end=4.62, engine="pocketsphinx",
    )
    return "\n## Example\n\n```json\n" + json.dumps(sample.to_dict(), indent=2) + "\n```\n"


if __name__ == "__main__":
    print(render(), end="")
