"""Live rules (assist.rules): the file's validation, each condition on scripted events, the same
matches whatever the granularity of the clock, and ``callcenter rules test`` on event logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assist.files import AssistFileError, parse_model
from assist.rules import RulesEngine, is_question
from assist.rules_model import RulesFile, load_rules
from callcenter.call_inputs import read_event_log
from callcenter.cli import main
from callcenter.rules_cli import evaluate_events
from speech.events import (
    CallEnded,
    CallStarted,
    DeadAirEnded,
    DeadAirStarted,
    Event,
    FinalTranscript,
    RuleMatched,
    SpeechStarted,
    TalkOver,
    ToneUpdate,
)
from speech.frames import Party
from summaries.sample_calls import angry_tech_call, billing_call, utterance
from summaries.summarizer import summarize

C, A = Party.CALLER, Party.AGENT

RULES = {"rules": [
    {"name": "repeat_contact", "when": [{"said": ["third time"], "party": "caller"}],
     "then": {"categories": ["repeat_contact"], "alert": "Repeat caller", "notify": ["agent", "supervisor"]}},
    {"name": "no_disclosure", "when": [{"not_said": ["this call may be recorded"], "by_s": 10}],
     "then": {"categories": ["compliance_risk"]}},
    {"name": "upset", "when": [{"tone": ["tense", "angry"], "held_s": 5}], "then": {"alert": "Caller upset"}},
    {"name": "long_silence", "when": [{"dead_air_s": 5}], "then": {"categories": ["dead_air"]}},
    {"name": "talk_over", "when": [{"talk_over_count": 1, "by": "caller"}], "then": {"categories": ["interrupting"]}},
    {"name": "unanswered", "when": [{"unanswered_question_s": 4}], "then": {"alert": "Answer the caller"}},
    {"name": "angry_and_repeat", "when": [{"said": ["ridiculous"], "fuzzy": True}, {"tone": ["angry"]}],
     "then": {"categories": ["escalation"]}},
]}


def rules() -> RulesFile:
    return parse_model(RULES, RulesFile)


def fired(events: list[Event], *, step: float | None = None) -> list[tuple[str, float]]:
    """Rule name and time of each match; ``step``: also tick the clock this often (as frames do)."""
    engine = RulesEngine(rules(), settle_s=3.0)
    out: list[Event] = []
    clock = 0.0
    for e in events:
        if step is not None:
            while clock + step <= e.t:
                clock += step
                out += engine.advance(clock)
        clock = max(clock, e.t)
        out += engine.advance(clock)
        out += engine.on_event(e)
    out += engine.finish(clock)
    return [(e.rule, round(e.t, 3)) for e in out if isinstance(e, RuleMatched)]


def test_each_condition_fires_at_its_call_time():
    got = dict(fired(angry_tech_call()))
    assert got["repeat_contact"] == pytest.approx(1.0 + 0.35 * 11 + 0.3)  # the final's t (11 words)
    assert got["no_disclosure"] == 10.0
    assert got["upset"] == pytest.approx(10.0)  # tense at 5.0, still upset (angry) at 14.0: held 5 s
    assert got["angry_and_repeat"] == pytest.approx(10.0 + 0.35 * 11 + 0.3)  # the later of its two conditions
    assert "long_silence" not in got and "talk_over" not in got
    billing = dict(fired(billing_call()))
    assert billing["long_silence"] == 24.0  # dead air from 19.0, >= 5 s at 24.0
    assert billing["talk_over"] == 30.0


def test_matches_do_not_depend_on_how_often_the_clock_ticks():
    for call in (angry_tech_call(), billing_call()):
        assert fired(call) == fired(call, step=0.02) == fired(call, step=1.0)


def _question_call(answer_at: float | None) -> list[Event]:
    ev: list[Event] = [CallStarted(t=0.0)]
    ev += utterance("", C, 1.0, "can you tell me when the technician comes?")
    if answer_at is not None:
        ev.append(SpeechStarted(t=answer_at, party=A))
    ev.append(CallEnded(t=20.0, duration=20.0))
    return ev


def test_unanswered_question_only_when_no_agent_speech_follows_in_time():
    q_end = 1.0 + 0.35 * 8
    assert dict(fired(_question_call(None)))["unanswered"] == pytest.approx(q_end + 4)
    assert "unanswered" not in dict(fired(_question_call(q_end + 2)))
    assert dict(fired(_question_call(q_end + 6)))["unanswered"] == pytest.approx(q_end + 4)
    assert is_question("What is my balance") and is_question("my bill is wrong?")
    assert not is_question("I was charged twice.")


def test_a_late_final_before_the_deadline_still_counts_within_settle():
    """Live finals arrive after their t: a disclosure said at 8-9.5 s whose final comes at 11 s
    (clock already past 10 s) must still prevent the not-said match, as on the replay."""
    engine = RulesEngine(rules(), settle_s=3.0)
    assert not [e for e in engine.advance(11.0) if isinstance(e, RuleMatched)]
    engine.on_event(FinalTranscript(t=9.5, party=A, text="this call may be recorded", start=8.0, end=9.5))
    out = engine.advance(14.0) + engine.finish(20.0)
    assert "no_disclosure" not in [e.rule for e in out if isinstance(e, RuleMatched)]


def test_fuzzy_phrases_survive_recognizer_errors():
    ev = [FinalTranscript(t=3.0, party=C, text="this is ridiculus", start=1.0, end=3.0),
          ToneUpdate(t=3.0, party=C, label="angry", score=0.9)]
    assert "angry_and_repeat" in dict(fired(ev))


def test_dead_air_from_events_or_clock_alone():
    ev: list[Event] = [DeadAirStarted(t=7.0, start=2.0, threshold=5.0), DeadAirEnded(t=9.0, start=2.0, end=9.0, duration=7.0)]
    assert dict(fired(ev))["long_silence"] == 7.0
    assert dict(fired(ev[:1] + [CallEnded(t=12.0, duration=12.0)], step=0.02))["long_silence"] == 7.0
    short = [DeadAirStarted(t=5.0, start=1.0, threshold=4.0), DeadAirEnded(t=5.5, start=1.0, end=5.5, duration=4.5)]
    assert "long_silence" not in dict(fired(short))


def test_talk_over_counts_by_party():
    ev = [TalkOver(t=5.0, started_by=A, interrupted=C, start=4.0, end=5.0, duration=1.0)]
    assert "talk_over" not in dict(fired(ev))


def test_summary_carries_categories_and_rules():
    events = angry_tech_call()
    matches = evaluate_events(rules(), events)
    summary = summarize([*events, *(m.with_call_id("call-tech") for m in matches)])
    assert summary.categories == ("compliance_risk", "escalation", "repeat_contact")
    assert summary.checklist is None and summary.cues == ()
    assert [r.rule for r in summary.rules][0] == "repeat_contact"
    assert type(summary).from_dict(summary.to_dict()) == summary


@pytest.mark.parametrize(("data", "problem"), [
    ({"rules": [{"name": "a", "when": [{"sayd": ["x"]}], "then": {"alert": "x"}}]},
     "rules[0].when[0]: needs exactly one of said, not_said, tone"),
    ({"rules": [{"name": "a", "when": [{"dead_air_s": -1}], "then": {"alert": "x"}}]},
     "rules[0].when[0].dead_air_s: input should be greater than 0"),
    ({"rules": [{"name": "a", "when": [{"said": ["x"]}], "then": {}}]},
     "rules[0].then: needs categories, alert or webhook"),
    ({"rules": [{"name": "a", "when": [{"tone": ["furious"]}], "then": {"alert": "x"}}]},
     "rules[0].when[0].tone[0]: input should be 'calm', 'neutral', 'tense' or 'angry'"),
    ({"rules": [{"name": "a", "when": [{"said": ["x"], "by_s": 3}], "then": {"alert": "x"}}]},
     "rules[0].when[0].by_s: unknown key"),
    ({"rules": [{"name": "a", "when": [{"said": ["x"]}], "then": {"webhook": "ftp://crm"}}]},
     "rules[0].then.webhook: must be an http(s) URL"),
    ({"rules": [{"name": "a", "when": [{"said": ["x"]}], "then": {"alert": "x"}}] * 2},
     "rules: rule name 'a' is used twice"),
])
def test_validation_errors_name_file_path_and_problem(tmp_path, data, problem):
    import yaml

    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(AssistFileError) as err:
        load_rules(path)
    assert str(err.value).startswith(f"{path}: {problem}"), str(err.value)


def test_broken_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: [unclosed\n")
    with pytest.raises(AssistFileError, match=r"bad\.yaml: malformed YAML at line \d"):
        load_rules(bad)
    with pytest.raises(AssistFileError, match="missing.yaml: file not found"):
        load_rules(tmp_path / "missing.yaml")


def test_shipped_sample_rules_file_is_valid():
    sample = Path(__file__).parent.parent / "assist" / "defaults" / "rules.sample.yaml"
    assert {r.name for r in load_rules(sample).rules} >= {"supervisor_requested", "recording_disclosure"}


def test_rules_test_command_on_event_logs(tmp_path, capsys):
    import yaml

    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(yaml.safe_dump(RULES))
    log = tmp_path / "call.jsonl"
    log.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in angry_tech_call())
                   + json.dumps({"type": "qa.verdict", "ok": True}) + "\n")
    assert len(read_event_log(log)) == len(angry_tech_call())
    assert main(["--data-dir", str(tmp_path), "rules", "test", str(rules_path), str(log)]) == 0
    out = capsys.readouterr().out
    assert f"== {log}" in out
    assert "repeat_contact [repeat_contact] alert agent, supervisor: Repeat caller" in out
    assert "caller said third time at 5.1 s" in out or "caller said third time at 5.2 s" in out
    assert "categories: compliance_risk, escalation, repeat_contact; 4 rule(s) fired" in out
    assert main(["--data-dir", str(tmp_path), "rules", "test", "--json", str(rules_path), str(log)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["rule"] for x in lines] == ["repeat_contact", "no_disclosure", "upset", "angry_and_repeat"]
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [{name: a, when: [], then: {alert: x}}]\n")
    assert main(["--data-dir", str(tmp_path), "rules", "test", str(broken), str(log)]) == 2
    assert "broken.yaml: rules[0].when: tuple should have at least 1 item" in capsys.readouterr().out.lower()


def test_rules_test_replays_a_recording(tmp_path, capsys):
    """A recording goes through the real pipeline (no recognizer: only the VAD-driven rules)."""
    import yaml

    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(yaml.safe_dump({"rules": [
        {"name": "long_silence", "when": [{"dead_air_s": 6}], "then": {"categories": ["dead_air"]}}]}))
    wav = Path(__file__).parent.parent / "audio_fixtures" / "dead_air.wav"
    code = main(["--data-dir", str(tmp_path), "rules", "test", "--engine", "none", str(rules_path), str(wav)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "long_silence [dead_air]" in out
    t = float(out.split("long_silence")[0].split()[-2])
    assert 8.28 + 6 - 0.5 <= t <= 8.28 + 6 + 0.5  # 7.0 s of noise from 8.28 s


def test_wiring_adds_the_rules_stage_and_checks_files_at_start(tmp_path, caplog):
    import yaml

    from callcenter.settings import load_settings
    from callcenter.wiring import build_pipeline, check_assist_files

    good = tmp_path / "rules.yaml"
    good.write_text(yaml.safe_dump(RULES))
    settings = load_settings(environ={}, overrides={"data_dir": str(tmp_path), "asr.engine": "none",
                                                    "rules.file": str(good)})
    check_assist_files(settings)
    assert [s.name for s in build_pipeline("c", settings, None).stages][-2:] == ["cues", "rules"]
    good.write_text("rules: [{name: a}]\n")  # broken by an edit while serving
    with pytest.raises(AssistFileError, match=r"rules\.yaml: rules\[0\]\.when: is required"):
        check_assist_files(settings)
    assert "rules" not in [s.name for s in build_pipeline("c", settings, None).stages]
    assert "live rules switched off for this call" in caplog.text


def test_webhook_action_posts_the_signed_match_off_the_chain(tmp_path):
    """A real HTTP receiver (tests/webhook_receiver.py) that refuses a bad signature."""
    import asyncio

    from assist.rules_stage import RulesSettings, RulesStage
    from tests.stage_harness import drive, frames_from_tracks, silence
    from tests.test_webhook import SECRET, Receiver

    rcv = Receiver(tmp_path)
    rcv.start()
    try:
        hooked = parse_model({"rules": [{"name": "supervisor", "when": [{"said": ["supervisor"]}],
                                         "then": {"webhook": rcv.url, "categories": ["escalation"]}}]}, RulesFile)
        stage = RulesStage(RulesSettings(webhook_secret=SECRET), hooked)
        events = [FinalTranscript(t=2.0, party=C, text="get me a supervisor now", start=0.5, end=2.0)]
        out = asyncio.run(drive([stage], frames_from_tracks({C: silence(4.0)}), inject=events, end=4.0,
                                call_id="call-hook"))
        assert [e.rule for e in out if isinstance(e, RuleMatched)] == ["supervisor"]
        assert [(r["key"], r["call_id"]) for r in rcv.records()] == [("call-hook:supervisor", "call-hook")]
        unsigned = RulesStage(RulesSettings(webhook_secret="wrong"), hooked)
        asyncio.run(drive([unsigned], frames_from_tracks({C: silence(4.0)}), inject=events, end=4.0, call_id="c2"))
        assert len(rcv.records()) == 1  # the receiver refused the wrong signature (401)
    finally:
        rcv.stop()


def test_a_rules_file_is_parsed_once_and_again_when_it_changes(tmp_path):
    src = Path(__file__).resolve().parent.parent / "assist" / "defaults" / "rules.sample.yaml"
    path = tmp_path / "rules.yaml"
    path.write_text(src.read_text())
    first = load_rules(path)
    assert load_rules(path) is first  # the next call's stages reuse the parsed file
    path.write_text(src.read_text() + "\n# edited\n")
    edited = load_rules(path)
    assert edited is not first and edited == first  # re-read after the edit, same rules
    path.write_text("rules: [")
    with pytest.raises(AssistFileError, match="malformed YAML"):
        load_rules(path)  # a broken edit is reported, never the old parse served
