"""DtmfStage on synthesized key presses (also through G.711 with sox), speech and music."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from callcenter.settings import DtmfSettings
from speech.audio_io import load_recording
from speech.dtmf import COL_HZ, KEYS, ROW_HZ, DtmfStage
from speech.events import DtmfDigit
from speech.frames import Party
from tests.conftest import have
from tests.stage_harness import add_noise, frames_from_tracks, run_stages, write_wav

RATE = 16000
ALL_KEYS = "0123456789*#ABCD"


def key_tone(digit: str, seconds: float, level_db: float = -10.0, twist_db: float = 0.0, rate: int = RATE) -> np.ndarray:
    """Float samples of one key: row and column tone at ``level_db`` dBFS each (column
    ``twist_db`` louder)."""
    r = next(i for i, row in enumerate(KEYS) if digit in row)
    c = KEYS[r].index(digit)
    t = np.arange(round(seconds * rate)) / rate
    amp = 10 ** (level_db / 20)
    return amp * np.sin(2 * np.pi * ROW_HZ[r] * t) + amp * 10 ** (twist_db / 20) * np.sin(2 * np.pi * COL_HZ[c] * t + 0.3)


def key_sequence(digits: str, tone: float = 0.1, gap: float = 0.08, lead: float = 0.313, **kw):
    """int16 samples and the true (digit, onset) list; ``lead`` is off the frame grid on purpose."""
    parts = [np.zeros(round(lead * RATE))]
    truth = []
    t = lead
    for d in digits:
        parts.append(key_tone(d, tone, **kw))
        truth.append((d, t))
        parts.append(np.zeros(round(gap * RATE)))
        t += tone + gap
    parts.append(np.zeros(RATE // 2))
    x = np.concatenate(parts)
    return np.round(x * 32767).astype(np.int16), truth


def detect(x: np.ndarray, settings: DtmfSettings | None = None) -> list[DtmfDigit]:
    events = run_stages([DtmfStage(settings or DtmfSettings())], frames_from_tracks({Party.CALLER: x}))
    assert all(isinstance(e, DtmfDigit) for e in events)
    return events


def test_all_sixteen_keys():
    x, truth = key_sequence(ALL_KEYS)
    digits = detect(x)
    assert "".join(d.digit for d in digits) == ALL_KEYS
    for d, (_, onset) in zip(digits, truth, strict=True):
        assert abs(d.t - onset) <= 0.015
        assert abs(d.duration - 0.1) <= 0.015
        assert d.source == "inband" and d.party is Party.CALLER and d.call_id == ""


@pytest.mark.skipif(not have("sox"), reason="needs sox")
@pytest.mark.parametrize("encoding", ["u-law", "a-law"])
def test_keys_survive_g711_at_8khz(tmp_path, encoding):
    x, truth = key_sequence("159#0*D", level_db=-12.0)
    src = tmp_path / "keys.wav"
    write_wav(src, [x])
    coded = tmp_path / f"keys-{encoding}.wav"
    subprocess.run(["sox", str(src), "-r", "8000", "-e", encoding, str(coded)], check=True, capture_output=True)
    rec = load_recording(coded)
    assert rec.source_rate == 8000
    digits = run_stages([DtmfStage(DtmfSettings())], rec.frames())
    assert "".join(d.digit for d in digits) == "159#0*D"
    for d, (_, onset) in zip(digits, truth, strict=True):
        assert abs(d.t - onset) <= 0.02


def test_keys_in_20db_noise():
    x, _ = key_sequence(ALL_KEYS)
    assert "".join(d.digit for d in detect(add_noise(x, 20, seed=5))) == ALL_KEYS


def test_minimum_duration():
    """40 ms presses count; 20 ms blips do not."""
    x, _ = key_sequence("2468", tone=0.04, gap=0.06)
    assert "".join(d.digit for d in detect(x)) == "2468"
    x, _ = key_sequence("2468", tone=0.02, gap=0.06)
    assert detect(x) == []
    x, _ = key_sequence("2468", tone=0.06, gap=0.06)
    assert detect(x, DtmfSettings(min_duration_ms=100)) == []


def test_a_short_dropout_does_not_split_a_press_but_a_gap_does():
    press = key_tone("7", 0.15)
    dropout = np.concatenate([np.zeros(5000), press, np.zeros(160), press, np.zeros(8000)])
    digits = detect(np.round(dropout * 32767).astype(np.int16))
    assert [d.digit for d in digits] == ["7"]
    assert abs(digits[0].duration - 0.31) <= 0.02
    repeated = np.concatenate([np.zeros(5000), press, np.zeros(1600), press, np.zeros(8000)])
    assert [d.digit for d in detect(np.round(repeated * 32767).astype(np.int16))] == ["7", "7"]


def test_level_and_twist_checks():
    quiet, _ = key_sequence("123", level_db=-40.0)
    assert detect(quiet) == []
    twisted, _ = key_sequence("123", level_db=-20.0, twist_db=12.0)
    assert detect(twisted) == []
    assert [d.digit for d in detect(twisted, DtmfSettings(twist_db=14.0))] == ["1", "2", "3"]
    mild, _ = key_sequence("123", level_db=-20.0, twist_db=4.0)
    assert [d.digit for d in detect(mild)] == ["1", "2", "3"]


def test_party_and_stereo(tmp_path):
    x, _ = key_sequence("42")
    path = tmp_path / "stereo.wav"
    write_wav(path, [np.zeros_like(x), x])
    digits = run_stages([DtmfStage(DtmfSettings())], load_recording(path).frames())
    assert [(d.digit, d.party) for d in digits] == [("4", Party.CALLER), ("2", Party.CALLER)]


SPEECH = (
    "Hello, I would like to check the balance of my account please.",
    "Press one for sales, two for support, or stay on the line for an operator.",
    "Mmmm, oooh, eeee, aaah. Beep beep, la la la la la.",
    "Seven eight nine zero star pound, the quick brown fox jumps over the lazy dog.",
)
VOICES = ("en-us", "en-gb", "en-us+f3", "en-us+m3", "en-gb-scotland", "en-us+f5")


@pytest.mark.parametrize("voice", VOICES)
def test_no_digits_on_speech(tts, voice):
    for i, text in enumerate(SPEECH):
        for pitch in (25, 75):
            rec = load_recording(tts(text, voice=voice, pitch=pitch))
            assert run_stages([DtmfStage(DtmfSettings())], rec.frames()) == [], (i, pitch)


@pytest.mark.skipif(not have("sox"), reason="needs sox")
def test_no_digits_on_telephone_speech(tts, tmp_path):
    for i, text in enumerate(SPEECH):
        coded = tmp_path / f"s{i}.wav"
        subprocess.run(["sox", str(tts(text, voice="en-us+f3")), "-r", "8000", "-e", "u-law", str(coded)], check=True)
        assert run_stages([DtmfStage(DtmfSettings())], load_recording(coded).frames()) == []


def _note(freq: float, seconds: float, harmonics: int = 6) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, harmonics + 1) if freq * k < 7500)


def _sines(freqs: tuple[float, ...], seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return sum(np.sin(2 * np.pi * f * t) for f in freqs)


def test_no_digits_on_music_and_call_progress_tones():
    midi = lambda m: 440 * 2 ** ((m - 69) / 12)  # noqa: E731
    parts = [_note(midi(m), 0.15) for m in range(60, 96)]  # a chromatic run over the DTMF band
    parts += [sum(_note(midi(root + i), 0.3) for i in (0, 4, 7)) for root in range(60, 84, 2)]
    parts.append(_note(midi(77), 0.5) + _note(midi(90), 0.5))  # F5 + F#6: fundamentals near "3"
    parts += [_sines((350, 440), 1.0), _sines((440, 480), 1.0), _sines((480, 620), 0.5)]
    parts += [_sines((1000,), 0.5), _sines((697,), 0.5), _sines((1336,), 0.5)]
    x = np.concatenate(parts)
    x = np.round(x / np.abs(x).max() * 0.5 * 32767).astype(np.int16)
    assert detect(x) == []


def test_keys_just_above_the_level_are_still_heard():
    """Frames whose energy cannot hold a tone at ``min_level_db`` skip the Goertzel bank; keys
    2 dB above that level (each tone) must still come through."""
    x, _ = key_sequence("159#", level_db=DtmfSettings().min_level_db + 2.0)
    assert [d.digit for d in detect(x)] == list("159#")


def test_energy_bound_never_skips_a_frame_the_tone_test_would_pass():
    """The skip is exact: whenever the bound says "too quiet", the amplitudes it stands for fail
    the level test too (random noise, keys, mixes, and a key shaped by the analysis window itself,
    the case where the bound is tightest, at many levels)."""
    rng = np.random.default_rng(7)
    stage = DtmfStage(DtmfSettings())
    n = RATE // 50
    skipped = 0
    for level_db in np.linspace(-60.0, -20.0, 41):
        for kind in ("noise", "key", "mix", "shaped"):
            amp = 10 ** (level_db / 20)
            prev, cur = (rng.normal(0, amp, n) for _ in range(2))
            if kind == "shaped":
                prev = np.zeros(n)
                cur = np.hanning(n) * key_tone("5", n / RATE, level_db=float(level_db))
            elif kind != "noise":
                key = key_tone(str(rng.integers(0, 10)), 2 * n / RATE, level_db=float(level_db))
                prev, cur = (key[:n], key[n:]) if kind == "key" else (prev + key[:n], cur + key[n:])
            windows = np.stack([np.concatenate([prev[n // 2:], cur[: n - n // 2]]), cur]).astype(np.float32)
            energy = float(np.dot(prev, prev) + np.dot(cur, cur))
            amps = stage._amplitudes(windows, RATE)
            if stage._too_quiet(n, RATE, energy):
                skipped += 1
                assert not stage._loud_enough(amps), (level_db, kind)
    assert skipped > 20  # the bound does skip quiet audio
