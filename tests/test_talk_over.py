"""TalkOverStage behind the real VAD on a two-party (agent, caller) stereo recording."""

from __future__ import annotations

import numpy as np
import pytest

from callcenter.settings import TalkOverSettings, VadSettings
from speech.audio_io import load_recording
from speech.events import SpeechEnded, SpeechStarted, TalkOver
from speech.frames import Party
from speech.talk_over import TalkOverStage
from speech.vad import VadStage
from tests.stage_harness import of_type, read_int16, run_stages, silence, speech_bounds, write_wav

TOL = 0.15


def place(track: np.ndarray, x: np.ndarray, at: float) -> None:
    i = round(at * 16000)
    track[i : i + len(x)] += x


def overlapping_call(tts, tmp_path, first: Party, overlap_long: float = 0.8, overlap_short: float = 0.1):
    """Turn 1: ``first`` speaks, the other cuts in ``overlap_long`` s before the end.
    Turn 2: ``first`` cuts in ``overlap_short`` s before the other's sentence ends.
    Returns the stereo path and the true (start, end) of the long overlap."""
    second = Party.CALLER if first is Party.AGENT else Party.AGENT
    a = read_int16(tts("I can see your order was shipped on Monday from our warehouse", voice="en-us"))
    b = read_int16(tts("But nobody told me anything about the delivery date", voice="en-gb+f3"))
    c = read_int16(tts("Right and I understand that this is frustrating", voice="en-us"))
    bounds = {id(x): speech_bounds(x) for x in (a, b, c)}
    total = 16000 * 14
    tracks = {Party.AGENT: np.zeros(total, dtype=np.int16), Party.CALLER: np.zeros(total, dtype=np.int16)}
    t_a = 0.5
    a_on, a_off = bounds[id(a)]
    b_on, b_off = bounds[id(b)]
    c_on, _ = bounds[id(c)]
    place(tracks[first], a, t_a)
    t_b = t_a + a_off - overlap_long - b_on  # b's audible start = a's audible end - overlap
    place(tracks[second], b, t_b)
    t_c = t_b + b_off - overlap_short - c_on
    place(tracks[first], c, t_c)
    path = tmp_path / "call.wav"
    write_wav(path, [tracks[Party.AGENT], tracks[Party.CALLER]])
    return path, (t_b + b_on, t_a + a_off)


@pytest.mark.parametrize("first", [Party.AGENT, Party.CALLER])
def test_only_the_long_overlap_is_reported(tts, tmp_path, first):
    path, (start, end) = overlapping_call(tts, tmp_path, first)
    rec = load_recording(path)
    events = run_stages([VadStage(VadSettings()), TalkOverStage(TalkOverSettings())], rec.frames())
    assert len(of_type(events, SpeechStarted)) == 3, "three utterances, none split"
    talk = of_type(events, TalkOver)
    assert len(talk) == 1
    second = Party.CALLER if first is Party.AGENT else Party.AGENT
    assert talk[0].started_by is second and talk[0].interrupted is first
    assert abs(talk[0].start - start) <= TOL
    assert abs(talk[0].end - end) <= TOL
    assert abs(talk[0].duration - 0.8) <= TOL
    assert talk[0].t == talk[0].end
    # emitted when the overlap ended: right after the interrupted party's SpeechEnded
    i = events.index(talk[0])
    assert isinstance(events[i - 1], SpeechEnded) and events[i - 1].party is first


def test_min_overlap_is_a_setting(tts, tmp_path):
    path, _ = overlapping_call(tts, tmp_path, Party.AGENT, overlap_short=0.5)
    rec = load_recording(path)
    strict = run_stages([VadStage(VadSettings()), TalkOverStage(TalkOverSettings(min_overlap_s=0.3))], rec.frames())
    assert [t.started_by for t in of_type(strict, TalkOver)] == [Party.CALLER, Party.AGENT]
    lax = run_stages([VadStage(VadSettings()), TalkOverStage(TalkOverSettings(min_overlap_s=1.0))], rec.frames())
    assert of_type(lax, TalkOver) == []


def test_turn_taking_without_overlap_is_not_talk_over(tts, tmp_path):
    a = read_int16(tts("Thank you for waiting"))
    b = read_int16(tts("No problem at all", voice="en-gb+f3"))
    agent = np.concatenate([silence(0.3), a, silence(3.0)])
    caller = np.concatenate([silence(0.3 + len(a) / 16000 + 0.15), b, silence(1.0)])
    path = tmp_path / "turns.wav"
    write_wav(path, [agent, caller])
    events = run_stages([VadStage(VadSettings()), TalkOverStage(TalkOverSettings())], load_recording(path).frames())
    assert len(of_type(events, SpeechStarted)) == 2
    assert of_type(events, TalkOver) == []


def test_scripted_overlaps_and_finish():
    """Event logic alone: an overlap still open at call end is closed by finish."""
    stage = TalkOverStage(TalkOverSettings(min_overlap_s=0.3))
    assert stage.process_event(SpeechStarted(t=1.0, party=Party.AGENT)) == []
    assert stage.process_event(SpeechStarted(t=2.0, party=Party.CALLER)) == []
    out = stage.process_event(SpeechEnded(t=2.5, start=2.0, duration=0.5, party=Party.CALLER))
    assert len(out) == 1 and out[0].started_by is Party.CALLER and abs(out[0].duration - 0.5) < 1e-9
    assert stage.process_event(SpeechStarted(t=3.0, party=Party.CALLER)) == []
    out = stage.finish(4.0)
    assert len(out) == 1 and out[0].start == 3.0 and out[0].end == 4.0
    assert stage.finish(5.0) == []
