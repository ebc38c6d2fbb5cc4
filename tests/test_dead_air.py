"""DeadAirStage behind the real VAD on espeak-ng speech with known gaps."""

from __future__ import annotations

import numpy as np
import pytest

from callcenter.settings import DeadAirSettings, DtmfSettings, VadSettings
from speech.dead_air import DeadAirStage
from speech.dtmf import DtmfStage
from speech.events import (
    CallStarted,
    DeadAirEnded,
    DeadAirStarted,
    DtmfDigit,
    PlaybackEnded,
    PlaybackStarted,
    SpeechEnded,
    SpeechStarted,
)
from speech.frames import Party
from speech.vad import VadStage
from tests.stage_harness import (
    add_noise,
    frames_from_tracks,
    of_type,
    read_int16,
    run_stages,
    silence,
    speech_bounds,
)

TOL = 0.2
FIRST = "Could you give me your account number please"
SECOND = "Yes it is one two three four five"


def gap_call(tts, gap: float, lead: float = 0.5, tail: float = 1.0):
    """Speech, ``gap`` seconds of silence (audible end to audible start), speech."""
    a = read_int16(tts(FIRST))
    b = read_int16(tts(SECOND, voice="en-gb+f3"))
    _, a_off = speech_bounds(a)
    b_on, _ = speech_bounds(b)
    gap_start = lead + a_off
    pad = gap - (len(a) / 16000 - a_off) - b_on
    x = np.concatenate([silence(lead), a, silence(pad), b, silence(tail)])
    return x, gap_start, gap_start + gap


def chain(threshold: float = 5.0):
    return [VadStage(VadSettings()), DtmfStage(DtmfSettings()), DeadAirStage(DeadAirSettings(threshold_s=threshold))]


def test_a_7s_gap_gives_one_dead_air(tts):
    x, gap_start, gap_end = gap_call(tts, 7.0)
    events = run_stages(chain(), frames_from_tracks({Party.CALLER: x}))
    started = of_type(events, DeadAirStarted)
    ended = of_type(events, DeadAirEnded)
    assert len(started) == 1 and len(ended) == 1
    assert abs(started[0].t - (gap_start + 5.0)) <= TOL
    assert abs(started[0].start - gap_start) <= TOL
    assert started[0].threshold == 5.0
    assert abs(ended[0].t - gap_end) <= TOL
    assert ended[0].start == started[0].start and ended[0].end == ended[0].t
    assert abs(ended[0].duration - (ended[0].end - ended[0].start)) < 1e-9
    # The alert follows the SpeechEnded that opened the gap; the next SpeechStarted ends it.
    order = [type(e) for e in events if isinstance(e, SpeechEnded | SpeechStarted | DeadAirStarted | DeadAirEnded)]
    assert order == [SpeechStarted, SpeechEnded, DeadAirStarted, SpeechStarted, DeadAirEnded, SpeechEnded]


def test_a_3s_gap_is_not_dead_air(tts):
    x, _, _ = gap_call(tts, 3.0)
    events = run_stages(chain(), frames_from_tracks({Party.CALLER: x}))
    assert not of_type(events, DeadAirStarted) and not of_type(events, DeadAirEnded)
    assert len(of_type(events, SpeechStarted)) == 2


def test_the_threshold_is_a_setting(tts):
    x, gap_start, gap_end = gap_call(tts, 3.0)
    events = run_stages(chain(threshold=2.0), frames_from_tracks({Party.CALLER: x}))
    started = of_type(events, DeadAirStarted)
    assert len(started) == 1
    assert abs(started[0].t - (gap_start + 2.0)) <= TOL
    assert started[0].threshold == 2.0
    assert abs(of_type(events, DeadAirEnded)[0].end - gap_end) <= TOL


def test_dead_air_in_20db_noise(tts):
    x, gap_start, gap_end = gap_call(tts, 7.0)
    events = run_stages(chain(), frames_from_tracks({Party.CALLER: add_noise(x, 20, seed=7)}))
    started = of_type(events, DeadAirStarted)
    ended = of_type(events, DeadAirEnded)
    assert len(started) == 1 and len(ended) == 1
    assert abs(started[0].t - (gap_start + 5.0)) <= TOL
    assert abs(ended[0].t - gap_end) <= TOL


def test_playback_is_not_dead_air(tts):
    """A prompt in the middle of the gap leaves less than the threshold on either side."""
    x, gap_start, _ = gap_call(tts, 7.0)
    marks = [
        PlaybackStarted(t=gap_start + 1.5, kind="prompt", name="menu"),
        PlaybackEnded(t=gap_start + 5.0, kind="prompt", name="menu"),
    ]
    events = run_stages(chain(), frames_from_tracks({Party.CALLER: x}), inject=marks)
    assert not of_type(events, DeadAirStarted)


def test_silence_restarts_when_playback_ends(tts):
    """Hold music ends at gap_start+1 s: the silence counts from there."""
    x, gap_start, gap_end = gap_call(tts, 7.0)
    marks = [PlaybackStarted(t=gap_start - 2.0, kind="hold"), PlaybackEnded(t=gap_start + 1.0, kind="hold")]
    events = run_stages(chain(), frames_from_tracks({Party.CALLER: x}), inject=marks)
    started = of_type(events, DeadAirStarted)
    assert len(started) == 1
    assert abs(started[0].start - (gap_start + 1.0)) < 0.03
    assert abs(started[0].t - (gap_start + 6.0)) < 0.03
    assert abs(of_type(events, DeadAirEnded)[0].end - gap_end) <= TOL


def test_a_prompt_starting_ends_dead_air(tts):
    x, gap_start, _ = gap_call(tts, 7.0)
    marks = [PlaybackStarted(t=gap_start + 6.0, name="are_you_there")]
    events = run_stages(chain(), frames_from_tracks({Party.CALLER: x}), inject=marks)
    ended = of_type(events, DeadAirEnded)
    assert len(of_type(events, DeadAirStarted)) == 1 and len(ended) == 1
    assert abs(ended[0].end - (gap_start + 6.0)) < 0.03


def test_a_dtmf_key_resets_the_silence(tts):
    x, gap_start, _ = gap_call(tts, 7.0)
    digit = DtmfDigit(t=gap_start + 3.0, digit="5", source="rfc4733", duration=0.1)
    events = run_stages(chain(), frames_from_tracks({Party.CALLER: x}), inject=[digit])
    assert not of_type(events, DeadAirStarted)


def test_silence_counts_from_call_start():
    events = run_stages(
        [DeadAirStage(DeadAirSettings(threshold_s=5.0))],
        frames_from_tracks({Party.CALLER: silence(6.0)}),
        inject=[CallStarted(t=0.5)],
    )
    started = of_type(events, DeadAirStarted)
    assert len(started) == 1 and started[0].start == 0.5
    assert abs(started[0].t - 5.5) < 1e-6
    ended = of_type(events, DeadAirEnded)
    assert len(ended) == 1 and abs(ended[0].end - 6.0) < 1e-6, "finish closes open dead air"


def test_two_parties_speaking_in_turn(tts, tmp_path):
    """The agent talks through the caller's silence, and the caller's through the agent's:
    no dead air, although each party alone is silent for more than 5 s."""
    agent = read_int16(tts("Let me check that for you, it will take a moment while the system loads"))
    caller = read_int16(tts("Okay thank you I will wait", voice="en-gb+f3"))
    a_len, c_len = len(agent) / 16000, len(caller) / 16000
    a_track = np.concatenate([silence(6.0), agent, silence(1.0)])
    c_track = np.concatenate([silence(0.3), caller, silence(6.0 + a_len - 0.3 - c_len + 1.0)])
    # the caller's speech ends and the agent starts 6.0 - (0.3 + c_len) s later (< 5 s)
    assert 6.0 - (0.3 + c_len) < 5.0
    events = run_stages(chain(), frames_from_tracks({Party.AGENT: a_track, Party.CALLER: c_track}))
    assert {e.party for e in of_type(events, SpeechStarted)} == {Party.AGENT, Party.CALLER}
    assert not of_type(events, DeadAirStarted)


def test_overlapping_speakers_keep_the_line_busy():
    """Caller stops while the agent still speaks: silence starts only when both have stopped."""
    stage = DeadAirStage(DeadAirSettings(threshold_s=1.0))
    stage.process_event(SpeechStarted(t=0.1, party=Party.AGENT))
    stage.process_event(SpeechStarted(t=0.5, party=Party.CALLER))
    stage.process_event(SpeechEnded(t=1.0, start=0.5, duration=0.5, party=Party.CALLER))
    out = []
    for frame in frames_from_tracks({Party.CALLER: silence(3.0)})[:100]:
        out += stage.process_frame(frame)
    assert out == []
    stage.process_event(SpeechEnded(t=2.0, start=0.1, duration=1.9, party=Party.AGENT))
    for frame in frames_from_tracks({Party.CALLER: silence(4.0)})[100:]:
        out += stage.process_frame(frame)
    assert len(out) == 1 and isinstance(out[0], DeadAirStarted)
    assert out[0].start == 2.0 and abs(out[0].t - 3.0) < 1e-6


@pytest.mark.parametrize("threshold", [0.0, -1.0])
def test_threshold_must_be_positive(threshold):
    with pytest.raises(ValueError):
        DeadAirSettings(threshold_s=threshold)


def test_inband_keys_in_the_gap_are_activity(tts):
    """A key press heard in the audio 3 s into a 7 s gap splits it into two short silences."""
    from tests.test_dtmf import key_tone

    x, gap_start, _ = gap_call(tts, 7.0)
    i = round((gap_start + 3.0) * 16000)
    tone = np.round(key_tone("5", 0.12) * 32767).astype(np.int16)
    x = x.copy()
    x[i : i + len(tone)] = tone
    events = run_stages(chain(), frames_from_tracks({Party.CALLER: x}))
    digits = of_type(events, DtmfDigit)
    assert [d.digit for d in digits] == ["5"]
    assert abs(digits[0].t - (gap_start + 3.0)) < 0.02
    assert not of_type(events, DeadAirStarted)
