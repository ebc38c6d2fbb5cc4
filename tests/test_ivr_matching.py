"""Speech answers to menu choices: whole phrases, partial words, and refusals."""

from __future__ import annotations

import pytest

from ivr.flow import Choice
from ivr.matching import match_speech

CHOICES = (
    Choice(goto="billing", dtmf="1", say=("billing",)),
    Choice(goto="support", dtmf="2", say=("technical support", "tech support")),
    Choice(goto="cancel", dtmf="3", say=("cancel service", "cancel my service")),
    Choice(goto="agent", dtmf="0", say=("agent", "representative")),
)


@pytest.mark.parametrize(
    ("heard", "goto"),
    [
        ("billing", "billing"),
        ("Billing.", "billing"),
        ("i have a question about billing please", "billing"),
        ("technical support", "support"),
        ("support", "support"),
        ("technical", "support"),
        ("TECH SUPPORT!", "support"),
        ("i want to cancel my service", "cancel"),
        ("cancel", "cancel"),
        ("service", "cancel"),
        ("can i talk to a representative", "agent"),
        ("[unk] agent", "agent"),
    ],
)
def test_matches(heard: str, goto: str) -> None:
    m = match_speech(heard, CHOICES)
    assert m is not None and m.choice.goto == goto


@pytest.mark.parametrize("heard", ["", "[unk]", "  ", "[unk] [unk]", "hello", "i want to", "please"])
def test_no_match(heard: str) -> None:
    assert match_speech(heard, CHOICES) is None


def test_ambiguous_partial_is_no_match() -> None:
    choices = (Choice(goto="a", say=("account balance",)), Choice(goto="b", say=("account closure",)))
    assert match_speech("account", choices) is None
    assert match_speech("balance", choices).choice.goto == "a"


def test_whole_phrase_beats_partial() -> None:
    m = match_speech("billing support", CHOICES)
    assert m is not None and m.choice.goto == "billing" and m.score > 1
