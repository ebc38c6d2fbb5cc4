"""The committed test calls in audio_fixtures/: formats, durations, expectations, and a re-render."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from qa import expectation_for, load_expectation
from speech.audio_io import load_recording
from speech.frames import PIPELINE_RATE, Party
from tests.conftest import FIXTURES, have

CALLS = ["calm_billing", "angry_repeat", "dead_air", "dtmf_menu", "talk_over"]
# file name → (channels, sample rate, soundfile subtype)
FILES: dict[str, tuple[int, int, str]] = {}
for _name in CALLS:
    _ch = 2 if _name == "talk_over" else 1
    FILES[f"{_name}.wav"] = (_ch, 16000, "PCM_16")
    _law = "alaw" if _name == "dead_air" else "ulaw"
    FILES[f"{_name}_8k_{_law}.wav"] = (_ch, 8000, _law.upper())
MAX_DURATION_S = 40.0
FRAME = PIPELINE_RATE // 50


def rendered(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.expect.json").read_text())["rendered"]


def load_render_script():
    """audio_fixtures/render.py as a module (it is a script, not part of a package)."""
    spec = importlib.util.spec_from_file_location("audio_fixtures_render", FIXTURES / "render.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def frame_db(track: np.ndarray) -> np.ndarray:
    """RMS level (dBFS) of each 20 ms frame of an int16 track."""
    n = len(track) // FRAME * FRAME
    x = track[:n].astype(np.float64).reshape(-1, FRAME) / 32768.0
    return 20 * np.log10(np.sqrt((x**2).mean(axis=1)) + 1e-12)


def window_db(track: np.ndarray, start: float, end: float) -> float:
    x = track[round(start * PIPELINE_RATE) : round(end * PIPELINE_RATE)].astype(np.float64) / 32768.0
    return float(20 * np.log10(np.sqrt((x**2).mean()) + 1e-12))


def longest_quiet_run(track: np.ndarray, below_db: float = -45.0) -> tuple[float, float]:
    """Start and end (s) of the longest run of 20 ms frames quieter than ``below_db``."""
    quiet = np.concatenate([[0], (frame_db(track) < below_db).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(quiet))
    starts, ends = edges[::2], edges[1::2]
    i = int(np.argmax(ends - starts))
    return starts[i] * FRAME / PIPELINE_RATE, ends[i] * FRAME / PIPELINE_RATE


@pytest.mark.parametrize("file_name", sorted(FILES))
def test_fixture_format_and_duration(file_name):
    path = FIXTURES / file_name
    assert path.is_file(), f"{file_name} missing: run python audio_fixtures/render.py"
    channels, rate, subtype = FILES[file_name]
    info = sf.info(str(path))
    assert (info.channels, info.samplerate, info.subtype, info.format) == (channels, rate, subtype, "WAV")
    rec = load_recording(path)
    assert set(rec.tracks) == ({Party.AGENT, Party.CALLER} if channels == 2 else {Party.CALLER})
    exp = load_expectation(expectation_for(path))
    assert exp.min_duration <= rec.duration <= exp.max_duration <= MAX_DURATION_S


@pytest.mark.parametrize("name", CALLS)
def test_g711_copy_is_the_same_call(name):
    """The 8 kHz copy, back at 16 kHz, correlates with the original on every track."""
    wide = load_recording(FIXTURES / f"{name}.wav")
    narrow = load_recording(next(FIXTURES.glob(f"{name}_8k_*law.wav")))
    for party, track in wide.tracks.items():
        a = track.astype(np.float64)
        b = narrow.tracks[party].astype(np.float64)[: len(a)]
        assert len(b) == len(a)
        # Telephone band only: compare what survives 8 kHz.
        corr = np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b))
        assert corr > 0.9, (party, corr)


@pytest.mark.parametrize("name", CALLS)
def test_expectation_parses_and_matches_the_audio(name):
    exp = load_expectation(FIXTURES / f"{name}.expect.json")
    assert exp.keywords, "every call should expect some words"
    assert exp.dead_air is not None and exp.dtmf is not None and exp.talk_over is not None
    rec = load_recording(FIXTURES / f"{name}.wav")
    # Every rendered utterance is clearly louder than the noise floor between them.
    for span in rendered(name)["speech"]:
        assert window_db(rec.tracks[Party(span["party"])], span["start"], span["end"]) > -35.0, span


def test_dead_air_gap_is_seven_seconds_of_low_noise():
    exp = load_expectation(FIXTURES / "dead_air.expect.json")
    (gap,) = exp.dead_air
    assert gap.end - gap.start == pytest.approx(7.0, abs=0.02)
    for file_name in ("dead_air.wav", "dead_air_8k_alaw.wav"):
        track = load_recording(FIXTURES / file_name).tracks[Party.CALLER]
        level = window_db(track, gap.start + 0.1, gap.end - 0.1)
        assert -66.0 < level < -54.0, (file_name, level)  # -60 dB noise: quiet, not digital zero
        start, end = longest_quiet_run(track)
        assert start == pytest.approx(gap.start, abs=0.1) and end == pytest.approx(gap.end, abs=0.1)
    for name in CALLS:
        if name != "dead_air":
            assert load_expectation(FIXTURES / f"{name}.expect.json").dead_air == (), name


def test_talk_over_overlap_is_one_second_started_by_caller():
    exp = load_expectation(FIXTURES / "talk_over.expect.json")
    (over,) = exp.talk_over
    assert over.started_by is Party.CALLER
    speech = rendered("talk_over")["speech"]
    agent_end = max(s["end"] for s in speech if s["party"] == "agent" and s["start"] < over.start)
    assert agent_end - over.start == pytest.approx(1.0, abs=0.01)
    rec = load_recording(FIXTURES / "talk_over.wav")
    # Both channels carry speech inside the overlap; channel 1 (agent) is silent while the
    # caller speaks alone, and vice versa (no crosstalk between channels).
    assert window_db(rec.tracks[Party.AGENT], over.start, agent_end) > -35.0
    assert window_db(rec.tracks[Party.CALLER], over.start, agent_end) > -35.0
    first_caller = next(s for s in speech if s["party"] == "caller")
    assert window_db(rec.tracks[Party.AGENT], first_caller["start"], first_caller["end"]) < -55.0
    # Other turns are separated by ~0.5 s gaps.
    ordered = sorted(speech, key=lambda s: s["start"])
    gaps = [b["start"] - a["end"] for a, b in zip(ordered, ordered[1:], strict=False)]
    assert sorted(round(g, 2) for g in gaps) == [-1.0, 0.5, 0.5, 0.5, 0.5]


def test_calm_call_pauses_are_under_two_seconds():
    speech = rendered("calm_billing")["speech"]
    gaps = [b["start"] - a["end"] for a, b in zip(speech, speech[1:], strict=False)]
    assert gaps and all(0.3 < g < 2.0 for g in gaps)


def test_angry_call_gets_louder():
    rec = load_recording(FIXTURES / "angry_repeat.wav")
    levels = [window_db(rec.tracks[Party.CALLER], s["start"], s["end"]) for s in rendered("angry_repeat")["speech"]]
    assert levels == sorted(levels) and levels[-1] - levels[0] > 6.0, levels


@pytest.mark.parametrize("file_name", ["dtmf_menu.wav", "dtmf_menu_8k_ulaw.wav"])
def test_dtmf_keys_have_their_two_frequencies(file_name):
    """Each 100 ms key press: the two strongest spectral peaks are its row and column tones."""
    render = load_render_script()
    step = render.DTMF_TONE_S + render.DTMF_GAP_S
    exp = load_expectation(FIXTURES / "dtmf_menu.expect.json")
    assert exp.dtmf == "1234#4512"
    track = load_recording(FIXTURES / file_name).tracks[Party.CALLER].astype(np.float64)
    runs = rendered("dtmf_menu")["dtmf"]
    starts = [r["start"] + i * step for r in runs
              for i in range(round((r["end"] - r["start"] + render.DTMF_GAP_S) / step))]
    assert len(starts) == len(exp.dtmf)
    n = round(render.DTMF_TONE_S * PIPELINE_RATE)
    freqs = np.fft.rfftfreq(n, 1 / PIPELINE_RATE)
    for key, start in zip(exp.dtmf, starts, strict=True):
        i = round(start * PIPELINE_RATE)
        spectrum = np.abs(np.fft.rfft(track[i : i + n] * np.hanning(n)))
        low = freqs[np.argmax(np.where(freqs < 1000, spectrum, 0))]
        high = freqs[np.argmax(np.where(freqs > 1100, spectrum, 0))]
        want_low, want_high = render.DTMF_FREQS[key]
        assert abs(low - want_low) <= 10 and abs(high - want_high) <= 10, (key, low, high)


@pytest.mark.skipif(not (have("espeak-ng") and have("sox")), reason="needs espeak-ng and sox")
def test_rerender_dead_air_reproduces_duration_and_gap(tmp_path):
    render = Path(FIXTURES / "render.py")
    subprocess.run([sys.executable, str(render), "--out", str(tmp_path), "--only", "dead_air"],
                   check=True, capture_output=True, timeout=120)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dead_air.expect.json", "dead_air.wav", "dead_air_8k_alaw.wav"]
    fresh = load_expectation(tmp_path / "dead_air.expect.json")
    committed = load_expectation(FIXTURES / "dead_air.expect.json")
    rec = load_recording(tmp_path / "dead_air.wav")
    assert rec.duration == pytest.approx(json.loads((FIXTURES / "dead_air.expect.json").read_text())["rendered"]["duration"], abs=0.05)
    (gap,) = fresh.dead_air
    (want,) = committed.dead_air
    assert gap.start == pytest.approx(want.start, abs=0.05) and gap.end == pytest.approx(want.end, abs=0.05)
    start, end = longest_quiet_run(rec.tracks[Party.CALLER])
    assert start == pytest.approx(gap.start, abs=0.1) and end == pytest.approx(gap.end, abs=0.1)


@pytest.mark.slow
def test_keywords_of_dtmf_menu_come_out_of_the_pipeline_engine(capsys):
    """check_keywords.py with the real pocketsphinx engine: every group heard, 16 kHz and G.711."""
    spec = importlib.util.spec_from_file_location("audio_fixtures_check", FIXTURES / "check_keywords.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    assert module.main(["dtmf_menu"]) == 0, capsys.readouterr().out
