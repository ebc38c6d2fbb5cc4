"""Voice activity: turns each party's frames into SpeechStarted / SpeechEnded utterances.

webrtcvad classifies short chunks as voiced or not; a small per-party state machine smooths that
into utterances: one starts after ``start_ms`` of voiced audio (so clicks do not count) and ends
after ``hangover_ms`` of unvoiced audio (so the pauses between words do not cut a sentence). Both
events are back-dated to the audio they describe: ``SpeechStarted.t`` is the start of the first
voiced chunk, ``SpeechEnded.t`` the end of the last one, although each is only known later.

Echo gate: a phone sends part of what we play back on the caller's channel (line and acoustic
echo, ~20-30 dB down, ~100-200 ms late). webrtcvad hears that as speech, so our own prompt would
open utterances, barge in on itself and be transcribed as the caller. The stage knows what is
played into each party's line: the level the edge stamps on a frame (``far_end_dbfs``, live
calls) and the audio of the other parties (a 2-channel recording's played channel, in replay).
While something was played within ``echo_tail_ms``, a chunk is echo when it is quieter than the
loudest played level in that window minus ``echo_return_loss_db`` *and* its level has followed
the played level's rises and falls (at some delay within the tail) over the last
``ECHO_WINDOW_S``: echo is a delayed copy of what was played, a person is not. The level test
alone (a Geigel detector) also held back a quiet caller talking over a louder agent in a stereo
recording (20 dB apart: the caller's overlap lost, talk-over not seen); the envelope test keeps
that speech, while the echo of a prompt still correlates at 0.76-0.88 (5th percentile).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import webrtcvad

from speech.events import Event, SpeechEnded, SpeechStarted
from speech.frames import SAMPLE_WIDTH, SILENT_DBFS, AudioFrame, Party, pcm_dbfs
from speech.settings import VadSettings
from speech.stage import Stage

_GAP_TOLERANCE_S = 1e-4
"""Frames further apart than this on one party's clock are treated as a gap (buffer reset)."""
WARMUP_S = 0.09
"""webrtcvad calls the first ~80 ms it ever sees speech whatever they hold (measured on white
noise with 10, 20 and 30 ms chunks) while it sets up its noise model; those are ignored."""
FLOOR_SMOOTHING = 0.1
"""Weight of each new unvoiced chunk in the noise floor (dB, exponential average)."""
_SILENT_DB = SILENT_DBFS
ECHO_WINDOW_S = 1.0
"""Level history compared with the played level's to tell echo from a person (20 ms steps);
0.6 s let chance correlations of two talkers reach the echo's."""
_SLOT_S = 0.02
_MIN_SLOTS = 6
"""Fewer comparable 20 ms levels than this: too little history, the level test decides alone."""
_ENVELOPE_FLOOR_DB = -65.0
"""Levels are compared above this: lower is a line's noise floor (and digital silence at −100
dBFS), which carries no envelope but would outweigh the speech in a correlation. With it, echo
of the shipped prompts through G.711 correlated 0.76-0.88 (5th percentile over 1 s), a caller
talking 20 dB below the agent 0.55 (95th percentile); without it 0.65-0.75 against 0.68."""
_FLAT_DB = 1.0
"""A played level that varies less than this (dB, standard deviation) says nothing about echo."""


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
    far_end: deque[tuple[float, float, float]] = field(default_factory=deque)
    """(start, end, dBFS) of recent audio played into this party's line, as the edge stamped it."""
    sent: deque[tuple[float, float, float]] = field(default_factory=deque)
    """(start, end, dBFS) of this party's own recent frames: what the other parties' lines carry."""
    echo_gated_s: float = 0.0
    """Audio the webrtcvad called speech that the echo gate held back as echo."""
    sent_slots: dict[int, float] = field(default_factory=dict)
    """``sent`` by 20 ms slot (a frame's start), kept as frames arrive: the envelope test reads
    slots, and rebuilding them from the histories on every voiced frame was the gate's main cost."""
    far_slots: dict[int, float] = field(default_factory=dict)
    """``far_end`` by 20 ms slot, the loudest level stamped in each."""
    oldest_slot: int | None = None
    """Lowest slot either map may still hold (they are pruned with the histories)."""


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

    def echo_gated_s(self, party: Party) -> float:
        """Seconds of ``party``'s audio webrtcvad called speech but the echo gate held back."""
        state = self._states.get(party)
        return state.echo_gated_s if state else 0.0

    def process_frame(self, frame: AudioFrame) -> list[Event]:
        state = self._states.setdefault(frame.party, _PartyState())
        frame_level: float | None = None
        if self.settings.echo_gate:
            frame_level = frame.dbfs()
            self._note_played(state, frame, frame_level)
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
            # A chunk is usually the frame itself (both 20 ms): its level is known already.
            level = frame_level if frame_level is not None and chunk == frame.pcm else pcm_dbfs(chunk)
            voiced = self._voiced(vad, state, chunk, frame.sample_rate, level)
            if voiced and self.settings.echo_gate and self._is_echo(frame.party, level, t0, t0 + chunk_s):
                state.echo_gated_s += chunk_s
                voiced = False
            events.extend(self._step(frame.party, state, voiced, t0, t0 + chunk_s))
        return events

    def finish(self, t: float) -> list[Event]:
        events: list[Event] = []
        for party, state in self._states.items():
            if state.speaking:
                events.append(self._ended(party, state))
            state.run_start, state.run_ms, state.buf = None, 0, b""
        return events

    def _voiced(self, vad: webrtcvad.Vad, state: _PartyState, chunk: bytes, rate: int, level: float) -> bool:
        """``level``: the chunk's dBFS."""
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

    def _note_played(self, state: _PartyState, frame: AudioFrame, level: float) -> None:
        """Remember this frame's own ``level`` (the far end of the other parties) and what the
        edge says was played into its line, for ``echo_tail_ms``."""
        keep_after = frame.timestamp - self.settings.echo_tail_ms / 1000 - ECHO_WINDOW_S - 0.1
        slot = round(frame.timestamp / _SLOT_S)
        if frame.far_end_dbfs is not None:
            state.far_end.append((frame.timestamp, frame.end, frame.far_end_dbfs))
            state.far_slots[slot] = max(frame.far_end_dbfs, state.far_slots.get(slot, _SILENT_DB))
        state.sent.append((frame.timestamp, frame.end, level))
        state.sent_slots[slot] = level
        for history in (state.far_end, state.sent):
            while history and history[0][1] < keep_after:
                history.popleft()
        # the maps drop what the histories dropped (a slot is kept one step longer: never read)
        cutoff = round(keep_after / _SLOT_S) - 1
        low = slot if state.oldest_slot is None else state.oldest_slot
        if low < cutoff - 4 * round(ECHO_WINDOW_S / _SLOT_S):  # a jump (a gap in the audio): start over
            state.sent_slots = {k: v for k, v in state.sent_slots.items() if k >= cutoff}
            state.far_slots = {k: v for k, v in state.far_slots.items() if k >= cutoff}
            low = cutoff
        while low < cutoff:
            state.sent_slots.pop(low, None)
            state.far_slots.pop(low, None)
            low += 1
        state.oldest_slot = low

    def _is_echo(self, party: Party, level: float, t0: float, t1: float) -> bool:
        """Whether the chunk [t0, t1), at ``level`` dBFS, is no louder than the echo of what was
        played into ``party``'s line during the echo tail before it."""
        since = t0 - self.settings.echo_tail_ms / 1000
        played = [lv for start, end, lv in self._states[party].far_end if end > since and start < t1]
        for other, state in self._states.items():
            if other != party:
                played.extend(lv for start, end, lv in state.sent if end > since and start < t1)
        loudest = max(played, default=_SILENT_DB)
        if loudest <= _SILENT_DB:
            return False
        if level >= loudest - self.settings.echo_return_loss_db:
            return False
        return self._follows_played(party, t1)

    def _follows_played(self, party: Party, t1: float) -> bool:
        """Whether ``party``'s recent levels rise and fall with what was played into its line,
        at some delay within the echo tail (Pearson correlation of 20 ms levels in dB)."""
        own = self._states[party].sent_slots
        sources = [self._states[party].far_slots] + [s.sent_slots for p, s in self._states.items() if p != party]
        last = round(t1 / _SLOT_S) - 1
        slots = [s for s in range(last - round(ECHO_WINDOW_S / _SLOT_S) + 1, last + 1) if s in own]
        if len(slots) < _MIN_SLOTS:
            return True
        mine = np.maximum(np.array([own[s] for s in slots]), _ENVELOPE_FLOOR_DB)
        if mine.std() < _FLAT_DB:
            return True  # a steady sound (or none): levels cannot tell, the level test decides
        # Every delay at once: row k holds the played levels k slots earlier (one matrix, not a
        # correlation per delay: this runs on every voiced frame while something is played).
        idx = np.array(slots)
        lags = np.arange(round(self.settings.echo_tail_ms / 1000 / _SLOT_S) + 1)
        base = int(idx[0] - lags[-1])
        span = range(base, int(idx[-1]) + 1)
        if len(sources) == 1:
            far = sources[0]
            levels = [far.get(slot, _SILENT_DB) for slot in span]
        else:
            levels = [max(src.get(slot, _SILENT_DB) for src in sources) for slot in span]
        played = np.array(levels, dtype=np.float64)
        theirs = np.maximum(played[idx[None, :] - lags[:, None] - base], _ENVELOPE_FLOOR_DB)
        spread = theirs.std(axis=1)
        if (spread < _FLAT_DB).any():
            return True
        cov = ((theirs - theirs.mean(axis=1, keepdims=True)) * (mine - mine.mean())).mean(axis=1)
        best = float((cov / (spread * mine.std())).max())  # Pearson correlation per delay
        return best >= self.settings.echo_min_correlation

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
