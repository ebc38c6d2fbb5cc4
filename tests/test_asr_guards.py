"""Guards against invented words, on hand-made cases (real-audio cases: test_asr_whisper.py)."""

from __future__ import annotations

import numpy as np
import pytest

from speech.asr.adapter import LocalAgreement
from speech.asr.guards import (
    DecodeScores,
    GuardRules,
    collapse_repeats,
    compression_ratio,
    loop_start,
    peak_level_dbfs,
    rejection,
    repeats_phrase,
    tonal_share,
)


def kept(text: str, n: int = 2) -> str:
    ws = text.split()
    return " ".join(ws[i] for i in collapse_repeats(ws, n))


def test_collapse_cuts_loops_but_keeps_numbers_and_ordinary_repeats() -> None:
    assert kept("agent agent agent agent agent") == "agent agent"
    assert kept("agent agent agent agent", 1) == "agent"
    assert kept("No, no, no, no, NO.") == "No, no,"
    assert kept("thank you thank you thank you thank you") == "thank you thank you"
    assert kept("no no I said billing") == "no no I said billing"
    assert kept("four one one one one one") == "four one one one one one"  # a card number
    assert kept("4111 1111 1111 1111") == "4111 1111 1111 1111"


def test_loop_start_and_phrase_repeats() -> None:
    ws = "technical support technical support technical support technical".split()
    assert loop_start(ws) == 2
    assert loop_start("I want billing".split()) is None
    assert loop_start("my number is one one one one".split()) is None
    assert repeats_phrase("I want to seek to I want to seek to".split())
    assert repeats_phrase("I was charged twice this month. I was charged twice this".split())
    assert not repeats_phrase("I want to speak to a manager".split())


def test_rejection_rules() -> None:
    rules = GuardRules()
    speech = DecodeScores(0.14, -0.11, "I want to speak to a manager.")
    assert rejection(speech, rules) is None
    assert rejection(DecodeScores(0.92, -2.0, "I'm gonna go to the left."), rules) == "no_speech"
    assert rejection(DecodeScores(0.96, -0.89, "you"), rules) == "no_speech"  # hard threshold
    assert rejection(DecodeScores(0.3, -1.9, "Thank you, Nick."), rules) == "low_logprob"
    assert rejection(DecodeScores(0.3, -0.2, ". " * 30), rules) == "repetitive"
    assert compression_ratio("the quick brown fox jumps over the lazy dog") < 2.4


def test_peak_level() -> None:
    rate = 16000
    assert peak_level_dbfs(np.zeros(rate, dtype=np.float32), rate) == float("-inf")
    x = np.zeros(rate, dtype=np.float32)
    x[8000:9600] = 0.1 * np.sin(np.arange(1600) / 3)  # 100 ms burst in a quiet second
    assert peak_level_dbfs(x, rate) == pytest.approx(-23.0, abs=0.5)


def test_local_agreement_publishes_only_what_two_decodes_share() -> None:
    agree = LocalAgreement()
    assert agree.update(["I", "want"]) is None  # nothing to compare with yet
    assert agree.update(["I", "want", "to", "speed"]) == ["I", "want"]
    assert agree.update(["I", "want", "to", "speak", "to"]) == ["I", "want", "to"]
    assert agree.update(["I", "want", "to", "speak", "to", "a"]) == ["I", "want", "to", "speak", "to"]
    assert agree.update(["I", "won't"]) is None  # a flicker does not take stable words back
    assert agree.stable == ["I", "want", "to", "speak", "to"]
    assert agree.update(["i", "want", "to", "speak", "to", "a", "manager."]) is None
    assert agree.update(["I", "want", "to", "speak", "to", "a", "manager"]) == [
        "I", "want", "to", "speak", "to", "a", "manager"
    ]


def _tone(*freqs: float, seconds: float = 2.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)).astype(np.float32)


def test_tones_are_tonal_and_recorded_speech_and_noise_are_not() -> None:
    import soundfile as sf

    from speech.audio_io import resample
    from tests.conftest import FIXTURES

    for tone in (_tone(440), _tone(350, 440), _tone(697, 1209), _tone(480, 620)):  # tone, dial, DTMF, busy
        assert tonal_share(tone) >= 0.98
    rng = np.random.default_rng(7)
    assert tonal_share((0.1 * rng.standard_normal(32000)).astype(np.float32)) < 0.3
    assert tonal_share(np.zeros(16000, dtype=np.float32)) == 0.0 and tonal_share(np.zeros(100)) == 0.0
    for side in sorted((FIXTURES / "sides").glob("*.wav")):  # real turns of both parties, whole
        audio, rate = sf.read(str(side), dtype="float32")
        audio = audio if rate == 16000 else resample(audio, rate, 16000)
        for start in range(0, audio.size - 32000, 32000):  # 2 s pieces, as a VAD would cut them
            piece = audio[start : start + 32000]
            if peak_level_dbfs(piece, 16000) > -30:
                assert tonal_share(piece) < 0.9, (side.name, start)
