"""Prosody features on synthetic signals with known answers, and on espeak-ng speech."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from speech.prosody import NeutralProsody, ProsodyBaseline, analyze

RATE = 16000


def tone(freq: float, seconds: float = 1.5, amp: float = 0.3, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    # A voice-like tone: fundamental plus two harmonics.
    x = np.sin(2 * np.pi * freq * t) + 0.5 * np.sin(4 * np.pi * freq * t) + 0.25 * np.sin(6 * np.pi * freq * t)
    return (amp * x / np.abs(x).max()).astype(np.float32)


def speech(path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="int16")
    assert rate == RATE
    return data


@pytest.mark.parametrize("freq", [120.0, 200.0])
def test_pitch_of_a_tone_within_five_percent(freq):
    p = analyze(tone(freq), RATE)
    assert p.has_voice
    assert p.pitch_hz == pytest.approx(freq, rel=0.05)
    assert p.pitch_spread_st < 0.2


def test_higher_tone_reads_higher():
    low, high = analyze(tone(120.0), RATE), analyze(tone(200.0), RATE)
    assert high.pitch_hz / low.pitch_hz == pytest.approx(200 / 120, rel=0.05)


def test_pitch_at_telephone_rate():
    p = analyze(tone(150.0, rate=8000), 8000)
    assert p.pitch_hz == pytest.approx(150.0, rel=0.05)


def test_int16_and_float_inputs_agree():
    x = tone(180.0)
    as_int = np.round(x * 32767).astype(np.int16)
    assert analyze(as_int, RATE).pitch_hz == pytest.approx(analyze(x, RATE).pitch_hz, rel=0.01)


def test_six_db_gain_reads_six_db_louder_on_a_tone():
    x = tone(150.0, amp=0.1)
    gain = 10 ** (6 / 20)
    diff = analyze(x * gain, RATE).loudness_db - analyze(x, RATE).loudness_db
    assert diff == pytest.approx(6.0, abs=0.5)


def test_six_db_gain_reads_six_db_louder_on_speech(tts):
    x = speech(tts("Please tell me the status of my order.")).astype(np.float32) / 32768.0 * 0.5
    diff = analyze(x * 10 ** (6 / 20), RATE).loudness_db - analyze(x, RATE).loudness_db
    assert diff == pytest.approx(6.0, abs=0.5)


def test_silence_and_noise_have_no_voice():
    assert not analyze(np.zeros(RATE, np.float32), RATE).has_voice
    noise = np.random.default_rng(1).normal(0, 0.05, RATE).astype(np.float32)
    p = analyze(noise, RATE)
    assert p.voiced_s < 0.2
    assert not analyze(np.zeros(100, np.float32), RATE).has_voice


def test_espeak_pitch_setting_moves_measured_pitch(tts):
    text = "I have been waiting for a very long time."
    low = analyze(speech(tts(text, pitch=40)), RATE)
    high = analyze(speech(tts(text, pitch=85)), RATE)
    assert low.has_voice and high.has_voice
    assert high.pitch_hz > low.pitch_hz * 1.25
    assert 60 < low.pitch_hz < 200


def test_faster_speech_has_more_syllables_per_second(tts):
    text = "We talked about the weather, the football results and the price of bread."
    slow = analyze(speech(tts(text, speed=120)), RATE)
    fast = analyze(speech(tts(text, speed=220)), RATE)
    assert fast.syllable_rate > slow.syllable_rate * 1.15
    assert fast.active_s < slow.active_s * 0.75
    assert 2.0 < slow.syllable_rate < 8.0


def test_baseline_from_the_callers_own_first_utterances():
    base = ProsodyBaseline(2, NeutralProsody(loudness_db=-20.0))
    first = analyze(tone(120.0, amp=0.1), RATE)
    before = base.compare(first)
    assert before.reference == "defaults"
    assert math.isnan(before.pitch_change)  # no default pitch: voices differ too much
    assert base.add(first)
    assert base.compare(first).reference == "partial"
    assert base.add(analyze(tone(130.0, amp=0.1), RATE))
    assert base.complete and not base.add(first)
    raised = analyze(tone(150.0, amp=0.2), RATE)
    d = base.compare(raised, words_per_s=None)
    assert d.reference == "baseline"
    ref = 2 ** ((math.log2(120) + math.log2(130)) / 2)
    assert d.pitch_change == pytest.approx(150 / ref - 1, abs=0.04)
    assert d.loudness_change_db == pytest.approx(6.0, abs=0.5)
    assert d.rate_basis == "syllables"


def test_baseline_skips_utterances_without_enough_voice():
    base = ProsodyBaseline(1, min_voiced_s=0.3)
    assert not base.add(analyze(tone(120.0, seconds=0.15), RATE))
    assert not base.add(analyze(np.zeros(RATE, np.float32), RATE))
    assert base.count == 0


def test_words_per_second_compares_with_words_when_the_baseline_has_them():
    base = ProsodyBaseline(1)
    p = analyze(tone(120.0), RATE)
    base.add(p, words_per_s=2.0)
    d = base.compare(p, words_per_s=3.0)
    assert d.rate_basis == "words" and d.rate_change == pytest.approx(0.5)
    assert base.compare(p).rate_basis == "syllables"
