"""PII redaction on transcripts, words, DTMF in secure IVR steps; originals only when asked."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from speech.event_base import Category, EventMeta, Pii
from speech.events import (
    CallStarted,
    DtmfDigit,
    Event,
    EventType,
    FinalTranscript,
    IvrAction,
    IvrStep,
    Word,
)
from speech.frames import Party
from summaries.redact import MASKED_DIGIT, Redactor
from summaries.sample_calls import billing_call
from summaries.spoken import digit_runs, luhn_ok


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my card is 4111 1111 1111 1111 thanks", "my card is [CARD] thanks"),
        ("it is 4111-1111-1111-1111", "it is [CARD]"),
        ("number 378282246310005 amex", "number [CARD] amex"),
        ("order 1234 5678 9012 3456 please", "order 1234 5678 9012 3456 please"),  # fails Luhn: stays
        ("my ssn is 123-45-6789", "my ssn is [SSN]"),
        ("social security number one two three four five six seven eight nine", "social security number [SSN]"),
        ("email john.doe+x@example.co.uk now", "email [EMAIL] now"),
        ("it's john dot doe at example dot com", "it's [EMAIL]"),
        ("call me at (555) 123-4567", "call me at [PHONE]"),
        ("my cell is five five five one two three four five six seven", "my cell is [PHONE]"),
        ("nino AB 12 34 56 C", "nino [NATIONAL_ID]"),
        ("iban DE89 3704 0044 0532 0130 00", "iban [IBAN]"),
        ("account 12345678 and order 98765", "account 12345678 and order 98765"),
        ("oh I see", "oh I see"),
    ],
)
def test_text_patterns(text, expected):
    assert Redactor().redact_text(text) == expected


def test_spoken_card_digits_luhn_or_card_context():
    r = Redactor()
    spoken = "four one one one one one one one one one one one one one one one"
    assert r.redact_text(f"it's {spoken}") == "it's [CARD]"  # Luhn-valid
    not_luhn = "one two three four five six seven eight nine zero one two three four five six"
    assert r.redact_text(f"the parcel is {not_luhn}") == f"the parcel is {not_luhn}"
    # Noisy recognizers break the checksum; with card context the run is still masked.
    assert r.redact_text(f"my credit card is {not_luhn}") == "my credit card is [CARD]"


def test_helpers():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    runs = digit_runs("double five 12 three, four")
    assert [r.digits for r in runs] == ["551234"]


def test_final_transcript_words_are_merged_into_the_tag():
    text = "card 4111 1111 1111 1111 ok"
    words = tuple(Word(w, i * 0.5, i * 0.5 + 0.4) for i, w in enumerate(text.split()))
    ev = FinalTranscript(call_id="c", t=3.0, party=Party.CALLER, text=text, words=words, start=0, end=3)
    out = Redactor().redact_event(ev)
    assert out.text == "card [CARD] ok"
    assert [w.word for w in out.words] == ["card", "[CARD]", "ok"]
    assert (out.words[1].start, out.words[1].end) == (0.5, 2.4)
    assert ev.text == text  # the original event is untouched


def test_secure_ivr_digits_masked_by_detail_flag_and_by_node_name():
    def steps(node, detail):
        return [
            IvrStep(call_id="s", t=1.0, node=node, action="enter", detail=detail),
            *[DtmfDigit(call_id="s", t=2.0 + i, digit=d) for i, d in enumerate("1234")],
            IvrStep(call_id="s", t=7.0, node=node, action="collect", detail={"digits": "1234"}),
            IvrStep(call_id="s", t=8.0, node="menu", action="enter"),
            DtmfDigit(call_id="s", t=9.0, digit="2"),
        ]

    for redactor, evs in (
        (Redactor(), steps("pin", {"secure": True})),
        (Redactor(secure_ivr_nodes={"pin"}), steps("pin", {})),
    ):
        out = redactor.redact_events(evs)
        digits = [e.digit for e in out if isinstance(e, DtmfDigit)]
        assert digits == [MASKED_DIGIT] * 4 + ["2"]  # after the collect, keys are menu choices again
        assert out[5].detail["digits"] == MASKED_DIGIT * 4


def test_non_secure_ivr_input_stays():
    out = Redactor().redact_events(billing_call())
    assert "".join(e.digit for e in out if isinstance(e, DtmfDigit)) == "112345678"


def test_originals_kept_only_when_asked():
    evs = [FinalTranscript(call_id="k", t=1.0, text="ssn 123-45-6789"),
           FinalTranscript(call_id="k", t=2.0, text="nothing here")]
    plain = Redactor().redact_call(evs)
    assert plain.originals == {} and plain.redacted_count == 1
    kept = Redactor(keep_original=True).redact_call(evs)
    assert kept.events[0].text == "ssn [SSN]"
    assert kept.originals == {0: evs[0].to_dict()}
    assert kept.events[1] is evs[1]


CARD = "4539148803436467"  # Luhn-valid


def _keys(call: str, digits: str, t0: float, step: float = 0.2) -> list[DtmfDigit]:
    return [DtmfDigit(call_id=call, t=t0 + i * step, digit=d) for i, d in enumerate(digits)]


def test_card_typed_as_dtmf_without_ivr_is_masked_with_originals_only_when_kept():
    evs = [*_keys("d", "1", 0.5), *_keys("d", CARD + "#", 8.0), *_keys("d", "4512", 20.0)]
    plain = Redactor().redact_call(evs)
    assert "".join(e.digit for e in plain.events) == "1" + MASKED_DIGIT * len(CARD) + "#4512"
    assert plain.originals == {}
    kept = Redactor(keep_original=True).redact_call(evs)
    assert "".join(kept.originals[i]["digit"] for i in sorted(kept.originals)) == CARD
    assert CARD not in "".join(e.digit for e in kept.events)


@pytest.mark.parametrize(
    ("digits", "masked"),
    [
        (CARD[:-1] + str((int(CARD[-1]) + 1) % 10), False),  # fails Luhn: an order number stays
        ("4111111111111111", True),
        ("378282246310005", True),  # 15-digit Amex
        ("79927398713", False),  # Luhn-valid but too short for a card
    ],
)
def test_dtmf_card_needs_luhn_and_card_length(digits, masked):
    out = Redactor().redact_events(_keys("d", digits, 1.0))
    assert all(e.digit == MASKED_DIGIT for e in out) is masked
    assert any(e.digit == MASKED_DIGIT for e in out) is masked


def test_dtmf_runs_split_at_pauses_other_keys_and_ivr_nodes():
    half = len(CARD) // 2
    paused = [*_keys("d", CARD[:half], 1.0), *_keys("d", CARD[half:], 30.0)]
    starred = _keys("d", CARD[:half] + "*" + CARD[half:], 1.0)
    other_call = [*_keys("a", CARD[:half], 1.0), *_keys("b", CARD[half:], 3.0)]
    for evs in (paused, starred, other_call):
        assert MASKED_DIGIT not in "".join(e.digit for e in Redactor().redact_events(evs))
    nodes = [IvrStep(call_id="d", t=0.5, node="menu", action="enter"), *_keys("d", "2", 1.0),
             IvrStep(call_id="d", t=1.5, node="pay", action="enter"), *_keys("d", CARD, 2.0)]
    out = Redactor().redact_events(nodes)
    assert "".join(e.digit for e in out if isinstance(e, DtmfDigit)) == "2" + MASKED_DIGIT * len(CARD)


def test_card_in_a_non_secure_collect_detail_is_masked():
    step = IvrStep(call_id="d", t=5.0, node="payment", action="collect", detail={"digits": CARD, "tries": 1})
    out = Redactor().redact_event(step)
    assert out.detail == {"digits": MASKED_DIGIT * len(CARD), "tries": 1}
    order = IvrStep(call_id="d", t=5.0, node="orders", action="collect", detail={"digits": "12345678"})
    assert Redactor().redact_event(order) is order


# -- deny by default: the redactor follows the events' declarations -----------------------------


@dataclass(frozen=True, kw_only=True)
class CoachingHint(Event):
    """A new event type, declared by the book: the redactor needs no change to handle it."""

    type: ClassVar[EventType] = EventType.SUMMARY  # borrowed, never registered
    meta: ClassVar[EventMeta] = EventMeta(category=Category.ALERTS, pii={"quote": Pii.TEXT}, safe=("rule",))
    rule: str = ""
    quote: str = ""


@dataclass(frozen=True, kw_only=True)
class Undeclared(Event):
    """Text fields nobody declared: redacted as free text, never passed through."""

    type: ClassVar[EventType] = EventType.SUMMARY
    note: str = ""
    lines: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    said: tuple[Word, ...] = ()
    count: int = 0


def test_a_declared_new_event_is_redacted_without_touching_the_redactor():
    hint = CoachingHint(call_id="n", t=1.0, rule="card 4111 1111 1111 1111", quote="my card is 4111 1111 1111 1111")
    out = Redactor().redact_event(hint)
    assert out.quote == "my card is [CARD]"
    assert out.rule == hint.rule  # declared safe: the rule's own text is ours


def test_undeclared_text_fields_are_treated_as_personal_data():
    text = "my ssn is 123-45-6789"
    words = tuple(Word(w, i * 0.5, i * 0.5 + 0.4) for i, w in enumerate("card 4111 1111 1111 1111 ok".split()))
    event = Undeclared(call_id="u", t=1.0, note=text, lines=(text, "fine"), extra={"said": text, "n": CARD},
                       said=words, count=4111111111111111)
    out = Redactor().redact_event(event)
    assert out.note == "my ssn is [SSN]"
    assert out.lines == ("my ssn is [SSN]", "fine")
    assert out.extra == {"said": "my ssn is [SSN]", "n": MASKED_DIGIT * len(CARD)}
    assert [w.word for w in out.said] == ["card", "[CARD]", "ok"]
    assert out.count == event.count  # not text-like: left alone
    assert "123-45-6789" not in json.dumps(out.to_dict()) and CARD not in json.dumps(out.to_dict())


def test_undeclared_text_follows_secure_ivr_input_too():
    r = Redactor(secure_ivr_nodes={"pin"})
    r.redact_event(IvrStep(call_id="s", t=0.0, node="pin", action=IvrAction.ENTER))
    assert r.redact_event(Undeclared(call_id="s", t=1.0, note="it is 4 7 1 1")).note == "it is [REDACTED]"


def test_every_kind_of_personal_data_has_a_rule_and_addresses_are_kept():
    r = Redactor()
    assert set(r._rules) == set(Pii)
    started = CallStarted(call_id="c", caller="sip:+15551234567@127.0.0.1", callee="sip:ivr@127.0.0.1")
    assert r.redact_event(started) is started  # calls are filed and searched by caller
