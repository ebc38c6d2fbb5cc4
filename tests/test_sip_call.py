"""Real SIP calls between two pjsua2 endpoints: this process answers, a subprocess calls."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import correlate, resample_poly

from callcenter.settings import SipSettings
from speech.events import DtmfDigit
from speech.frames import AudioFrame, Party
from telephony import SipEndpoint
from telephony.items import CallFailed, LegEnded
from telephony.net import free_port
from tests.sip.caller import ROOT, caller_result, start_caller

PJLIB_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}\s|pjlib|pjsua_core|sip_endpoint\.c", re.M)
"""What pjlib's own log lines look like (``00:42:22.110  os_core_unix.c !pjlib 2.15.1 ...``)."""

pytestmark = [pytest.mark.sip]


@pytest.fixture
async def endpoint(tmp_path):
    ep = SipEndpoint(SipSettings(), port=free_port(), record_dir=tmp_path / "rec", name="ivr")
    await ep.start()
    yield ep
    await ep.stop()


async def drain(leg, timeout_s: float = 20.0) -> tuple[list[AudioFrame], list[DtmfDigit], LegEnded]:
    frames, digits = [], []
    async with asyncio.timeout(timeout_s):
        while True:
            item = await leg.inbox.get()
            if isinstance(item, LegEnded):
                return frames, digits, item
            if isinstance(item, DtmfDigit):
                digits.append(item)
            elif isinstance(item, AudioFrame):
                frames.append(item)


def aligned_correlation(reference: np.ndarray, received: np.ndarray, rate: int, window_s: float = 0.5) -> float:
    """Median over the speech windows of the reference of each window's best normalized
    cross-correlation with the received audio, both band-limited to telephone 8 kHz.

    Aligning window by window keeps the measure about fidelity: on a loaded machine the jitter
    buffer may drop or conceal a frame, which shifts everything after it by 20 ms.
    """
    ref = resample_poly(reference.astype(np.float64), 1, rate // 8000)
    rec = resample_poly(received.astype(np.float64), 1, rate // 8000)
    n = int(8000 * window_s)
    energy = np.concatenate(([0.0], np.cumsum(rec**2)))
    scores = []
    for start in range(0, len(ref) - n + 1, n):
        w = ref[start : start + n]
        if np.sqrt(np.mean(w**2)) < 300 or len(rec) < n:  # skip pauses
            continue
        w = w - w.mean()
        num = correlate(rec, w, mode="valid", method="fft")
        local = energy[n:] - energy[:-n]
        ww = float(np.dot(w, w))
        ncc = np.where(local > 0.01 * ww, num / np.sqrt(np.maximum(local, 1e-9) * ww), 0.0)
        scores.append(float(np.max(ncc)))
    return float(np.median(scores)) if scores else 0.0


@pytest.mark.slow
async def test_call_audio_dtmf_and_recording(endpoint, tts, tmp_path):
    wav = tts("Thank you for calling. Please tell me why you are calling today.", pad_after=0.3)
    prompt = tts("Welcome to the help desk.", voice="en-us+f3")
    caller_rec = tmp_path / "caller"
    proc = await start_caller(
        endpoint.uri, "--play", str(wav), "--dtmf", "1", "--dtmf", "#", "--dtmf-delay", "0.4",
        "--record-dir", str(caller_rec),
    )
    leg = await asyncio.wait_for(endpoint.accept(), 15)
    assert endpoint.active_calls == 1
    assert leg.codec.startswith("PCMU")
    play = asyncio.create_task(leg.play(prompt))
    frames, digits, ended = await drain(leg)
    result = await caller_result(proc)

    assert await play is True
    assert result["answered"] and result["played"] and result["digits_sent"] == ["1", "#"]
    assert [d.digit for d in digits] == ["1", "#"]
    assert all(d.source == "rfc4733" and d.call_id == leg.call_id for d in digits)
    assert digits[0].t < digits[1].t
    assert ended.status == 200 and endpoint.active_calls == 0
    assert {f.party for f in frames} == {Party.CALLER}
    assert all(f.sample_rate == 16000 and f.num_samples == 320 for f in frames)
    assert [f.timestamp for f in frames[:3]] == pytest.approx([0.0, 0.02, 0.04])
    assert leg.frames_received == len(frames) and leg.frames_dropped == 0

    ref, rate = sf.read(wav, dtype="int16")
    heard = np.concatenate([f.samples() for f in frames])
    assert aligned_correlation(ref, heard, rate) > 0.8

    # the recording: ch1 = our prompt, ch2 = the caller; the caller's speech is on ch2 only
    assert leg.recording_path is not None and leg.recording_path.exists()
    rec, rec_rate = sf.read(leg.recording_path, dtype="int16")
    assert rec_rate == 16000 and rec.ndim == 2 and rec.shape[1] == 2
    assert abs(len(rec) - len(frames) * 320) <= 320
    assert aligned_correlation(ref, rec[:, 1], 16000) > 0.8
    assert aligned_correlation(ref, rec[:, 0], 16000) < 0.5  # and not on the prompt channel
    p_ref, _ = sf.read(prompt, dtype="int16")
    assert aligned_correlation(p_ref, rec[:, 0], 16000) > 0.95
    # the caller heard our prompt through PCMU: its own recording holds it on channel 2
    crec, _ = sf.read(result["recording_path"], dtype="int16")
    assert aligned_correlation(p_ref, crec[:, 1], 16000) > 0.8


async def test_barge_in_stops_playback_and_caller_hangup_mid_prompt(endpoint, tts):
    long_prompt = tts("This is a long announcement that the caller will not wait for. " * 3)
    proc = await start_caller(endpoint.uri, "--hangup-after", "1.5")
    leg = await asyncio.wait_for(endpoint.accept(), 15)
    first = asyncio.create_task(leg.play(long_prompt))
    await asyncio.sleep(0.3)
    leg.stop_playback()
    assert await asyncio.wait_for(first, 2) is False
    second = asyncio.create_task(leg.play(long_prompt))
    _, _, ended = await drain(leg)
    result = await caller_result(proc)
    assert result["hangup_by"] == "local"
    assert await asyncio.wait_for(second, 2) is False  # the caller hung up mid-prompt
    assert ended.reason and endpoint.active_calls == 0
    assert await leg.play(long_prompt) is False  # playing into an ended call does nothing


async def test_outbound_call_without_answer_fails_and_leaks_nothing(endpoint):
    with pytest.raises(CallFailed) as info:
        await endpoint.place_call(f"sip:nobody@127.0.0.1:{free_port()}", answer_timeout_s=1.5)
    assert info.value.status >= 400
    assert endpoint.active_calls == 0


async def test_inband_dtmf_reaches_the_audio_not_the_dtmf_events(endpoint):
    proc = await start_caller(endpoint.uri, "--dtmf", "5", "--inband", "--dtmf-delay", "0.3")
    leg = await asyncio.wait_for(endpoint.accept(), 15)
    frames, digits, _ = await drain(leg)
    result = await caller_result(proc)
    assert result["digits_sent"] == ["5"] and digits == []  # in-band is the pipeline's job
    audio = np.concatenate([f.samples() for f in frames]).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(audio))
    freqs = np.fft.rfftfreq(len(audio), 1 / 16000)
    top = sorted(freqs[np.argsort(spectrum)[-2:]])
    assert top == pytest.approx([770, 1336], abs=15)


async def test_full_inbox_drops_audio_but_never_control_items(tmp_path):
    ep = SipEndpoint(SipSettings(), port=free_port(), name="ivr", inbox_frames=10)
    await ep.start()
    try:
        proc = await start_caller(ep.uri, "--dtmf", "7", "--dtmf-delay", "1.0")
        leg = await asyncio.wait_for(ep.accept(), 15)
        await asyncio.wait_for(leg.wait_ended(), 15)  # nobody reads the inbox meanwhile
        await caller_result(proc)
        frames, digits, ended = await drain(leg)
    finally:
        await ep.stop()
    assert len(frames) == 10 and leg.frames_dropped == leg.frames_received - 10 > 0
    assert [d.digit for d in digits] == ["7"] and ended.status == 200


async def test_a_key_sequence_arrives_whole_before_hangup(endpoint):
    proc = await start_caller(endpoint.uri, "--dtmf", "123456#", "--dtmf-delay", "0.2")
    leg = await asyncio.wait_for(endpoint.accept(), 15)
    _, digits, _ = await drain(leg)
    await caller_result(proc)
    assert "".join(d.digit for d in digits) == "123456#"


async def test_callcenter_call_prints_no_pjlib_lines(endpoint, tmp_path):
    """pjlib used to print a dozen lines from libCreate, before the log settings applied."""
    env = {**os.environ, "CALLCENTER_DATA_DIR": str(tmp_path / "data")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter", "call", endpoint.uri, "--hangup-after", "0.5",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL)
    leg = await asyncio.wait_for(endpoint.accept(), 15)
    await drain(leg)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    assert json.loads(out)["answered"] is True  # stdout is the JSON result and nothing else
    assert not PJLIB_LINE.search(out.decode()) and not PJLIB_LINE.search(err.decode()), err.decode()
