"""Our own IVR prompts echoed back on the caller's line are not caller speech.

A phone returns part of what we play (line and acoustic echo): here the shipped espeak-ng
prompts (``ivr/prompts/*.wav``) come back at -25 dB and 120 ms late on the caller's channel,
over a -60 dBFS floor, through an 8 kHz G.711 µ-law round trip. The VAD's echo gate knows what
is played, in the two shapes a call has it: live, the level the leg stamps on each caller frame
(``AudioFrame.far_end_dbfs``); in replay, the played channel of a 2-channel recording (the agent
party). Checked on the real stage chain (stage harness) and end to end with the default
recognizer: no caller utterance and no caller word from the echo, while a caller answering over
the prompt (barge-in) or after it is still heard.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks import corpus
from speech.events import Event, FinalTranscript, SpeechStarted, TalkOver
from speech.frames import FRAME_MS, PIPELINE_RATE, AudioFrame, Party, pcm_dbfs
from speech.settings import VadSettings
from speech.vad import VadStage
from tests.stage_harness import frames_from_tracks, of_type, run_stages

pytestmark = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is needed for the G.711 round trip")

ECHO_DB = -25.0
ECHO_DELAY_S = 0.12
PROMPT_AT_S = 0.5
"""Where the prompt starts in the test calls."""


def prompt(name: str = "main_menu") -> np.ndarray:
    x, rate = sf.read(str(corpus.PROMPTS / f"{name}.wav"), dtype="float32")
    return corpus.resample(x, rate) if rate != PIPELINE_RATE else x


def place(x: np.ndarray, at_s: float, total: int) -> np.ndarray:
    out = np.zeros(total, np.float32)
    i = round(at_s * PIPELINE_RATE)
    out[i : i + len(x)] = x[: total - i]
    return out


def int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def call(caller: np.ndarray | None = None, caller_at_s: float = 0.0, *, name: str = "main_menu",
         tail_s: float = 2.5, stop_at_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(played, heard) int16 at 16 kHz: ``name`` played from ``PROMPT_AT_S`` (until
    ``stop_at_s``: the IVR stops a prompt barged in on); the caller's channel carries its echo,
    the caller's own speech from ``caller_at_s`` and a -60 dBFS floor, through G.711 µ-law."""
    p = prompt(name)
    if stop_at_s is not None:
        p = p[: max(0, round((stop_at_s - PROMPT_AT_S) * PIPELINE_RATE))]
    total = round((PROMPT_AT_S + len(p) / PIPELINE_RATE + tail_s) * PIPELINE_RATE)
    if caller is not None:
        total = max(total, round((caller_at_s + len(caller) / PIPELINE_RATE + 1.5) * PIPELINE_RATE))
    played = place(p, PROMPT_AT_S, total)
    heard = place(p * 10 ** (ECHO_DB / 20), PROMPT_AT_S + ECHO_DELAY_S, total)
    if caller is not None:
        heard += place(caller, caller_at_s, total)
    heard += np.random.default_rng(5).standard_normal(total).astype(np.float32) * 10 ** (-60 / 20)
    return int16(played), int16(corpus.g711_roundtrip(heard)[:total])


def live_frames(played: np.ndarray, heard: np.ndarray, *, stamped: bool = True) -> list[AudioFrame]:
    """Caller frames as a live leg delivers them: the played level of the same tick stamped on."""
    step = PIPELINE_RATE * FRAME_MS // 1000
    frames = []
    for i in range(0, len(heard) - step + 1, step):
        out = played[i : i + step].tobytes()
        level = pcm_dbfs(out) if stamped and np.any(played[i : i + step]) else None
        frames.append(AudioFrame(heard[i : i + step].tobytes(), PIPELINE_RATE, i / PIPELINE_RATE,
                                 Party.CALLER, far_end_dbfs=level))
    return frames


def caller_onsets(events: list[Event]) -> list[float]:
    return [round(e.t, 2) for e in of_type(events, SpeechStarted) if e.party == Party.CALLER]


@pytest.fixture(scope="module")
def answer(tts) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A caller's spoken menu choice (another voice than the prompts'), at the prompts' level:
    words the prompt itself says too, so echo and answer cannot be told apart by their text."""
    x, _ = sf.read(str(tts("technical support", voice="en-us+m3", speed=140)), dtype="float32")
    return x.astype(np.float32)


# -- the VAD stage -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["main_menu", "welcome", "cancel_confirm", "account_number"])
def test_echo_opens_no_caller_utterance_live(name: str) -> None:
    played, heard = call(name=name)
    assert caller_onsets(run_stages([VadStage(VadSettings(echo_gate=False))], live_frames(played, heard))), \
        "control: without the gate, webrtcvad must hear the echo as speech (else this proves nothing)"
    assert caller_onsets(run_stages([VadStage(VadSettings())], live_frames(played, heard))) == []


def test_echo_opens_no_caller_utterance_in_a_two_channel_recording() -> None:
    played, heard = call()
    events = run_stages([VadStage(VadSettings())], frames_from_tracks({Party.AGENT: played, Party.CALLER: heard}))
    assert caller_onsets(events) == []
    assert [e for e in of_type(events, SpeechStarted) if e.party == Party.AGENT], "the prompt itself is speech"


def test_without_a_played_level_the_echo_is_not_gated() -> None:
    """Nothing is suppressed on a guess: a frame whose edge did not say what was played is
    judged as before (a mono recording cannot tell our prompt from the caller)."""
    played, heard = call()
    assert caller_onsets(run_stages([VadStage(VadSettings())], live_frames(played, heard, stamped=False)))


@pytest.mark.parametrize("gain_db", [0.0, -8.0])
@pytest.mark.parametrize("shape", ["live", "recording"])
def test_barge_in_over_the_prompt_still_opens_an_utterance(answer: np.ndarray, gain_db: float, shape: str) -> None:
    at = PROMPT_AT_S + 1.5
    played, heard = call(answer * 10 ** (gain_db / 20), at)
    frames = (live_frames(played, heard) if shape == "live"
              else frames_from_tracks({Party.AGENT: played, Party.CALLER: heard}))
    onsets = caller_onsets(run_stages([VadStage(VadSettings())], frames))
    assert onsets and abs(onsets[0] - at) < 0.25, onsets
    assert len(onsets) <= 2, f"the answer is one or two utterances, not echo fragments: {onsets}"


def test_answer_after_the_prompt_is_heard(answer: np.ndarray) -> None:
    at = PROMPT_AT_S + len(prompt()) / PIPELINE_RATE + 0.3  # within the echo tail's reach
    played, heard = call(answer, at)
    onsets = caller_onsets(run_stages([VadStage(VadSettings())], live_frames(played, heard)))
    assert len(onsets) == 1 and abs(onsets[0] - at) < 0.15, onsets


# -- end to end, the default recognizer -----------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from callcenter.settings import load_settings
    from callcenter.wiring import load_asr_engine

    settings = load_settings(environ={}, overrides={"data_dir": str(tmp_path_factory.mktemp("echo")),
                                                    "mqtt.enabled": False})
    eng = load_asr_engine(settings)
    assert eng is not None
    yield settings, eng
    eng.close()


def replay_caller_text(path: Path, engine) -> tuple[list[str], list[Event]]:  # type: ignore[no-untyped-def]
    from callcenter.replay import replay_file

    settings, eng = engine
    res = asyncio.run(replay_file(path, settings, eng))
    assert res.error is None, res.error
    texts = [e.text for e in res.events
             if isinstance(e, FinalTranscript) and e.party == Party.CALLER and e.text.strip()]
    return texts, res.events


def stereo(path: Path, played: np.ndarray, heard: np.ndarray) -> Path:
    return corpus.write_stereo(path, played.astype(np.float32) / 32768, heard.astype(np.float32) / 32768)


@pytest.mark.slow
def test_no_caller_words_from_every_shipped_prompt_echoed(tmp_path: Path, engine) -> None:  # type: ignore[no-untyped-def]
    played, heard = corpus.prompt_echo_call(ECHO_DB, ECHO_DELAY_S)
    texts, events = replay_caller_text(corpus.write_stereo(tmp_path / "echo.wav", played, heard), engine)
    # Counts and times only, never the text (team rule: no transcript text in reports).
    assert sum(len(corpus.normalize(t).split()) for t in texts) == 0, f"{len(texts)} caller final(s) from echo"
    assert caller_onsets(events) == []
    agent = [e for e in events if isinstance(e, FinalTranscript) and e.party == Party.AGENT and e.text.strip()]
    assert agent, "control: the played channel itself is transcribed, so the recognizer is on"


SENTENCES = {
    "I need help with my internet connection": "i need help with my internet connection",
    "I want to speak to an agent about my bill": "i want to speak to an agent",
}
"""What the caller says → the words that must come through (tiny.en hears espeak's "bill" as
"will" whether or not a prompt played: the recognizer's error, not the gate's)."""


@pytest.mark.slow
@pytest.mark.parametrize("when", ["over the prompt", "after the prompt"])
@pytest.mark.parametrize("sentence", SENTENCES)
def test_caller_speech_over_and_after_the_prompt_is_recognized(tmp_path: Path, engine, tts, when: str,  # type: ignore[no-untyped-def]
                                                                 sentence: str) -> None:
    x, _ = sf.read(str(tts(sentence)), dtype="float32")
    if when == "over the prompt":
        # Live, the IVR stops the prompt at the caller's onset (SpeechStarted, ~0.1 s late).
        at = PROMPT_AT_S + 3.5
        played, heard = call(x, at, stop_at_s=at + 0.15)
    else:
        at = PROMPT_AT_S + len(prompt()) / PIPELINE_RATE + 1.0
        played, heard = call(x, at)
    texts, events = replay_caller_text(stereo(tmp_path / "answer.wav", played, heard), engine)
    assert len(texts) == 1, f"{len(texts)} caller finals"
    assert SENTENCES[sentence] in corpus.normalize(texts[0])
    assert abs(caller_onsets(events)[0] - at) < 0.2


@pytest.mark.parametrize("caller_gain_db", [0.0, -10.0, -20.0])
def test_a_quiet_caller_talking_over_a_louder_agent_is_not_held_back(caller_gain_db: float) -> None:
    """In a 2-channel recording the agent's voice is played into the caller's line, but a caller
    talking over the agent is not its echo, however much quieter: their levels do not rise and
    fall together. (A level test alone held back a caller 20 dB below the agent: the overlap's
    onsets moved and talk-over was lost.)"""
    from speech.settings import TalkOverSettings
    from speech.talk_over import TalkOverStage
    from tests.conftest import FIXTURES

    x, rate = sf.read(str(FIXTURES / "talk_over.wav"), dtype="float32")
    assert rate == PIPELINE_RATE and x.shape[1] == 2
    tracks = {Party.AGENT: int16(x[:, 0]), Party.CALLER: int16(x[:, 1] * 10 ** (caller_gain_db / 20))}

    def heard(gate: bool) -> tuple[list[float], list[tuple[float, Party]]]:
        events = run_stages([VadStage(VadSettings(echo_gate=gate)), TalkOverStage(TalkOverSettings())],
                            frames_from_tracks(tracks))
        return caller_onsets(events), [(round(e.start, 2), e.started_by) for e in of_type(events, TalkOver)]

    gated = heard(True)
    assert gated[1], "control: the fixture has talk-over"
    assert gated == heard(False)
