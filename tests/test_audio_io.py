"""The replay edge: decoding, resampling, framing, and clear errors on bad files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speech.audio_io import (
    AUDIO_SUFFIXES,
    AudioFileError,
    load_recording,
    open_recording,
    resample,
    to_int16,
)
from speech.frames import PIPELINE_RATE, Party


def _tone(path: Path, rate: int, seconds: float, channels: int = 1, freq: float = 440.0, **kw) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    data = np.stack([x * (i + 1) / channels for i in range(channels)], axis=1) if channels > 1 else x
    sf.write(path, data, rate, **kw)
    return path


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 48000])
def test_any_common_rate_is_resampled_to_the_pipeline_rate(tmp_path: Path, rate: int) -> None:
    rec = load_recording(_tone(tmp_path / f"t{rate}.wav", rate, 1.0))
    assert rec.source_rate == rate
    track = rec.tracks[Party.CALLER]
    assert abs(len(track) - PIPELINE_RATE) <= 2
    spectrum = np.abs(np.fft.rfft(track.astype(np.float32)))
    assert abs(np.argmax(spectrum) * PIPELINE_RATE / len(track) - 440.0) < 3.0


def test_stereo_is_agent_then_caller_and_frames_interleave(tmp_path: Path) -> None:
    rec = load_recording(_tone(tmp_path / "s.flac", 16000, 0.5, channels=2))
    assert list(rec.tracks) == [Party.AGENT, Party.CALLER]
    frames = list(rec.frames())
    assert [f.party for f in frames[:4]] == [Party.AGENT, Party.CALLER, Party.AGENT, Party.CALLER]
    assert frames[2].timestamp == pytest.approx(0.02)
    assert all(f.num_samples == 320 for f in frames)
    # channel 2 was twice as loud as channel 1
    agent = np.abs(rec.tracks[Party.AGENT]).mean()
    caller = np.abs(rec.tracks[Party.CALLER]).mean()
    assert caller / agent == pytest.approx(2.0, rel=0.05)


def test_g711_ulaw_8k_decodes(tmp_path: Path) -> None:
    rec = load_recording(_tone(tmp_path / "u.wav", 8000, 0.5, subtype="ULAW"))
    assert rec.duration == pytest.approx(0.5, abs=0.01)


def test_missing_empty_non_audio_and_truncated_files_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="not found"):
        load_recording(tmp_path / "nope.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty"):
        load_recording(empty)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all\n" * 20)
    with pytest.raises(AudioFileError, match=r"notes\.wav: not a readable audio file"):
        load_recording(text)
    good = _tone(tmp_path / "good.wav", 16000, 2.0)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 3])
    with pytest.raises(AudioFileError, match=r"cut\.wav"):
        load_recording(cut)


def test_wrong_channel_count_is_rejected(tmp_path: Path) -> None:
    path = _tone(tmp_path / "quad.wav", 16000, 0.2, channels=4)
    with pytest.raises(AudioFileError, match="4 channels"):
        load_recording(path)


def test_unsupported_format_is_rejected(tmp_path: Path) -> None:
    if subprocess.run(["which", "sox"], capture_output=True).returncode:
        pytest.skip("sox not installed")
    raw = tmp_path / "x.mp3"
    raw.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x0f" + b"\x00" * 200)
    with pytest.raises(AudioFileError, match=r"x\.mp3"):
        load_recording(raw)


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 48000])
def test_streamed_blocks_equal_resampling_the_whole_file(tmp_path: Path, rate: int) -> None:
    """Tiny blocks (many boundaries) give the samples of the old whole-file resampler."""
    rng = np.random.default_rng(rate)
    x = (0.3 * rng.standard_normal((int(rate * 1.37), 2))).clip(-1, 1)
    path = tmp_path / f"n{rate}.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    whole, _ = sf.read(path, dtype="float32", always_2d=True)
    expected = [to_int16(resample(whole[:, i], rate)) for i in range(2)]
    stream = open_recording(path, block_s=0.013)
    got = [np.concatenate([b[i] for b in stream.blocks()]) for i in range(2)]
    for e, g in zip(expected, got, strict=True):
        assert len(g) == len(e)
        assert np.max(np.abs(g.astype(np.int32) - e.astype(np.int32))) <= 1
    assert stream.duration == pytest.approx(len(expected[0]) / PIPELINE_RATE)
    frames = list(stream.frames())
    assert len(frames) == 2 * (len(expected[0]) // 320)
    assert [f.timestamp for f in frames[:4:2]] == [0.0, 0.02]
    assert frames[-1].timestamp == pytest.approx((len(expected[0]) // 320 - 1) * 0.02)


def test_stream_and_load_agree_and_a_truncated_flac_fails_up_front(tmp_path: Path) -> None:
    path = _tone(tmp_path / "t.flac", 44100, 3.0)
    rec = load_recording(path)
    streamed = b"".join(f.pcm for f in open_recording(path, block_s=0.5).frames())
    assert streamed == b"".join(f.pcm for f in rec.frames())
    cut = tmp_path / "cut.flac"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AudioFileError, match=r"cut\.flac: truncated"):
        open_recording(cut)


def test_nan_samples_are_rejected(tmp_path: Path) -> None:
    x = np.zeros(16000, np.float32)
    x[5000] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match="NaN"):
        open_recording(path)


def test_mp3_decodes_and_is_an_audio_suffix(tmp_path: Path) -> None:
    mp3 = _tone(tmp_path / "t.mp3", 16000, 1.0, format="MP3")
    rec = load_recording(mp3)
    assert rec.duration == pytest.approx(1.0, abs=0.1)
    assert ".mp3" in AUDIO_SUFFIXES
