"""The event vocabulary: JSON round trip, schema document kept current, declarations complete."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from speech import events as ev
from speech.event_base import (
    Category,
    EventMeta,
    Pii,
    UndeclaredFieldError,
    redaction_coverage,
    text_like,
    undeclared_fields,
)
from speech.events_doc import render
from speech.frames import Party

ROOT = Path(__file__).resolve().parent.parent


def test_every_event_type_has_a_class_and_round_trips() -> None:
    assert set(ev.EVENT_CLASSES) == set(ev.EventType)
    for cls in ev.EVENT_CLASSES.values():
        event = cls(call_id="c1", t=1.25, party=Party.CALLER)
        data = json.loads(json.dumps(event.to_dict()))
        assert data["schema"] == ev.SCHEMA_VERSION
        assert data["type"] == cls.type.value
        assert ev.Event.from_dict(data) == event


def test_final_transcript_keeps_words_and_ignores_unknown_fields() -> None:
    event = ev.FinalTranscript(
        call_id="c", t=3.0, party=Party.AGENT, text="hello there",
        words=(ev.Word("hello", 1.0, 1.4, 0.9), ev.Word("there", 1.5, 1.9, 0.7)), confidence=0.8,
    )
    data = event.to_dict()
    data["future_field"] = {"x": 1}
    back = ev.Event.from_dict(data)
    assert back == event
    assert back.words[1].word == "there"


def test_unknown_type_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        ev.Event.from_dict({"type": "nope", "t": 0})


def test_docs_events_md_is_current() -> None:
    """docs/events.md is generated: regenerate with `python -m speech.events_doc > docs/events.md`."""
    assert (ROOT / "docs" / "events.md").read_text() == render()


# -- declarations: every event describes itself; redaction is deny-by-default --------------------


def test_every_shipped_event_declares_its_personal_data() -> None:
    for cls in ev.EVENT_CLASSES.values():
        assert redaction_coverage(cls) == [], cls.__name__
        assert "meta" in cls.__dict__, f"{cls.__name__} inherits its declarations"
    # what the sinks used to keep in their own tables is now on the classes
    assert ev.FinalTranscript.meta.pii == {"text": Pii.TEXT, "words": Pii.WORDS}
    assert ev.DtmfDigit.meta.pii == {"digit": Pii.DIGITS} and ev.IvrStep.meta.pii == {"detail": Pii.DETAIL}
    assert ev.SpeechStarted.meta.category is None and ev.DeadAirStarted.meta.category is Category.ALERTS
    assert ev.PartialTranscript(text="x").urgent is False and ev.FinalTranscript(text="x").urgent is True


@dataclass(frozen=True, kw_only=True)
class AgentNote(ev.Event):
    """An event a future feature might add, carrying free text it forgot to declare."""

    type: ClassVar[ev.EventType] = ev.EventType.SUMMARY  # borrowed: the test never registers it
    meta: ClassVar[EventMeta] = EventMeta(category=Category.ALERTS, safe=("author",))
    author: str = ""
    note: str = ""
    tags: tuple[str, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)
    level: int = 0
    flagged: bool = False
    who: Party = Party.AGENT


def test_an_event_with_an_undeclared_text_field_fails_the_coverage_check() -> None:
    problems = redaction_coverage(AgentNote)
    assert [p.split(":")[0] for p in problems] == ["AgentNote.note", "AgentNote.tags", "AgentNote.scores"]
    assert undeclared_fields(AgentNote) == ["note", "tags", "scores"]  # numbers, flags, enums are not text
    with pytest.raises(UndeclaredFieldError, match=r"AgentNote\.note: text-like field declared neither"):
        ev.register(AgentNote)
    assert ev.Event.from_dict({"type": "summary"}).__class__ is ev.SummaryReady  # registry untouched


def test_registration_refuses_typos_overlaps_and_inherited_declarations() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Typo(ev.Event):
        type: ClassVar[ev.EventType] = ev.EventType.SUMMARY
        meta: ClassVar[EventMeta] = EventMeta(pii={"txet": Pii.TEXT}, safe=("text",))
        text: str = ""

    assert redaction_coverage(Typo) == ["Typo.txet: declared but not a field"]

    @dataclass(frozen=True, kw_only=True)
    class Both(ev.Event):
        type: ClassVar[ev.EventType] = ev.EventType.SUMMARY
        meta: ClassVar[EventMeta] = EventMeta(pii={"text": Pii.TEXT}, safe=("text",))
        text: str = ""

    assert redaction_coverage(Both) == ["Both.text: declared both personal and safe"]

    @dataclass(frozen=True, kw_only=True)
    class Inherits(ev.FinalTranscript):
        pass

    with pytest.raises(TypeError, match="must declare its own meta"):
        ev.register(Inherits)


@pytest.mark.parametrize(
    ("annotation", "text"),
    [(str, True), (str | None, True), (tuple[str, ...], True), (tuple[ev.Word, ...], True),
     (dict[str, float], True), (list[int], False), (tuple[float, float], False), (float, False),
     (int | None, False), (bool, False), (Party, False), (Party | None, False), (Any, True), (bytes, True)],
)
def test_what_counts_as_text_like(annotation: object, text: bool) -> None:
    assert text_like(annotation) is text


def test_each_event_renders_its_own_terminal_line() -> None:
    assert ev.FinalTranscript(party=Party.CALLER, text="hello").render() == "caller: 'hello'"
    assert ev.FinalTranscript(text="").render() is None
    assert ev.DeadAirStarted(start=1.5, threshold=5).render() == "DEAD AIR since 1.50 s (threshold 5.0 s)"
    assert ev.IvrStep(node="menu", action=ev.IvrAction.CHOICE).render() == "IVR menu: choice"
    quiet = {cls.__name__ for cls in ev.EVENT_CLASSES.values() if cls().render() is None}
    assert quiet == {"SpeechStarted", "SpeechEnded", "PartialTranscript", "FinalTranscript", "SummaryReady"}
    assert AgentNote().render() == "summary"  # the base class falls back to the type name


def test_sinks_need_no_edit_for_a_new_event() -> None:
    from live.topics import Topics, messages_for

    out = messages_for(AgentNote(call_id="c", author="qa"), Topics())
    assert [(m.topic, m.qos, m.retain) for m in out] == [
        ("callcenter/calls/c/alerts", 0, False),  # its declared category; not urgent: QoS 0
        ("callcenter/calls/c/events", 1, False),
    ]
    assert [m.topic for m in messages_for(ev.SpeechStarted(call_id="c"), Topics())] == ["callcenter/calls/c/events"]
