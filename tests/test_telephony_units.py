"""Telephony parts without SIP: WAV writer, recorder, prompts, DTMF tones, the media hand-off."""

from __future__ import annotations

import asyncio

import numpy as np
import pjsua2 as pj
import pytest
import soundfile as sf

from telephony.admission import (
    KEY_FREE_S,
    NO_OFFER,
    OVERLOADED,
    TOO_LARGE,
    MediaBudget,
    check_invite,
)
from telephony.media_port import MediaBridge, vector_bytes
from telephony.prompts import PromptError, chunk_pcm, dtmf_tone, load_pcm
from telephony.recorder import FLUSH_FRAMES, StereoRecorder
from telephony.wav_writer import IncrementalWav


def test_incremental_wav_is_valid_after_every_write(tmp_path):
    path = tmp_path / "a.wav"
    wav = IncrementalWav(path, sample_rate=16000, channels=2)
    block = np.arange(640, dtype=np.int16).reshape(320, 2)
    wav.write(block)
    data, rate = sf.read(path, dtype="int16")  # readable before close
    assert rate == 16000 and data.shape == (320, 2)
    wav.write(block)
    wav.close()
    wav.close()
    data, _ = sf.read(path, dtype="int16")
    assert data.shape == (640, 2) and np.array_equal(data[320:], block)


def test_recorder_keeps_channels_aligned_and_pads_missing_playback(tmp_path):
    rec = StereoRecorder(tmp_path / "r.wav", sample_rate=16000)
    heard = np.full(320, 1000, dtype="<i2").tobytes()
    played = np.full(320, -2000, dtype="<i2").tobytes()
    for i in range(FLUSH_FRAMES + 10):
        rec.add(played if i % 2 else None, heard)
    rec.close()
    data, _ = sf.read(rec.path, dtype="int16")
    assert data.shape == ((FLUSH_FRAMES + 10) * 320, 2)
    assert np.all(data[:, 1] == 1000)
    assert np.all(data[:320, 0] == 0) and np.all(data[320:640, 0] == -2000)


def test_load_pcm_resamples_and_chunks(tmp_path, tts):
    wav = tts("one two three", sample_rate=22050)
    pcm = load_pcm(wav, 16000)
    info = sf.info(str(wav))
    assert abs(len(pcm) - info.duration * 16000) < 40
    chunks = chunk_pcm(pcm, 320)
    assert all(len(c) == 640 for c in chunks) and len(chunks) == -(-len(pcm) // 320)
    with pytest.raises(PromptError):
        load_pcm(tmp_path / "missing.wav", 16000)


def test_dtmf_tone_has_its_two_frequencies():
    tone = dtmf_tone("#", sample_rate=16000, duration=0.1, gap=0.0).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(tone))
    freqs = np.fft.rfftfreq(len(tone), 1 / 16000)
    top = sorted(freqs[np.argsort(spectrum)[-2:]])
    assert top == pytest.approx([941, 1477], abs=10)
    with pytest.raises(ValueError):
        dtmf_tone("x", sample_rate=16000)


def test_vector_bytes_reads_the_swig_vector():
    vec = pj.ByteVector(bytes(range(200)))
    assert vector_bytes(vec, 200) == bytes(range(200))
    assert vector_bytes(vec, 10) == bytes(range(10))


async def test_bridge_plays_chunks_then_reports_done_and_pairs_ticks():
    loop = asyncio.get_running_loop()
    ticks: list[tuple[bytes, bytes | None]] = []
    bridge = MediaBridge(loop, lambda rx, tx: ticks.append((rx, tx)), 640)
    done: asyncio.Future = loop.create_future()
    bridge.start_playback([b"a" * 640, b"b" * 640], done.set_result)
    for _ in range(3):  # what the clock thread does per tick
        bridge.next_tx()
        bridge.rx(b"r" * 640)
    assert await asyncio.wait_for(done, 1) is True
    await asyncio.sleep(0)
    assert [tx for _, tx in ticks] == [b"a" * 640, b"b" * 640, None]
    stopped: asyncio.Future = loop.create_future()
    bridge.start_playback([b"c" * 640] * 5, stopped.set_result)
    bridge.stop_playback()
    assert await asyncio.wait_for(stopped, 1) is False
    assert bridge.next_tx() is None
    bridge.close()
    bridge.rx(b"r" * 640)
    await asyncio.sleep(0)
    assert len(ticks) == 3


def _invite(body: str, *, declared: int | None = None) -> str:
    length = len(body.encode()) if declared is None else declared
    return ("INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {length}\r\n\r\n{body}")


def test_check_invite_refuses_cut_oversized_and_offerless_invites():
    sdp = "v=0\r\nm=audio 4000 RTP/AVP 0\r\n"
    assert check_invite(_invite(sdp), remote_offered=True) is None
    assert check_invite(_invite(sdp), remote_offered=False) == NO_OFFER  # SDP pjsip could not read
    assert check_invite(_invite(""), remote_offered=False) == NO_OFFER  # no offer at all
    assert check_invite(_invite(sdp, declared=5000), remote_offered=True) == TOO_LARGE  # cut short
    big = sdp + "a=x-pad:" + "z" * 4000 + "\r\n"
    assert check_invite(_invite(big), remote_offered=True) == TOO_LARGE  # at pjsip's 4000-byte limit
    assert TOO_LARGE.status == 513 and NO_OFFER.status == 488
    assert OVERLOADED.status == 503 and OVERLOADED.headers == (("Retry-After", "2"),)


def test_media_budget_counts_closed_transports_until_their_keys_are_free():
    budget = MediaBudget(limit=4, pressure=2)
    budget.opened()
    budget.opened()
    assert budget.pressure(0.0) and not budget.exhausted(0.0)
    budget.closed(0.0)
    budget.closed(0.1)
    budget.opened()
    budget.opened()
    assert budget.in_use(0.2) == 4 and budget.exhausted(0.2)  # 2 live + 2 closed, keys not back
    assert budget.in_use(KEY_FREE_S + 0.05) == 3  # the first closed one's keys are free again
    assert budget.in_use(KEY_FREE_S + 0.2) == 2 and not budget.exhausted(KEY_FREE_S + 0.2)
