"""compare() on scripted event lists: one passing call, then each kind of mismatch."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from qa import (
    Expectation,
    ExpectationError,
    Mismatch,
    compare,
    expectation_for,
    load_expectation,
    parse_expectation,
)
from speech.events import (
    CallEnded,
    CallStarted,
    DeadAirEnded,
    DeadAirStarted,
    DtmfDigit,
    Event,
    FinalTranscript,
    TalkOver,
    ToneAlert,
    ToneUpdate,
)
from speech.frames import Party

FULL = {
    "schema": 1,
    "keywords": [["bill", "billing"], ["charged", "charge"]],
    "keywords_party": "caller",
    "dead_air": [{"start": 6.1, "end": 13.1}],
    "dead_air_tolerance": 0.5,
    "tone": {"final_label_in": ["calm", "neutral"], "max_label": "neutral", "alert": False},
    "dtmf": "1234#4512",
    "talk_over": [{"started_by": "caller", "start": 9.0, "tolerance": 0.5}],
    "min_duration": 20.0,
    "max_duration": 40.0,
}


def good_call() -> list[Event]:
    """A call that meets FULL exactly as a real pipeline would report it (times a bit off)."""
    c, a = Party.CALLER, Party.AGENT
    return [
        CallStarted(t=0.0),
        FinalTranscript(t=3.0, party=c, text="Hello I have a question about my BILL"),
        ToneUpdate(t=3.1, party=c, label="calm"),
        *[DtmfDigit(t=4.0 + i * 0.2, party=c, digit=d) for i, d in enumerate("1234#")],
        DeadAirStarted(t=11.2, start=6.3, threshold=5.0),
        TalkOver(t=9.4, started_by=c, interrupted=a, start=9.2, end=9.9, duration=0.7),
        DeadAirEnded(t=13.0, start=6.3, end=12.9, duration=6.6),
        FinalTranscript(t=16.0, party=c, text="i was charged, twice."),
        ToneUpdate(t=16.1, party=c, label="neutral"),
        *[DtmfDigit(t=17.0 + i * 0.2, party=c, digit=d) for i, d in enumerate("4512")],
        CallEnded(t=25.0, duration=25.0),
    ]


def exp(**overrides) -> Expectation:
    return parse_expectation({**FULL, **overrides})


def only(mismatches: list[Mismatch], check: str) -> list[Mismatch]:
    assert mismatches, "expected a mismatch"
    assert {m.check for m in mismatches} == {check}, mismatches
    return mismatches


def replace(events: list[Event], cls: type, **changes) -> list[Event]:
    return [dataclasses.replace(e, **changes) if isinstance(e, cls) else e for e in events]


def drop(events: list[Event], cls: type) -> list[Event]:
    return [e for e in events if not isinstance(e, cls)]


def test_good_call_passes_every_check():
    assert compare(exp(), good_call()) == []


def test_events_rebuilt_from_json_compare_the_same():
    rebuilt = [Event.from_dict(json.loads(json.dumps(e.to_dict()))) for e in good_call()]
    assert compare(exp(), rebuilt) == []


def test_absent_keys_are_not_checked():
    assert compare(parse_expectation({"schema": 1}), [ToneAlert(t=1.0), DtmfDigit(digit="9")]) == []
    assert compare(Expectation(), []) == []


# -- keywords -------------------------------------------------------------------------------


def test_missing_keyword_group_is_reported_once_per_group():
    events = [e for e in good_call() if not (isinstance(e, FinalTranscript) and "charged" in e.text)]
    (m,) = only(compare(exp(), events), "keywords")
    assert "charged" in m.expected and "charge" in m.expected
    assert "1 final transcript" in m.got


def test_keywords_match_whole_words_only():
    events = replace(good_call(), FinalTranscript, text="billboard discharged")
    assert len(only(compare(exp(), events), "keywords")) == 2


def test_keywords_party_filters_transcripts():
    events = replace(good_call(), FinalTranscript, party=Party.AGENT)
    ms = only(compare(exp(), events), "keywords")
    assert len(ms) == 2 and "caller" in ms[0].got
    any_party = parse_expectation({"schema": 1, "keywords": FULL["keywords"]})
    assert compare(any_party, events) == []


def test_keyword_phrase_must_appear_within_one_transcript():
    e = parse_expectation({"schema": 1, "keywords": [["speak to a manager"]]})
    assert compare(e, [FinalTranscript(text="I want to speak to a Manager!")]) == []
    split = [FinalTranscript(text="I want to speak"), FinalTranscript(text="to a manager")]
    only(compare(e, split), "keywords")


def test_partial_transcripts_do_not_count():
    from speech.events import PartialTranscript

    e = parse_expectation({"schema": 1, "keywords": [["refund"]]})
    only(compare(e, [PartialTranscript(text="refund"), FinalTranscript(text="re fund")]), "keywords")


# -- dead air -------------------------------------------------------------------------------


def test_dead_air_outside_tolerance_is_reported_with_what_was_found():
    events = replace(good_call(), DeadAirEnded, start=6.3, end=12.4)
    (m,) = only(compare(exp(), events), "dead_air")
    assert "6.10-13.10" in m.expected and "6.30-12.40" in m.got


def test_missing_dead_air():
    events = drop(drop(good_call(), DeadAirEnded), DeadAirStarted)
    (m,) = only(compare(exp(), events), "dead_air")
    assert m.got == "no dead air"


def test_unexpected_dead_air_is_reported_and_empty_list_means_none():
    events = good_call() + [DeadAirEnded(t=20.0, start=14.0, end=19.8)]
    (m,) = only(compare(exp(), events), "dead_air")
    assert m.got.startswith("unexpected 14.00-19.80")
    assert compare(parse_expectation({"schema": 1, "dead_air": []}), [DeadAirEnded(start=1.0, end=7.0)])


def test_dead_air_open_at_hangup_ends_at_call_end():
    e = parse_expectation({"schema": 1, "dead_air": [{"start": 14.0, "end": 20.0}]})
    events = [DeadAirStarted(t=19.0, start=14.1), CallEnded(t=20.0, duration=20.0)]
    assert compare(e, events) == []
    (m,) = only(compare(e, [DeadAirStarted(t=19.0, start=14.1), CallEnded(t=25.0, duration=25.0)]), "dead_air")
    assert "14.10-25.00" in m.got


def test_dead_air_split_in_two_is_one_mismatch_not_three():
    events = drop(good_call(), DeadAirEnded) + [
        DeadAirEnded(t=9.0, start=6.1, end=9.0),
        DeadAirEnded(t=13.1, start=9.5, end=13.1),
    ]
    assert len(only(compare(exp(), events), "dead_air")) == 1


# -- tone -----------------------------------------------------------------------------------


def test_final_tone_label_not_in_allowed_set():
    events = good_call()
    i = max(i for i, e in enumerate(events) if isinstance(e, ToneUpdate))
    events[i] = dataclasses.replace(events[i], label="tense")
    ms = compare(exp(), events)
    assert {m.check for m in ms} == {"tone.final_label_in", "tone.max_label"}
    assert next(m for m in ms if m.check == "tone.final_label_in").got == "tense"


def test_max_label_exceeded_midway_even_if_call_ends_calm():
    events = good_call()
    events.insert(3, ToneUpdate(t=3.5, party=Party.CALLER, label="angry"))
    (m,) = only(compare(exp(), events), "tone.max_label")
    assert m.got == "angry"


def test_tone_alert_expected_or_forbidden():
    ms = only(compare(exp(), good_call() + [ToneAlert(t=18.0, label="tense")]), "tone.alert")
    assert ms[0].expected == "no alert"
    angry = parse_expectation({"schema": 1, "tone": {"final_label_in": ["tense", "angry"], "alert": True}})
    ms = compare(angry, [ToneUpdate(label="neutral")])
    assert {m.check for m in ms} == {"tone.final_label_in", "tone.alert"}


def test_no_tone_update_fails_final_label():
    (m,) = only(compare(exp(), drop(good_call(), ToneUpdate)), "tone.final_label_in")
    assert m.got == "no tone update"


# -- dtmf, talk-over, duration --------------------------------------------------------------


def test_dtmf_must_match_exactly_in_order():
    events = good_call()
    digits = [i for i, e in enumerate(events) if isinstance(e, DtmfDigit)]
    events[digits[0]], events[digits[1]] = events[digits[1]], events[digits[0]]
    (m,) = only(compare(exp(), events), "dtmf")
    assert m.got == "'2134#4512'"
    only(compare(exp(), drop(good_call(), DtmfDigit)), "dtmf")


def test_talk_over_wrong_party_wrong_time_and_extra():
    (m,) = only(compare(exp(), replace(good_call(), TalkOver, started_by=Party.AGENT)), "talk_over")
    assert m.expected.startswith("started by caller at 9.00") and m.got == "started by agent at 9.20 s"
    (m,) = only(compare(exp(), replace(good_call(), TalkOver, start=10.0)), "talk_over")
    assert "10.00" in m.got
    extra = good_call() + [TalkOver(t=21.0, started_by=Party.AGENT, start=20.5)]
    (m,) = only(compare(exp(), extra), "talk_over")
    assert m.got.startswith("unexpected started by agent")


def test_duration_out_of_range_or_call_never_ended():
    (m,) = only(compare(exp(), replace(good_call(), CallEnded, duration=41.5)), "duration")
    assert m.got == "41.50 s"
    only(compare(exp(), replace(good_call(), CallEnded, duration=19.0)), "duration")
    (m,) = only(compare(exp(), drop(good_call(), CallEnded)), "duration")
    assert m.got == "no call.ended event"


def test_every_kind_of_mismatch_at_once():
    events = [CallStarted(t=0.0), ToneAlert(t=1.0), ToneUpdate(t=1.0, label="angry")]
    checks = {m.check for m in compare(exp(), events)}
    assert checks == {"keywords", "dead_air", "tone.final_label_in", "tone.max_label", "tone.alert",
                      "dtmf", "talk_over", "duration"}


# -- loading --------------------------------------------------------------------------------


def write(tmp_path: Path, content: str, name: str = "call.expect.json") -> Path:
    p = tmp_path / name
    p.write_text(content)
    return p


def test_load_round_trip(tmp_path):
    e = load_expectation(write(tmp_path, json.dumps(FULL)))
    assert e.keywords == (("bill", "billing"), ("charged", "charge"))
    assert e.keywords_party is Party.CALLER
    assert e.dead_air[0].start == 6.1 and e.tone.max_label == "neutral" and e.tone.alert is False
    assert e.talk_over[0].started_by is Party.CALLER and e.dtmf == "1234#4512"
    assert e.source.name == "call.expect.json"


@pytest.mark.parametrize(
    "content, words",
    [
        ('{"schema": 1, "keywords": [["a"]', "malformed JSON"),
        ('[1, 2]', "JSON object"),
        ('{"keywords": []}', "schema"),
        ('{"schema": 2}', "schema 2"),
        ('{"schema": 1, "keyword": []}', "unknown key(s): keyword"),
        ('{"schema": 1, "keywords": ["bill"]}', "keywords[0]"),
        ('{"schema": 1, "keywords_party": "boss"}', "keywords_party"),
        ('{"schema": 1, "dead_air": [{"start": 5, "end": 2}]}', "dead_air[0]"),
        ('{"schema": 1, "dead_air": [{"start": "5", "end": 7}]}', "dead_air[0].start"),
        ('{"schema": 1, "tone": {"max_label": "furious"}}', "tone.max_label"),
        ('{"schema": 1, "tone": {"final_label_in": []}}', "tone.final_label_in"),
        ('{"schema": 1, "tone": {"alert": "yes"}}', "tone.alert"),
        ('{"schema": 1, "tone": {"mood": "x"}}', "unknown tone key"),
        ('{"schema": 1, "dtmf": "12x"}', "dtmf"),
        ('{"schema": 1, "talk_over": [{"start": 9}]}', "talk_over[0]"),
        ('{"schema": 1, "min_duration": true}', "min_duration"),
        ('{"schema": 1, "max_duration": -1}', "max_duration"),
    ],
)
def test_malformed_files_raise_with_file_name(tmp_path, content, words):
    path = write(tmp_path, content, "broken_call.expect.json")
    with pytest.raises(ExpectationError) as info:
        load_expectation(path)
    assert "broken_call.expect.json" in str(info.value)
    assert words in str(info.value)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ExpectationError, match="nope.expect.json: file not found"):
        load_expectation(tmp_path / "nope.expect.json")


def test_informational_keys_are_accepted(tmp_path):
    e = load_expectation(write(tmp_path, '{"schema": 1, "comment": "x", "rendered": {"duration": 3}}'))
    assert e.keywords is None and e.dead_air is None


def test_expectation_for_sibling_and_g711_copies(tmp_path):
    own = write(tmp_path, "{}", "call.expect.json")
    assert expectation_for(tmp_path / "call.wav") == own
    assert expectation_for(tmp_path / "call_8k_ulaw.wav") == own
    assert expectation_for(tmp_path / "call_8k_alaw.wav") == own
    special = write(tmp_path, "{}", "call_8k_alaw.expect.json")
    assert expectation_for(tmp_path / "call_8k_alaw.wav") == special
    assert expectation_for(tmp_path / "other.wav") is None
    assert expectation_for(tmp_path / "other_8k_ulaw.wav") is None


def test_dead_air_elsewhere_is_missing_plus_unexpected():
    events = replace(good_call(), DeadAirEnded, start=16.0, end=23.0)
    ms = only(compare(exp(), events), "dead_air")
    assert [m.got for m in ms] == ["no dead air", "unexpected 16.00-23.00 s"]
