"""The ``transcript`` check: a word-error bound per party against what the recording says.

The bound is what lets the QA suite catch a recognizer that gets worse (keywords alone pass as
long as a few words survive). WER is counted on normalized words, so Whisper's "$25" and
"Mr." are not errors against "twenty five dollars" and "mister".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa import Expectation, ExpectationError, compare, load_expectation, parse_expectation
from qa.wer import normalize, wer
from speech.events import CallEnded, Event, FinalTranscript
from speech.frames import Party
from tests.conftest import FIXTURES

REF = "I was charged twenty five dollars twice on my bill. Please refund the money to my account."


def _events(*finals: tuple[Party, str]) -> list[Event]:
    out: list[Event] = [FinalTranscript(call_id="q", t=float(i + 1), party=p, text=t, start=float(i), end=float(i + 1))
                        for i, (p, t) in enumerate(finals)]
    return [*out, CallEnded(call_id="q", t=10.0, duration=10.0)]


def _exp(max_wer: float, party: str | None = "caller") -> Expectation:
    bound: dict[str, object] = {"reference": REF, "max_wer": max_wer}
    if party:
        bound["party"] = party
    return parse_expectation({"schema": 1, "transcript": [bound]})


def test_normalize_spells_out_what_whisper_writes_as_numerals() -> None:
    assert normalize("Mr. Dashwood paid $25.50 on the 3rd, OK?") == \
        "mister dashwood paid twenty five dollars fifty cents on the third okay"
    assert normalize("My card is 4111-1111.") == "my card is four one one one one one one one"
    assert normalize("ill-disposed") == "ill disposed"


def test_within_bound_passes_and_a_worse_recognizer_fails() -> None:
    good = _events((Party.CALLER, "I was charged $25 twice on my bill."),
                   (Party.CALLER, "Please refund the money to my account."))
    assert compare(_exp(0.1), good) == []
    worse = _events((Party.CALLER, "I was charged twice on my wheel."),
                    (Party.CALLER, "Please refer to my mother to my account."))
    (m,) = compare(_exp(0.1), worse)
    assert m.check == "transcript.wer (caller)" and m.expected == "<= 0.10"
    assert "errors in 17 words" in m.got
    assert "refer" not in str(m) and "wheel" not in str(m)  # rates and counts, never the words


def test_only_the_bounded_party_counts_and_no_party_means_all() -> None:
    events = _events((Party.AGENT, "Hello, how can I help?"), (Party.CALLER, REF))
    assert compare(_exp(0.0), events) == []
    (m,) = compare(_exp(0.2, party=None), events)  # the agent's words are insertions
    assert m.check == "transcript.wer"


def test_nothing_heard_is_a_word_error_rate_of_one() -> None:
    (m,) = compare(_exp(0.5), _events((Party.AGENT, REF)))
    assert m.got.startswith("1.00")
    assert wer([REF], [""]).wer == 1.0


@pytest.mark.parametrize(
    ("bound", "path", "words"),
    [
        ({"reference": REF}, "transcript[0].max_wer", ["is required"]),
        ({"reference": REF, "max_wer": 1.5}, "transcript[0].max_wer", ["1.5"]),
        ({"reference": " ", "max_wer": 0.1}, "transcript[0].reference", ["must not be blank"]),
        ({"reference": REF, "max_wer": 0.1, "party": "boss"}, "transcript[0].party", ["'boss'"]),
        ({"reference": REF, "max_wer": 0.1, "wer": 0.1}, "transcript[0]", ["unknown transcript key(s): wer"]),
    ],
)
def test_broken_bounds_name_the_path(tmp_path: Path, bound: dict[str, object], path: str, words: list[str]) -> None:
    f = tmp_path / "call.expect.json"
    f.write_text(json.dumps({"schema": 1, "transcript": [bound]}))
    with pytest.raises(ExpectationError) as info:
        load_expectation(f)
    assert info.value.path == path, str(info.value)
    for word in words:
        assert word in str(info.value)


def test_transcript_must_be_a_list(tmp_path: Path) -> None:
    f = tmp_path / "call.expect.json"
    f.write_text(json.dumps({"schema": 1, "transcript": {"reference": REF, "max_wer": 0.1}}))
    with pytest.raises(ExpectationError, match="must be a list"):
        load_expectation(f)


@pytest.mark.parametrize("name", ["calm_billing", "angry_repeat", "dead_air", "dtmf_menu", "talk_over"])
def test_every_fixture_bounds_every_speaking_party(name: str) -> None:
    exp = load_expectation(FIXTURES / f"{name}.expect.json")
    assert exp.transcript, name
    parties = {b.party for b in exp.transcript}
    speakers = {Party(s["party"]) for s in exp.rendered["speech"]}
    assert parties == speakers
    assert all(0 < b.max_wer < 0.5 for b in exp.transcript)
    # The reference is the script itself: the perfect transcript passes.
    perfect = _events(*((b.party or Party.CALLER, b.reference) for b in exp.transcript))
    assert not [m for m in compare(exp, perfect) if m.check.startswith("transcript")]
