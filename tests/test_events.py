"""The event vocabulary: JSON round trip, schema document kept current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speech import events as ev
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
