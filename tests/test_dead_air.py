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
    HoldEnded,
    HoldStarted,
    PartyJoined,
    PartyLeft,
    PlaybackEnded,
    PlaybackStarted,
    QueueAction,
    QueueUpdate,
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


# --- bridged calls: holds, queue music, an agent who leaves ------------------------------------

A, C = Party.AGENT, Party.CALLER


def bridged(seconds: float, marks: list, threshold: float = 5.0):
    """Only the dead-air stage, on silent caller and agent channels, with scripted events."""
    frames = frames_from_tracks({C: silence(seconds), A: silence(seconds)})
    return run_stages([DeadAirStage(DeadAirSettings(threshold_s=threshold))], frames, inject=marks)


def said(party: Party, start: float, end: float) -> list:
    return [SpeechStarted(t=start, party=party), SpeechEnded(t=end, party=party, start=start, duration=end - start)]


def test_a_hold_is_never_dead_air():
    """8 s of hold between two agent turns: the silence counts only from HoldEnded."""
    marks = [
        PartyJoined(t=0.2, party=A, agent_id="a1", queue="billing"),
        *said(A, 0.5, 2.0),
        HoldStarted(t=2.5, party=A, by=A),
        HoldEnded(t=10.5, party=A, by=A, start=2.5, duration=8.0),
    ]
    events = bridged(18.0, marks)
    (started,) = of_type(events, DeadAirStarted)
    assert started.start == 10.5 and abs(started.t - 15.5) < 1e-6


def test_a_hold_ends_dead_air_already_alerted():
    marks = [*said(C, 0.5, 1.0), HoldStarted(t=8.0, party=A, by=A)]
    events = bridged(20.0, marks)
    (started,) = of_type(events, DeadAirStarted)
    (ended,) = of_type(events, DeadAirEnded)
    assert (started.start, ended.end) == (1.0, 8.0), "the hold started at 8 s and never ended: no more dead air"


def test_queue_wait_with_hold_music_is_not_dead_air():
    """20 s in a queue with music and nobody speaking, then the agent: no dead air in the queue,
    and the stage is live again once the music stops (silence after the agent's greeting)."""
    marks = [
        *said(C, 0.3, 1.0),
        QueueUpdate(t=1.0, queue="billing", action=QueueAction.ENTERED, position=1),
        PlaybackStarted(t=1.0, kind="hold", name="billing"),
        QueueUpdate(t=21.0, queue="billing", action=QueueAction.CONNECTED, wait_s=20.0, agent_id="a1"),
        PlaybackEnded(t=21.0, kind="hold", name="billing"),
        PartyJoined(t=21.0, party=A, agent_id="a1", queue="billing", wait_s=20.0),
        *said(A, 21.5, 23.0),
    ]
    events = bridged(29.0, marks)
    (started,) = of_type(events, DeadAirStarted)
    assert started.start == 23.0 and abs(started.t - 28.0) < 1e-6


def test_both_parties_silent_is_dead_air_while_bridged():
    marks = [PartyJoined(t=0.2, party=A, agent_id="a1"), *said(A, 0.5, 2.0), *said(C, 2.5, 4.0), *said(C, 10.0, 11.0)]
    events = bridged(12.0, marks)
    (started,) = of_type(events, DeadAirStarted)
    (ended,) = of_type(events, DeadAirEnded)
    assert (started.start, ended.start, ended.end) == (4.0, 4.0, 10.0)


def test_an_agent_who_leaves_mid_utterance_stops_speaking():
    """No SpeechEnded comes for an agent whose leg is gone: leaving ends their utterance, and the
    caller, alone in silence, gets dead air from then on."""
    marks = [*said(C, 0.3, 1.0), SpeechStarted(t=1.5, party=A), PartyLeft(t=3.0, party=A, agent_id="a1", reason="hangup")]
    events = bridged(10.0, marks)
    (started,) = of_type(events, DeadAirStarted)
    assert started.start == 3.0 and abs(started.t - 8.0) < 1e-6


def test_a_hold_ends_when_its_holder_leaves_but_not_when_the_other_party_does():
    holder_left = [*said(A, 0.3, 1.0), HoldStarted(t=1.0, party=A, by=A),
                   PartyLeft(t=2.0, party=A, agent_id="a1", reason="transfer")]
    (started,) = of_type(bridged(10.0, holder_left), DeadAirStarted)
    assert started.start == 2.0
    caller_left = [*said(A, 0.3, 1.0), HoldStarted(t=1.0, party=A, by=A), PartyLeft(t=2.0, party=C, reason="hangup")]
    assert not of_type(bridged(10.0, caller_left), DeadAirStarted)


def test_silence_goes_on_across_the_agent_leaving():
    """Leaving is not speech: 3 s of silence before the agent hangs up and 3 s after are one gap."""
    marks = [*said(A, 0.3, 1.0), PartyLeft(t=4.0, party=A, agent_id="a1", reason="hangup")]
    (started,) = of_type(bridged(8.0, marks), DeadAirStarted)
    assert started.start == 1.0 and abs(started.t - 6.0) < 1e-6
