"""De-escalation cues and the script checklist on scripted events, through the real pipeline
(tests/stage_harness.py): triggers, cooldown, acknowledgement window, tension trajectory, the
summary, the checklist ticking and following the queue, and the files' validation."""

from __future__ import annotations

import asyncio

import pytest

from assist.checklist import ChecklistFile, ChecklistSettings, ChecklistStage, load_checklists
from assist.cues import CueSettings, CueStage
from assist.files import AssistFileError, parse_model
from assist.phrases import PhraseMatcher
from assist.playbook import Playbook, load_playbook
from speech.events import (
    AssistCue,
    AssistCueOutcome,
    CallStarted,
    ChecklistUpdate,
    Event,
    FinalTranscript,
    PartyJoined,
    ToneAlert,
    ToneUpdate,
)
from speech.frames import Party
from summaries.summarizer import summarize
from tests.stage_harness import drive, frames_from_tracks, silence

C, A = Party.CALLER, Party.AGENT


def final(t: float, party: Party, text: str, start: float | None = None) -> FinalTranscript:
    return FinalTranscript(t=t, party=party, text=text, start=t - 2.0 if start is None else start, end=t)


def tense_call(ack: str) -> list[Event]:
    return [
        ToneUpdate(t=4.0, party=C, label="neutral", score=0.3),
        final(9.0, C, "this is the third time I am calling"),
        ToneUpdate(t=9.0, party=C, label="tense", score=0.6),
        ToneAlert(t=9.0, party=C, kind="rising_tension", label="tense", score=0.6, reasons=("pitch up 25%",)),
        final(13.0, A, ack, start=11.0),
        ToneUpdate(t=17.0, party=C, label="calm", score=0.2),
        final(17.0, C, "okay thank you"),
    ]


def run(stages, events: list[Event], end: float = 60.0) -> list[Event]:
    return asyncio.run(drive(stages, frames_from_tracks({C: silence(end)}), inject=events, end=end))


def test_escalation_phrase_raises_one_cue_with_playbook_phrases_and_the_outcome():
    out = run([CueStage(CueSettings())], tense_call("I understand, and I am sorry for the trouble"))
    cues = [e for e in out if isinstance(e, AssistCue)]
    assert len(cues) == 1  # the tone alert at the same time falls in the cooldown
    cue = cues[0]
    assert (cue.t, cue.trigger, cue.reasons) == (9.0, "phrase", ('said "third time"',))
    assert set(cue.phrases) == {"acknowledge", "validate", "take_ownership", "next_step"}
    (outcome,) = [e for e in out if isinstance(e, AssistCueOutcome)]
    assert outcome.acknowledged and outcome.ack_t == 11.0 and outcome.ack_phrase == "I understand"
    assert outcome.scores == (0.6, 0.2) and outcome.tension == "eased"
    summary = summarize([CallStarted(t=0.0), *tense_call("x"), *out])
    assert [(c.t, c.trigger, c.acknowledged, c.tension) for c in summary.cues] == [(9.0, "phrase", True, "eased")]


def test_no_acknowledgement_and_a_late_one_are_told_apart():
    (outcome,) = [e for e in run([CueStage(CueSettings())], tense_call("please restart your router"))
                  if isinstance(e, AssistCueOutcome)]
    assert not outcome.acknowledged and outcome.ack_t is None
    late = tense_call("x")[:-3] + [final(40.0, A, "I am so sorry about that", start=38.0)]
    (outcome,) = [e for e in run([CueStage(CueSettings(ack_window_s=10))], late) if isinstance(e, AssistCueOutcome)]
    assert not outcome.acknowledged and outcome.tension == "unknown"


def test_tone_alert_alone_raises_a_cue_with_its_reasons():
    events = [ToneAlert(t=5.0, party=C, kind="angry", label="angry", score=0.9, reasons=("lexical: ridiculous",)),
              ToneUpdate(t=8.0, party=C, label="angry", score=0.95),
              ToneAlert(t=30.0, party=C, kind="angry", label="angry", score=0.9, reasons=("loud",))]
    cues = [e for e in run([CueStage(CueSettings(cooldown_s=20))], events) if isinstance(e, AssistCue)]
    assert [(c.t, c.trigger) for c in cues] == [(5.0, "tone"), (30.0, "tone")]
    assert cues[0].reasons == ("tone angry: angry", "lexical: ridiculous")


def test_outcome_waits_for_its_windows_on_the_call_clock():
    """Decided once the clock passed max(window, trajectory) + settle, not at the end of the call."""
    settings = CueSettings(ack_window_s=5, trajectory_s=10, settle_s=2)
    stage = CueStage(settings)
    stage.process_event(final(9.0, C, "get me a supervisor"))
    assert stage.tracker.advance(20.9) == []
    (outcome,) = stage.tracker.advance(21.0)
    assert isinstance(outcome, AssistCueOutcome) and outcome.cue_t == 9.0


def test_fuzzy_phrases():
    m = PhraseMatcher(("I understand", "so what I'm hearing is"), threshold=85)
    assert m.match("yes I under stand that") == "I understand"
    assert m.match("So what I am hearing is you were charged twice") == "so what I'm hearing is"
    assert m.match("I stand by it") is None
    assert PhraseMatcher(("cancel",), fuzzy=False).match("can sell") is None


def test_playbook_validation_names_file_and_path(tmp_path):
    assert load_playbook().escalation_phrases
    with pytest.raises(AssistFileError, match=r"steps: value error|steps: step 'validate' has no phrases"):
        parse_model({"escalation_phrases": ["x"], "steps": {"validate": []}, "acknowledgements": ["y"]}, Playbook)
    bad = tmp_path / "playbook.yaml"
    bad.write_text("escalation_phrases: []\nsteps: {a: [x]}\nacknowledgements: ['']\nextra: 1\n")
    with pytest.raises(AssistFileError) as err:
        load_playbook(bad)
    text = str(err.value)
    assert text.startswith(f"{bad}: escalation_phrases: ")
    assert "acknowledgements: phrases must not be empty" in text and "extra: unknown key" in text


# -- checklist -------------------------------------------------------------------------------


def test_checklist_ticks_as_the_agent_says_it_and_follows_the_queue():
    events = [
        final(3.0, A, "thank you for calling, how can I help you?"),
        final(6.0, C, "thank you for calling me back"),  # the caller: never ticks
        PartyJoined(t=7.0, party=A, agent_id="alice", queue="billing"),
        final(10.0, A, "can you confirm your acount number please"),
        final(20.0, A, "is there anything else I can help you with"),
    ]
    out = [e for e in run([ChecklistStage(ChecklistSettings())], events, end=25.0)
           if isinstance(e, ChecklistUpdate)]
    assert [(e.queue, e.ticked) for e in out] == [
        ("default", ""), ("default", "greeting"), ("billing", ""), ("billing", "verification"), ("billing", "closing")]
    last = out[-1]
    assert last.done == {"greeting": 1.0, "verification": 8.0, "closing": 18.0}
    assert "refund_terms" in last.items and "disclosure" not in last.done
    note = summarize([CallStarted(t=0.0), *events, *out]).checklist
    assert note is not None and note.queue == "billing"
    assert note.items["greeting"] == 1.0 and note.items["disclosure"] is None
    assert note.labels["verification"] == "Identity verification"


def test_checklist_file_validation(tmp_path):
    assert "default" in load_checklists().checklists
    with pytest.raises(AssistFileError, match=r"checklists: value error, queue 'q': item id\(s\) a used twice|"
                                             r"checklists: queue 'q': item id\(s\) a used twice"):
        parse_model({"checklists": {"q": [{"id": "a", "label": "A", "phrases": ["x"]},
                                          {"id": "a", "label": "B", "phrases": ["y"]}]}}, ChecklistFile)
    with pytest.raises(AssistFileError, match=r"checklists\.q\[0\]\.phrases: tuple should have at least 1 item"):
        parse_model({"checklists": {"q": [{"id": "a", "label": "A", "phrases": []}]}}, ChecklistFile)


def test_report_lines_say_whether_the_agent_acknowledged():
    from summaries.report import format_summary_brief

    out = run([CueStage(CueSettings()), ChecklistStage(ChecklistSettings())],
              tense_call("I understand, and I am sorry for the trouble"))
    text = format_summary_brief(summarize([CallStarted(t=0.0), *tense_call("x"), *out]))
    assert 'Cue:        9.0s (phrase: said "third time") -> acknowledged at 11.0s; caller tension eased' in text
    assert "Checklist:  default: 0/4 said; missing greeting, verification, disclosure, closing" in text


def test_a_caller_only_call_has_nobody_to_acknowledge():
    events = [e for e in tense_call("x") if e.party is not A]
    out = run([CueStage(CueSettings())], events)
    (outcome,) = [e for e in out if isinstance(e, AssistCueOutcome)]
    assert outcome.acknowledged is None and outcome.render().endswith("no agent to acknowledge; tension eased")
    summary = summarize([CallStarted(t=0.0), *events, *out])
    assert [c.acknowledged for c in summary.cues] == [None]
    from summaries.report import format_summary_brief

    assert "-> no agent to acknowledge; caller tension eased" in format_summary_brief(summary)
