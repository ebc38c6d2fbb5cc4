"""The bridged-call recordings in audio_fixtures/ (issue 11): two live parties, a hold, per-side copies.

The stereo files follow the recordings' convention (channel 1 agent, channel 2 caller); the mono
copies in ``audio_fixtures/sides/`` are those channels alone, for SIP tests in which a test caller
and a test agent each play one side.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from qa import expectation_for, load_expectation
from speech.audio_io import load_recording
from speech.events import (
    CallEnded,
    CallStarted,
    Event,
    HoldEnded,
    HoldStarted,
    PartyJoined,
    TalkOver,
)
from speech.frames import Party
from summaries.sample_calls import utterance
from summaries.summarizer import summarize
from tests.conftest import FIXTURES, have
from tests.test_fixtures_render import load_render_script, rendered, window_db

CALLS = ["bridged_refund", "bridged_escalation"]
MAX_BYTES = 1_000_000
RATE = 8000
QUIET_DB = -54.0
"""The -60 dBFS noise floor, with margin: nobody speaks here."""


def script_utterances(name: str) -> list[tuple[str, float, str]]:
    """(party, start, text) of every utterance, from render.py's script and the rendered spans."""
    render = load_render_script()
    call = next(c for c in render.CALLS if c.name == name)
    texts = [(party, seg.text) for party, seg in call.script if isinstance(seg, render.Say)]
    spans = rendered(name)["speech"]
    assert [p for p, _ in texts] == [s["party"] for s in spans]
    return [(s["party"], s["start"], text) for (_, text), s in zip(texts, spans, strict=True)]


@pytest.mark.parametrize("name", CALLS)
def test_files_formats_and_sizes(name):
    for file_name, channels, subtype in [(f"{name}.wav", 2, "PCM_16"), (f"{name}_8k_ulaw.wav", 2, "ULAW"),
                                         (f"sides/{name}.caller.wav", 1, "PCM_16"), (f"sides/{name}.agent.wav", 1, "PCM_16")]:
        path = FIXTURES / file_name
        info = sf.info(str(path))
        assert (info.channels, info.samplerate, info.subtype) == (channels, RATE, subtype), file_name
        assert path.stat().st_size < MAX_BYTES, file_name
    rec = load_recording(FIXTURES / f"{name}.wav")
    assert set(rec.tracks) == {Party.AGENT, Party.CALLER}
    exp = load_expectation(expectation_for(FIXTURES / f"{name}.wav"))
    assert exp.min_duration <= rec.duration <= exp.max_duration
    assert expectation_for(FIXTURES / f"{name}_8k_ulaw.wav") == FIXTURES / f"{name}.expect.json"
    assert {b.party for b in exp.transcript} == {Party.CALLER, Party.AGENT}


@pytest.mark.parametrize("name", CALLS)
def test_sides_are_the_stereo_channels(name):
    """Channel 1 is the agent and channel 2 the caller, sample for sample, and each party's
    speech is only on its own channel."""
    stereo, _ = sf.read(str(FIXTURES / f"{name}.wav"), dtype="int16")
    agent, _ = sf.read(str(FIXTURES / f"sides/{name}.agent.wav"), dtype="int16")
    caller, _ = sf.read(str(FIXTURES / f"sides/{name}.caller.wav"), dtype="int16")
    assert np.array_equal(stereo[:, 0], agent) and np.array_equal(stereo[:, 1], caller)
    rec = load_recording(FIXTURES / f"{name}.wav")
    first = {p: next(s for s in rendered(name)["speech"] if s["party"] == p) for p in ("agent", "caller")}
    assert window_db(rec.tracks[Party.AGENT], first["agent"]["start"], first["agent"]["end"]) > -35.0
    assert window_db(rec.tracks[Party.CALLER], first["agent"]["start"], first["agent"]["end"]) < QUIET_DB
    assert window_db(rec.tracks[Party.CALLER], first["caller"]["start"], first["caller"]["end"]) > -35.0
    assert window_db(rec.tracks[Party.AGENT], first["caller"]["start"], first["caller"]["end"]) < QUIET_DB


def test_refund_call_holds_three_silent_seconds_that_are_not_dead_air():
    (hold,) = rendered("bridged_refund")["hold"]
    assert hold["by"] == "agent" and hold["end"] - hold["start"] == pytest.approx(3.0, abs=0.01)
    rec = load_recording(FIXTURES / "bridged_refund.wav")
    for party in (Party.AGENT, Party.CALLER):
        assert window_db(rec.tracks[party], hold["start"] + 0.05, hold["end"] - 0.05) < QUIET_DB
    speech = rendered("bridged_refund")["speech"]
    before = max(s["end"] for s in speech if s["end"] <= hold["start"])
    after = min(s["start"] for s in speech if s["start"] >= hold["end"])
    assert after - before >= load_render_script().DEAD_AIR_MIN_GAP_S, "the gap is long enough to be listed..."
    assert load_expectation(FIXTURES / "bridged_refund.expect.json").dead_air == (), "...but a hold is not dead air"


def test_refund_call_has_one_short_talk_over_by_the_caller():
    (over,) = load_expectation(FIXTURES / "bridged_refund.expect.json").talk_over
    assert over.started_by is Party.CALLER
    agent_end = max(s["end"] for s in rendered("bridged_refund")["speech"] if s["party"] == "agent" and s["start"] < over.start)
    assert agent_end - over.start == pytest.approx(0.6, abs=0.01)
    assert load_expectation(FIXTURES / "bridged_escalation.expect.json").talk_over == ()


def test_escalation_caller_gets_louder_and_the_agent_does_not():
    rec = load_recording(FIXTURES / "bridged_escalation.wav")
    speech = rendered("bridged_escalation")["speech"]
    levels = {p: [window_db(rec.tracks[Party(p)], s["start"], s["end"]) for s in speech if s["party"] == p]
              for p in ("caller", "agent")}
    assert levels["caller"] == sorted(levels["caller"]) and levels["caller"][-1] - levels["caller"][0] > 6.0
    assert max(levels["agent"]) - min(levels["agent"]) < 3.0
    exp = load_expectation(FIXTURES / "bridged_escalation.expect.json")
    assert exp.tone is not None and exp.tone.alert is True


def scripted_events(name: str) -> list[Event]:
    """What the live pipeline and the ACD would report for the script, words as written."""
    duration = rendered(name)["duration"]
    ev: list[Event] = [CallStarted(call_id=name), PartyJoined(call_id=name, t=0.0, party=Party.AGENT, agent_id="a1")]
    for party, start, text in script_utterances(name):
        ev += utterance(name, Party(party), start, text)
    for hold in rendered(name).get("hold", []):
        ev += [HoldStarted(call_id=name, t=hold["start"], party=Party.AGENT),
               HoldEnded(call_id=name, t=hold["end"], party=Party.AGENT, start=hold["start"], duration=hold["end"] - hold["start"])]
    for over in json.loads((FIXTURES / f"{name}.expect.json").read_text())["talk_over"]:
        ev.append(TalkOver(call_id=name, t=over["start"] + 0.6, started_by=Party(over["started_by"]), start=over["start"]))
    return [*ev, CallEnded(call_id=name, t=duration, duration=duration)]


def test_refund_script_summarizes_to_what_the_agent_did_and_promised():
    s = summarize(scripted_events("bridged_refund"))
    assert any("refunded" in a for a in s.actions_taken)
    assert [(f.owner, f.due) for f in s.follow_ups] == [("agent", "today")] and "email" in s.follow_ups[0].text
    assert s.hold.count == 1 and s.hold.total_s == pytest.approx(3.0, abs=0.01)
    assert s.talk_over_by == {"caller": 1, "agent": 0}
    assert s.agent_response_gap_s.count >= 1


def test_escalation_script_summarizes_to_a_technician_tomorrow():
    s = summarize(scripted_events("bridged_escalation"))
    assert s.actions_taken == (), "nothing was done on the call"
    assert [(f.owner, f.due) for f in s.follow_ups] == [("agent", "tomorrow morning")]
    assert s.hold.count == 0


@pytest.mark.skipif(not (have("espeak-ng") and have("sox")), reason="needs espeak-ng and sox")
def test_rerender_reproduces_the_bridged_refund_files(tmp_path):
    subprocess.run([sys.executable, str(FIXTURES / "render.py"), "--out", str(tmp_path), "--only", "bridged_refund"],
                   check=True, capture_output=True, timeout=120)
    for file_name in ("bridged_refund.wav", "bridged_refund.expect.json", "sides/bridged_refund.caller.wav",
                      "sides/bridged_refund.agent.wav"):
        assert (tmp_path / file_name).read_bytes() == (FIXTURES / file_name).read_bytes(), file_name


@pytest.mark.slow
def test_replayed_refund_call_summary_names_the_refund_and_the_email(tmp_path):
    """Through the real pipeline and the default recognizer: the agent's refund and promise."""
    out = subprocess.run(
        [sys.executable, "-m", "callcenter", "--data-dir", str(tmp_path / "var"), "replay", "--json", "--no-store",
         str(FIXTURES / "bridged_refund.wav")],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    summary = next(e["summary"] for e in map(json.loads, out.splitlines()) if e.get("type") == "summary")
    assert any("refund" in a.lower() for a in summary["actions_taken"])
    assert any("email" in f["text"].lower() and f["owner"] == "agent" for f in summary["follow_ups"])
    assert summary["talk_over_by"]["caller"] == 1
    assert summary["evidence"]["actions_taken"][0]["party"] == "agent"
