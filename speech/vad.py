"""Voice activity: turns each party's frames into SpeechStarted / SpeechEnded utterances.

webrtcvad classifies short chunks as voiced or not; a small per-party state machine smooths that
into utterances: one starts after ``start_ms`` of voiced audio (so clicks do not count) and ends
after ``hangover_ms`` of unvoiced audio (so the pauses between words do not cut a sentence). Both
events are back-dated to the audio they describe: ``SpeechStarted.t`` is the start of the first
voiced chunk, ``SpeechEnded.t`` the end of the last one, although each is only known later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import webrtcvad

from speech.events import Event, SpeechEnded, SpeechStarted
from speech.frames import SAMPLE_WIDTH, AudioFrame, Party
from speech.settings import VadSettings
from speech.stage import Stage

_GAP_TOLERANCE_S = 1e-4
"""Frames further apart than this on one party's clock are treated as a gap (buffer reset)."""
WARMUP_S = 0.09
"""webrtcvad calls the first ~80 ms it ever sees speech whatever they hold (measured on white
noise with 10, 20 and 30 ms chunks) while it sets up its noise model; those are ignored."""
FLOOR_SMOOTHING = 0.1
"""Weight of each new unvoiced chunk in the noise floor (dB, exponential average)."""
_SILENT_DB = -100.0
_FULL_SCALE_DB = float(20.0 * np.log10(32768.0))


@dataclass
class _PartyState:
    """Rechunk buffer and utterance state of one party."""

    buf: bytes = b""
    buf_t: float = 0.0
    """Call time of the first sample in ``buf``."""
    run_start: float | None = None
    """Onset of the current voiced run (before the utterance is confirmed)."""
    run_ms: int = 0
    speaking: bool = False
    onset: float = 0.0
    last_voiced_end: float = 0.0
    fed_s: float = 0.0
    """Audio this party's webrtcvad instance has seen."""
    floor_db: float | None = None
    """Running level of the chunks webrtcvad calls unvoiced (None until one is seen)."""


class VadStage(Stage):
    """webrtcvad per party, with start and hangover smoothing."""

    name = "vad"

    def __init__(self, settings: VadSettings) -> None:
        self.settings = settings
        self._vads: dict[Party, webrtcvad.Vad] = {}
        self._states: dict[Party, _PartyState] = {}

    def speaking(self, party: Party) -> bool:
        """Whether ``party`` is inside an utterance (hangover included)."""
        state = self._states.get(party)
        return bool(state and state.speaking)

    def process_frame(self, frame: AudioFrame) -> list[Event]:
        state = self._states.setdefault(frame.party, _PartyState())
        vad = self._vads.get(frame.party)
        if vad is None:
            vad = self._vads[frame.party] = webrtcvad.Vad(self.settings.aggressiveness)
        buffered_end = state.buf_t + len(state.buf) / SAMPLE_WIDTH / frame.sample_rate
        if not state.buf or abs(buffered_end - frame.timestamp) > _GAP_TOLERANCE_S:
            state.buf, state.buf_t = b"", frame.timestamp
        state.buf += frame.pcm
        chunk_samples = frame.sample_rate * self.settings.frame_ms // 1000
        chunk_bytes = chunk_samples * SAMPLE_WIDTH
        chunk_s = chunk_samples / frame.sample_rate
        events: list[Event] = []
        while len(state.buf) >= chunk_bytes:
            chunk, state.buf = state.buf[:chunk_bytes], state.buf[chunk_bytes:]
            t0 = state.buf_t
            state.buf_t += chunk_s
            state.fed_s += chunk_s
            voiced = self._voiced(vad, state, chunk, frame.sample_rate)
            events.extend(self._step(frame.party, state, voiced, t0, t0 + chunk_s))
        return events

    def finish(self, t: float) -> list[Event]:
        events: list[Event] = []
        for party, state in self._states.items():
            if state.speaking:
                events.append(self._ended(party, state))
            state.run_start, state.run_ms, state.buf = None, 0, b""
        return events

    def _voiced(self, vad: webrtcvad.Vad, state: _PartyState, chunk: bytes, rate: int) -> bool:
        level = _level_db(chunk)
        if level <= _SILENT_DB:
            return False
        said = vad.is_speech(chunk, rate)
        if not said:
            floor = state.floor_db
            state.floor_db = level if floor is None else floor + FLOOR_SMOOTHING * (level - floor)
            return False
        if state.fed_s <= WARMUP_S + 1e-9:
            return False
        return state.floor_db is None or level >= state.floor_db + self.settings.floor_margin_db

    def _step(self, party: Party, state: _PartyState, voiced: bool, t0: float, t1: float) -> list[Event]:
        chunk_ms = round((t1 - t0) * 1000)
        if state.speaking:
            if voiced:
                state.last_voiced_end = t1
            elif (t1 - state.last_voiced_end) * 1000 >= self.settings.hangover_ms - 0.5:
                return [self._ended(party, state)]
            return []
        if not voiced:
            state.run_start, state.run_ms = None, 0
            return []
        if state.run_start is None:
            state.run_start = t0
        state.run_ms += chunk_ms
        if state.run_ms < self.settings.start_ms:
            return []
        state.speaking, state.onset, state.last_voiced_end = True, state.run_start, t1
        state.run_start, state.run_ms = None, 0
        return [SpeechStarted(t=state.onset, party=party)]

    @staticmethod
    def _ended(party: Party, state: _PartyState) -> SpeechEnded:
        state.speaking = False
        end = state.last_voiced_end
        return SpeechEnded(t=end, start=state.onset, duration=end - state.onset, party=party)


def _level_db(chunk: bytes) -> float:
    """RMS level of a chunk in dBFS (``_SILENT_DB`` for digital silence)."""
    x = np.frombuffer(chunk, dtype="<i2").astype(np.float32)
    ms = float(np.mean(x * x))
    if ms <= 0.0:
        return _SILENT_DB
    return max(_SILENT_DB, float(10.0 * np.log10(ms)) - _FULL_SCALE_DB)
