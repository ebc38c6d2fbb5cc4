"""The replay speed-ups keep results: a frame ``feed`` processes itself gives the same events as
one through the queue, the DTMF level gate never hides a key, the cheaper dBFS is the same
level, a looping decode is compared by what it said before the loop, and batch replay leaves
live partials off unless asked (real fixtures, real stages)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np

from callcenter.cli import _parser, _settings
from speech.asr.whisper_engine import _said_again
from speech.audio_io import open_recording
from speech.dtmf import DtmfStage
from speech.events import DtmfDigit, Event, SpeechEnded, SpeechStarted
from speech.frames import AudioFrame, pcm_dbfs
from speech.pipeline import CallPipeline
from speech.settings import DtmfSettings, TalkOverSettings, VadSettings
from speech.stage import Stage
from speech.talk_over import TalkOverStage
from speech.vad import VadStage
from tests.conftest import FIXTURES

DTMF = FIXTURES / "dtmf_menu_8k_ulaw.wav"
STEREO = FIXTURES / "talk_over.wav"
EXPECTED_DIGITS = json.loads((FIXTURES / "dtmf_menu.expect.json").read_text())["dtmf"]


def _stages() -> list[Stage]:
    return [VadStage(VadSettings()), DtmfStage(DtmfSettings()), TalkOverStage(TalkOverSettings())]


def _frames(path: Path) -> list[AudioFrame]:
    return list(open_recording(path).frames())


def _key(events: list[Event]) -> list[tuple[str, str, float]]:
    return [(type(e).__name__, str(e.party), round(e.t, 6)) for e in events]


async def _fed(frames: list[AudioFrame]) -> tuple[list[Event], int]:
    pipeline = CallPipeline("fed", _stages())
    await pipeline.start()
    for f in frames:
        await pipeline.feed(f)
    return await pipeline.end(), pipeline.frames_processed_inline


async def _queued(frames: list[AudioFrame]) -> list[Event]:
    pipeline = CallPipeline("queued", _stages(), max_pending_frames=10**6)
    await pipeline.start()
    for f in frames:
        pipeline.push_frame(f)
    return await pipeline.end()


def test_frames_fed_inline_give_the_events_of_the_queued_path() -> None:
    for path in (DTMF, STEREO):
        frames = _frames(path)
        fed, inline = asyncio.run(_fed(frames))
        queued = asyncio.run(_queued(frames))
        assert inline >= len(frames) - 1  # all but the first (behind CallStarted) took the short way
        assert _key(fed) == _key(queued)
        assert any(isinstance(e, SpeechStarted) for e in fed) and any(isinstance(e, SpeechEnded) for e in fed)
    digits = "".join(e.digit for e in asyncio.run(_fed(_frames(DTMF)))[0] if isinstance(e, DtmfDigit))
    assert digits == EXPECTED_DIGITS


def test_dtmf_level_gate_never_hides_a_key() -> None:
    """Where the gate skips a frame, the full analysis finds no key in it either."""
    stage = DtmfStage(DtmfSettings())
    rng = np.random.default_rng(7)
    rate, n = 8000, 160
    t = np.arange(n) / rate
    windows = []
    for level in (0.005, 0.02, 0.03, 0.0316, 0.035, 0.05, 0.3):
        for lo, hi in ((697, 1209), (941, 1477), (852, 1633)):
            tone = level * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t))
            windows.append(tone + rng.normal(0, level / 20, n))
    windows += [rng.normal(0, s, n) for s in (0.001, 0.01, 0.1)]
    for w in windows:
        pair = np.stack([w, w]).astype(np.float32)
        amp = stage._amplitudes(pair, rate)
        keys = stage._classify(pair, amp)
        if not stage._loud_enough(amp):
            assert keys == [None, None]
    key = np.stack([windows[-4], windows[-4]]).astype(np.float32)  # 852 + 1633 Hz at 0.3: a "C"
    amp = stage._amplitudes(key, rate)
    assert stage._loud_enough(amp) and stage._classify(key, amp) == ["C", "C"]


def test_pcm_dbfs_is_the_rms_level() -> None:
    rng = np.random.default_rng(1)
    for scale in (0, 1, 30, 1000, 32767):
        x = np.clip(rng.normal(0, scale, 320), -32768, 32767).astype("<i2")
        ms = float(np.mean(x.astype(np.float64) ** 2))
        want = -100.0 if ms == 0 else max(-100.0, 10 * np.log10(ms) - 20 * np.log10(32768.0))
        assert abs(pcm_dbfs(x.tobytes()) - want) < 1e-9
    assert pcm_dbfs(b"") == -100.0


def test_a_wider_window_counts_only_when_it_heard_what_the_loop_repeats() -> None:
    assert _said_again("I want to speak to a manager.", "I want to speak to a manager. I want to speak to")
    assert _said_again("I am really angry.", "I am really angry. I am really angry. I am really angry")
    assert not _said_again("Great.", "Great. Great. Great. Great. Great.")  # too short to tell
    assert not _said_again("agent", "Agent, agent, agent, agent")
    assert not _said_again("I would like a refund, please.", "Would I, Carreford, please? Please? Please? Please")
    assert not _said_again("Hello, my internet has been down for two days.",
                           "Hello, my internet has been down for two names. Hello, my internet has been down")
    assert not _said_again("hey you can't", "agent agent agent agent")
    assert not _said_again("", "agent agent")


def test_batch_replay_leaves_live_partials_off_unless_asked() -> None:
    off = _settings(_parser().parse_args(["replay", "x.wav"]))
    on = _settings(_parser().parse_args(["replay", "--partials", "x.wav"]))
    assert off.asr.partials is False
    assert on.asr.partials is True
