"""The one normalizer and phrase matcher (speech.text): choices, prefixes, off-menu rejection."""

from __future__ import annotations

import pytest

from speech.text import MatchRules, match_phrase, normalize, words

MENU = [
    ("billing", "billing"),
    ("support", "technical support"),
    ("support", "tech support"),
    ("cancel", "cancel service"),
    ("cancel", "cancel my service"),
    ("agent", "speak to an agent"),
]


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("Technical-Support!", "technical support"),
        ("  I'm   [unk] here <unk>. ", "i'm here"),
        ("I\u2019m fine", "i'm fine"),
        ("4111, 1111.", "4111 1111"),
        ("환불 요청", "환불 요청"),  # other scripts survive (vosk-ko grammars)
    ],
)
def test_normalize(raw: str, norm: str) -> None:
    assert normalize(raw) == norm
    assert words(raw) == norm.split()


@pytest.mark.parametrize(
    ("heard", "key"),
    [
        ("Billing.", "billing"),
        ("I have a question about billing please", "billing"),
        ("Technical support.", "support"),
        ("support", "support"),
        ("speak to an", "agent"),  # a grammar path cut off at the end of audio
        ("I want to cancel my service.", "cancel"),
        ("This is unacceptable, I want technical support", "support"),
    ],
)
def test_choices(heard: str, key: str) -> None:
    m = match_phrase(heard, MENU)
    assert m is not None and m.key == key


@pytest.mark.parametrize(
    "heard",
    [
        "This is completely unacceptable.",  # the complaint once taken as "technical support"
        "Your service is completely unacceptable and I am really angry",  # brushes "service"
        "I was charged twice this month for the same thing, billing",  # too much else said
        "Hello, I am calling again about my internet connection.",
        "speak",  # prefix below the coverage share
        "",
        "[unk]",
    ],
)
def test_off_menu_speech_is_no_match(heard: str) -> None:
    assert match_phrase(heard, MENU) is None


def test_ties_between_choices_are_no_match_and_rules_are_tunable() -> None:
    options = [("a", "account balance"), ("b", "account closure")]
    assert match_phrase("account", options) is None
    m = match_phrase("balance", options)
    assert m is not None and m.key == "a" and 0 < m.score <= 1
    long = "i would like to know my account balance because my statement looks wrong today"
    assert match_phrase(long, options) is None
    assert match_phrase(long, options, MatchRules(max_extra_words=10)) is not None
    whole = match_phrase("billing", MENU)
    assert whole is not None and whole.score > 1


@pytest.mark.parametrize(
    ("heard", "key"),
    [
        ("Umm, technically, support.", "support"),  # what Whisper heard for "um technical support"
        ("A reprenantative please.", "agent"),
    ],
)
def test_near_spellings_of_long_phrase_words(heard: str, key: str) -> None:
    options = [*MENU, ("agent", "representative")]
    m = match_phrase(heard, options)
    assert m is not None and m.key == key


@pytest.mark.parametrize(
    "heard",
    [
        "I am willing to pay",  # one letter from "billing": short words are never near spellings
        "my phone operated fine until today",  # near "operator", but the answer is about the phone
        "Repinentative",  # too far from "representative"
    ],
)
def test_near_spellings_stay_strict(heard: str) -> None:
    options = [*MENU, ("agent", "representative"), ("agent", "operator")]
    assert match_phrase(heard, options) is None
    assert match_phrase("Umm, technically, support.", MENU, MatchRules(fuzzy_min_length=0)) is None  # off
