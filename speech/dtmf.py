"""In-band DTMF: key presses heard as dual tones in the audio (phones that do not send RFC 4733).

Each frame is analysed as two half-overlapping windows (10 ms hop) with a Hann-windowed
single-bin DFT at the eight DTMF frequencies, one matrix product per frame (the Goertzel result,
vectorized). A window holds a key when the strongest row and column tones are both loud enough
(``min_level_db``), within ``twist_db`` of each other, clearly above the other tones of their
group, and carry nearly all the window's energy: speech and music spread energy over formants
and harmonics, a key press does not.

A digit is reported once it is over: after ``min_gap_ms`` without it (or as soon as another key
takes its place), if it lasted ``min_duration_ms``. Reporting at the end gives the duration and
means a dropout shorter than the gap inside a long press does not make two digits; the cost is
``min_gap_ms`` of latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from speech.events import DtmfDigit, Event
from speech.frames import AudioFrame, Party
from speech.settings import DtmfSettings
from speech.stage import Stage

ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COL_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")
"""``KEYS[row][col]``."""


@dataclass(frozen=True, slots=True)
class DtmfTuning:
    """Detector constants beyond ``DtmfSettings`` (candidates for settings)."""

    min_tone_fraction: float = 0.8
    """Share of the window's energy the two tones must carry (speech/music reject)."""
    min_peak_ratio_db: float = 6.0
    """How far the strongest tone of a group must stand above the second strongest."""
    edge_s: float = 0.007
    """Tone edge correction: a window holds the key only once the tone fills well over half of
    it, so the tone starts (ends) about this long before (after) the middle of the first (last)
    such window. Measured on synthetic keys at random offsets: onset error within ±5 ms."""


@dataclass
class _Press:
    """The key currently heard (or just heard) on one party."""

    digit: str
    first_end: float
    """End of the first window that held this key."""
    last_end: float
    """End of the last window that held this key."""
    win_s: float


@dataclass
class _PartyState:
    tail: np.ndarray
    """The previous frame's second half, as int16 samples (converted only when analyzed)."""
    tail_end: float
    press: _Press | None = None
    tail_energy: float = 0.0
    """Sum of the previous frame's squared samples (full scale 1.0): bounds what its half holds."""


class DtmfStage(Stage):
    """Goertzel DTMF detector per party; emits ``DtmfDigit(source="inband")``."""

    name = "dtmf"

    def __init__(self, settings: DtmfSettings, tuning: DtmfTuning | None = None) -> None:
        self.settings = settings
        self.tuning = tuning or DtmfTuning(
            min_tone_fraction=settings.min_tone_fraction, min_peak_ratio_db=settings.min_peak_ratio_db
        )
        self._states: dict[Party, _PartyState] = {}
        self._basis_key: tuple[int, int] | None = None
        self._basis = np.empty((0, 8), dtype=np.complex64)
        self._gain = 1.0
        self._amp_bound = 1.0
        self._level = 10.0 ** (settings.min_level_db / 20.0) - 1e-12
        """``min_level_db`` as an amplitude (full scale 1.0)."""

    def process_frame(self, frame: AudioFrame) -> list[Event]:
        n = frame.num_samples
        if n < 4:
            return []
        hop = n // 2
        state = self._states.get(frame.party)
        if state is None or abs(state.tail_end - frame.timestamp) > 1e-4 or len(state.tail) != hop:
            prev = state.press if state else None
            state = _PartyState(tail=np.zeros(hop, dtype=np.int16), tail_end=frame.timestamp, press=prev)
            self._states[frame.party] = state
        energy = frame.mean_square() * n
        quiet = state.press is None and self._too_quiet(n, frame.sample_rate, state.tail_energy + energy)
        samples = frame.samples()
        tail = state.tail
        state.tail, state.tail_end, state.tail_energy = samples[-hop:], frame.end, energy
        if quiet:
            return []  # no key can reach ``min_level_db`` in either window, none to close
        # the window that straddles the previous frame, then this frame itself (filled in place:
        # numpy's as_strided view cost more, in Python, than the copy of 320 floats)
        windows = np.empty((2, n), dtype=np.float32)
        windows[0, :hop] = tail
        windows[0, hop:] = samples[: n - hop]
        windows[1] = samples
        windows *= 1.0 / 32768.0
        amp = self._amplitudes(windows, frame.sample_rate)
        if state.press is None and not self._loud_enough(amp):
            return []  # no key in either window and none to close: nothing to track
        keys = self._classify(windows, amp)
        out: list[Event] = []
        for i, key in enumerate(keys, start=1):
            end = frame.timestamp + (i * hop) / frame.sample_rate
            out.extend(self._track(frame.party, state, key, end, n / frame.sample_rate))
        return out

    def _too_quiet(self, n: int, rate: int, energy: float) -> bool:
        """Whether audio with this much ``energy`` (sum of squares, over both windows) cannot hold
        a tone at ``min_level_db``. Cauchy-Schwarz bounds a tone's estimated amplitude by
        ``gain * |window| * sqrt(energy)``; most frames (silence, echo, quiet speech) are below it
        and skip the Goertzel bank, with the same result as running it."""
        self._basis_for(n, rate)
        return bool(self._amp_bound * math.sqrt(energy) < self._level)

    def finish(self, t: float) -> list[Event]:
        out: list[Event] = []
        for party, state in self._states.items():
            if state.press is not None:
                out.extend(self._close(party, state))
        return out

    def _amplitudes(self, windows: np.ndarray, rate: int) -> np.ndarray:
        """Estimated amplitude (full scale 1.0) of each of the 8 tones, per window."""
        basis = self._basis_for(windows.shape[1], rate)
        amp: np.ndarray = np.abs(windows @ basis) * self._gain
        return amp

    def _loud_enough(self, amp: np.ndarray) -> bool:
        """Whether some window has a row and a column tone at ``min_level_db`` or above (the
        first test ``_classify`` makes): most frames (silence, quiet speech) fail it, and then
        skip the rest of the analysis."""
        loudest = amp.reshape(len(amp), 2, 4).max(axis=2)  # per window: loudest row tone, column tone
        return bool((loudest.min(axis=1) >= self._level).any())

    def _classify(self, windows: np.ndarray, amp: np.ndarray) -> list[str | None]:
        """The key held in each window, or None."""
        power = np.mean(windows.astype(np.float64) ** 2, axis=1)
        rows, cols = amp[:, :4], amp[:, 4:]
        r = np.argmax(rows, axis=1)
        c = np.argmax(cols, axis=1)
        idx = np.arange(len(windows))
        r_amp, c_amp = rows[idx, r], cols[idx, c]
        r_second = np.sort(rows, axis=1)[:, -2]
        c_second = np.sort(cols, axis=1)[:, -2]
        tiny = 1e-12
        r_db = 20 * np.log10(r_amp + tiny)
        c_db = 20 * np.log10(c_amp + tiny)
        s, tu = self.settings, self.tuning
        ok = (
            (r_db >= s.min_level_db)
            & (c_db >= s.min_level_db)
            & (np.abs(r_db - c_db) <= s.twist_db)
            & (r_db - 20 * np.log10(r_second + tiny) >= tu.min_peak_ratio_db)
            & (c_db - 20 * np.log10(c_second + tiny) >= tu.min_peak_ratio_db)
            & ((r_amp**2 + c_amp**2) / 2 >= tu.min_tone_fraction * (power + tiny))
        )
        return [KEYS[ri][ci] if good else None for ri, ci, good in zip(r, c, ok, strict=True)]

    def _basis_for(self, n: int, rate: int) -> np.ndarray:
        if self._basis_key != (n, rate):
            t = np.arange(n) / rate
            freqs = np.array(ROW_HZ + COL_HZ)
            window = np.hanning(n)
            self._basis = (window[:, None] * np.exp(-2j * np.pi * t[:, None] * freqs[None, :])).astype(np.complex64)
            self._gain = 2.0 / float(window.sum())
            self._amp_bound = self._gain * float(np.sqrt(np.sum(window**2))) * 1.001  # complex64 rounding
            self._basis_key = (n, rate)
        return self._basis

    def _track(self, party: Party, state: _PartyState, key: str | None, end: float, win_s: float) -> list[Event]:
        """Advance the press state machine with one window ending at ``end``."""
        out: list[Event] = []
        press = state.press
        gap_s = self.settings.min_gap_ms / 1000
        if press is not None and (key != press.digit) and (key is not None or end - press.last_end >= gap_s - 1e-6):
            out.extend(self._close(party, state))
            press = None
        if key is not None:
            if press is None:
                state.press = _Press(digit=key, first_end=end, last_end=end, win_s=win_s)
            else:
                press.last_end = end
        return out

    def _close(self, party: Party, state: _PartyState) -> list[Event]:
        press, state.press = state.press, None
        if press is None:
            return []
        # A window holds the key once the tone fills well over half of it: the tone spans from
        # about the middle of the first such window to the middle of the last one, widened by
        # ``edge_s`` on each side.
        onset = press.first_end - press.win_s / 2 - self.tuning.edge_s
        end = press.last_end - press.win_s / 2 + self.tuning.edge_s
        duration = max(0.0, end - onset)
        # The measured length is only good to one hop, so a press that is exactly
        # ``min_duration_ms`` long is accepted within one hop of it.
        hop_ms = press.win_s / 2 * 1000
        if duration * 1000 + hop_ms + 1e-6 < self.settings.min_duration_ms:
            return []
        return [DtmfDigit(t=onset, digit=press.digit, source="inband", duration=duration, party=party)]
