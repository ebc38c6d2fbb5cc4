"""Downstream rules on Whisper's spellings: numerals, "$25", "March 5th", capitals, punctuation.

The inputs are transcripts the default engine actually produced on espeak-ng speech (see
tests/test_downstream_whisper.py for the end-to-end run); pocketsphinx's spellings of the same
things (words, no punctuation) must keep working beside them.
"""

from __future__ import annotations

import pytest

from callcenter.aftercall import AfterCall
from callcenter.settings import load_settings
from speech.events import CallEnded, CallStarted, Event, FinalTranscript, PartialTranscript
from speech.frames import Party
from speech.lexicon import find_phrases
from summaries.redact import Redactor
from summaries.spoken import digit_runs, mask_long_runs
from summaries.summarizer import summarize


@pytest.mark.parametrize(
    ("text", "digits", "spoken"),
    [
        ("My card number is 4539, 1 488, 03436467", "4539148803436467", True),  # groups: read out
        ("My order number is 8 3 2 1 5 5 from March 5th", "832155", True),
        ("My count number is 451 to 778.", "4512778", True),  # "two" heard as "to"
        ("my account number is forty five twelve", "4512", True),
        ("forty-five oh six", "4506", True),
        ("4,512,778", "4512778", True),
        ("4111111111111111", "4111111111111111", False),  # one written numeral
    ],
)
def test_digit_runs_in_whisper_and_pocketsphinx_spellings(text: str, digits: str, spoken: bool) -> None:
    runs = [r for r in digit_runs(text) if len(r.digits) > 2]
    assert [(r.digits, r.spoken) for r in runs] == [(digits, spoken)]


def test_to_and_for_are_digits_only_inside_a_number() -> None:
    assert [r.digits for r in digit_runs("I want to talk to four agents")] == ["4"]
    assert [r.digits for r in digit_runs("one for all")] == ["1"]
    assert [r.digits for r in digit_runs("go to 5 for me")] == ["5"]


def test_mask_long_runs_keeps_six_digits() -> None:
    assert mask_long_runs("My card number is 4539, 148, 0343") == "My card number is 453914XXXXX"
    assert mask_long_runs("press 1 then 12345") == "press 1 then 12345"
    assert mask_long_runs("four five three nine one four eight") == "453914X"


def test_whisper_card_number_with_a_lost_digit_is_still_redacted_in_card_context() -> None:
    r = Redactor()
    # 15 digits (one "8" lost by the recognizer): the checksum fails, the card context holds.
    assert r.redact_text("My card number is 4539, 148, 03436467") == "My card number is [CARD]"
    assert r.redact_text("My card number is 4539148803436467.") == "My card number is [CARD]."
    # Grouped numerals without card context and failing Luhn stay (order, tracking numbers).
    assert r.redact_text("The tracking number is 1234 5678 9012 3456") == "The tracking number is 1234 5678 9012 3456"


def test_live_partials_show_at_most_six_digits(tmp_path) -> None:
    settings = load_settings(environ={}, overrides={"data_dir": str(tmp_path), "mqtt.enabled": False})
    seen: list[Event] = []
    sink = AfterCall(settings, store=False).redacting(seen.append)
    sink(PartialTranscript(call_id="c", t=1.0, party=Party.CALLER, text="My card number is 4539, 148, 03", start=0.0))
    sink(PartialTranscript(call_id="c", t=1.5, party=Party.CALLER, text="My account is 4512", start=0.0))
    texts = [e.text for e in seen if isinstance(e, PartialTranscript)]
    assert texts == ["My card number is 453914XXX", "My account is 4512"]


def _call(*utts: tuple[Party, str]) -> list[Event]:
    ev: list[Event] = [CallStarted(call_id="w")]
    t = 1.0
    for party, text in utts:
        ev.append(FinalTranscript(call_id="w", t=t + 2.0, party=party, text=text, start=t, end=t + 2.0))
        t += 3.0
    ev.append(CallEnded(call_id="w", t=t, duration=t))
    return ev


def test_summary_entities_from_whisper_spellings() -> None:
    s = summarize(_call(
        (Party.CALLER, "I was charged $25 twice on my bill"),
        (Party.CALLER, "My count number is 4512778."),
        (Party.AGENT, "I have refunded the extra charge to your account."),
        (Party.AGENT, "You will receive a confirmation within five business days."),
        (Party.CALLER, "My order number is 8 3 2 1 5 5 from March 5th"),
        (Party.CALLER, "And the payment of twenty five dollars and forty nine cents on the twenty first of January."),
        (Party.CALLER, "My account number, it's 4512-7789."),
    ))
    ents = {(e.kind, e.value) for e in s.entities}
    assert {("amount", "$25"), ("account_number", "4512778"), ("order_number", "832155"),
            ("date", "march 5th"), ("amount", "twenty five dollars and forty nine cents"),
            ("date", "the twenty first of january"), ("account_number", "45127789")} <= ents
    assert s.reason == "billing"
    assert s.actions_taken == ("refunded the extra charge to your account",)
    assert [f.due for f in s.follow_ups] == ["within five business days"]


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("This is the 3rd time I am calling.", "third time"),
        ("I want to speak to a MANAGER!", "manager"),
        ("I\u2019ve called 3 times already.", "third time"),
        ("This is the 4th time.", "third time"),
        ("It still doesn\u2019t work.", "still not working"),
    ],
)
def test_escalation_phrases_in_whisper_spelling(text: str, label: str) -> None:
    assert label in {p.label for p in find_phrases(text)}
