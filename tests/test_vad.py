"""VadStage on real espeak-ng speech joined with known gaps."""

from __future__ import annotations

import numpy as np
import pytest

from callcenter.settings import VadSettings
from speech.audio_io import load_recording
from speech.events import SpeechEnded, SpeechStarted
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
    write_wav,
)

TOL = 0.12
SENTENCES = (
    "Hello and thank you for calling, how can I help you today?",
    "I would like to check the status of my order.",
    "Sure, let me look that up for you.",
)


def build_call(tts, gaps=(1.0, 2.0), lead=0.5, voice="en-us") -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Sentences separated by ``gaps`` seconds of silence; returns samples and true intervals."""
    parts = [silence(lead)]
    truth: list[tuple[float, float]] = []
    t = lead
    for i, text in enumerate(SENTENCES[: len(gaps) + 1]):
        x = read_int16(tts(text, voice=voice))
        on, off = speech_bounds(x)
        truth.append((t + on, t + off))
        parts.append(x)
        t += len(x) / 16000
        # Gaps are measured between the audible end and the next audible start.
        if i < len(gaps):
            pad = gaps[i] - (len(x) / 16000 - off)
            parts.append(silence(pad))
            t += pad
    parts.append(silence(1.0))
    return np.concatenate(parts), truth


def utterances(events) -> list[tuple[float, float]]:
    return [(e.start, e.t) for e in of_type(events, SpeechEnded)]


def assert_matches(found, truth) -> None:
    assert len(found) == len(truth), f"found {found}, expected {truth}"
    for (on, off), (t_on, t_off) in zip(found, truth, strict=True):
        assert abs(on - t_on) <= TOL, (on, t_on)
        assert abs(off - t_off) <= TOL, (off, t_off)


def test_onsets_and_offsets_match_the_speech(tts):
    x, truth = build_call(tts)
    events = run_stages([VadStage(VadSettings())], frames_from_tracks({Party.CALLER: x}))
    assert_matches(utterances(events), truth)
    starts = of_type(events, SpeechStarted)
    assert [round(s.t, 3) for s in starts] == [round(u[0], 3) for u in utterances(events)]
    assert all(e.party is Party.CALLER and e.call_id == "" for e in events)
    ends = of_type(events, SpeechEnded)
    assert all(abs(e.duration - (e.t - e.start)) < 1e-9 for e in ends)


@pytest.mark.parametrize("voice", ["en-us", "en-gb+f3", "en-us+m3"])
def test_a_sentence_with_short_pauses_is_one_utterance(tts, voice):
    text = "I have been waiting for my refund since last month and nobody has called me back yet"
    x = np.concatenate([silence(0.5), read_int16(tts(text, voice=voice)), silence(1.0)])
    events = run_stages([VadStage(VadSettings())], frames_from_tracks({Party.CALLER: x}))
    on, off = speech_bounds(x)
    assert_matches(utterances(events), [(on, off)])


def test_speech_in_20db_noise(tts):
    x, truth = build_call(tts, voice="en-gb")
    noisy = add_noise(x, snr_db=20, seed=3)
    events = run_stages([VadStage(VadSettings())], frames_from_tracks({Party.CALLER: noisy}))
    assert_matches(utterances(events), truth)


@pytest.mark.parametrize("frame_ms", [10, 30])
def test_other_vad_frame_sizes_rechunk(tts, frame_ms):
    x, truth = build_call(tts, gaps=(1.0,))
    events = run_stages([VadStage(VadSettings(frame_ms=frame_ms))], frames_from_tracks({Party.CALLER: x}))
    assert_matches(utterances(events), truth)


def test_hangover_is_a_setting(tts):
    """With a hangover longer than the gap, the two sentences merge into one utterance."""
    x, truth = build_call(tts, gaps=(1.0,))
    merged = run_stages([VadStage(VadSettings(hangover_ms=1500))], frames_from_tracks({Party.CALLER: x}))
    assert_matches(utterances(merged), [(truth[0][0], truth[1][1])])


def test_speech_ended_waits_for_the_hangover(tts):
    x, truth = build_call(tts, gaps=(2.0,))
    stage = VadStage(VadSettings(hangover_ms=300))
    seen: list[tuple[float, bool]] = []
    for frame in frames_from_tracks({Party.CALLER: x}):
        events = stage.process_frame(frame)
        if any(isinstance(e, SpeechEnded) for e in events):
            seen.append((frame.end, stage.speaking(Party.CALLER)))
    first_end_emitted_at, speaking_after = seen[0]
    assert not speaking_after
    assert first_end_emitted_at >= truth[0][1] + 0.3 - TOL


def test_finish_closes_an_open_utterance(tts):
    x = read_int16(tts("Please hold while I transfer your call to the billing department"))
    cut = x[: len(x) // 2]
    stage = VadStage(VadSettings())
    events = []
    for frame in frames_from_tracks({Party.CALLER: np.concatenate([silence(0.3), cut])}):
        events += stage.process_frame(frame)
    assert stage.speaking(Party.CALLER)
    assert not of_type(events, SpeechEnded)
    end = stage.finish(0.3 + len(cut) / 16000)
    assert len(end) == 1 and isinstance(end[0], SpeechEnded)
    assert abs(end[0].t - (0.3 + len(cut) / 16000)) <= TOL
    assert abs(end[0].start - 0.3) <= TOL
    assert not stage.speaking(Party.CALLER)
    assert stage.finish(10.0) == []


def test_parties_are_tracked_apart(tts, tmp_path):
    agent = read_int16(tts(SENTENCES[0]))
    caller = read_int16(tts(SENTENCES[1], voice="en-gb+f3"))
    a_track = np.concatenate([silence(0.4), agent, silence(4.0)])
    c_offset = 0.4 + len(agent) / 16000 + 0.7
    c_track = np.concatenate([silence(c_offset), caller, silence(1.0)])
    path = tmp_path / "call.wav"
    write_wav(path, [a_track, c_track])
    events = run_stages([VadStage(VadSettings())], load_recording(path).frames())
    by_party = {p: [(e.start, e.t) for e in of_type(events, SpeechEnded) if e.party is p] for p in Party}
    a_on, a_off = speech_bounds(agent)
    c_on, c_off = speech_bounds(caller)
    assert_matches(by_party[Party.AGENT], [(0.4 + a_on, 0.4 + a_off)])
    assert_matches(by_party[Party.CALLER], [(c_offset + c_on, c_offset + c_off)])


def test_line_noise_alone_is_not_speech():
    """White noise at a typical line level from the first sample (webrtcvad warm-up included)."""
    rng = np.random.default_rng(11)
    noise = np.round(rng.normal(0.0, 300.0, 16000 * 6)).astype(np.int16)
    events = run_stages([VadStage(VadSettings())], frames_from_tracks({Party.CALLER: noise}))
    assert events == []


def test_echo_history_stays_bounded_over_a_long_call():
    """The echo gate keeps its level history by 20 ms slot as frames arrive; what falls out of
    the echo tail and correlation window is dropped, so a long call's state does not grow (also
    across a gap in the audio)."""
    from speech.frames import PIPELINE_RATE, AudioFrame, Party
    from speech.settings import VadSettings
    from speech.vad import ECHO_WINDOW_S, VadStage

    stage = VadStage(VadSettings())
    rng = np.random.default_rng(3)
    step = PIPELINE_RATE // 50
    t = 0.0
    for i in range(6000):  # two minutes of both parties, with a 30 s gap in the middle
        if i == 3000:
            t += 30.0
        for party in (Party.CALLER, Party.AGENT):
            pcm = (rng.normal(0, 300, step)).astype(np.int16).tobytes()
            stage.process_frame(AudioFrame(pcm, PIPELINE_RATE, t, party, far_end_dbfs=-20.0))
        t += 0.02
    limit = round((ECHO_WINDOW_S + 0.3 + 0.1) / 0.02) + 3
    for state in stage._states.values():
        assert 60 <= len(state.sent_slots) <= limit
        assert 60 <= len(state.far_slots) <= limit
        assert len(state.sent) <= limit
