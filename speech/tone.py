"""Caller tone: a tension score per utterance from prosody plus words, and alerts when it rises.

The stage runs last in the chain. It buffers each caller utterance between the VAD's
SpeechStarted and SpeechEnded (bounded; audio under an IVR playback is ignored), measures its
prosody at SpeechEnded and waits for the ASR's FinalTranscript to add the words. Prosody is judged
against the caller's own first utterances, because a raised voice is only raised relative to the
same voice on the same line; words are judged by VADER plus escalation phrases (speech.lexicon).

One ToneUpdate per utterance; a ToneAlert when the score climbs into tense with a rising trend, or
first turns angry. Alerts re-arm only after the tension falls back below tense, so a caller who
stays upset raises one alert, not one per sentence.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from speech.events import (
    Event,
    FinalTranscript,
    PlaybackEnded,
    PlaybackStarted,
    SpeechEnded,
    SpeechStarted,
    ToneAlert,
    ToneUpdate,
    Word,
)
from speech.frames import AudioFrame, Party
from speech.lexicon import LexicalScorer, LexicalSignal, tokenize
from speech.load import ProcessLoad
from speech.prosody import (
    NeutralProsody,
    Prosody,
    ProsodyBaseline,
    ProsodyConfig,
    ProsodyDelta,
    analyze,
)
from speech.settings import ToneSettings
from speech.stage import Stage
from speech.tone_tuning import ToneTuning

log = logging.getLogger(__name__)

CALM, NEUTRAL, TENSE, ANGRY = "calm", "neutral", "tense", "angry"


@dataclass(slots=True, eq=False)
class _Utterance:
    start: float
    end: float
    prosody: Prosody | None
    texts: list[str] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    in_baseline: bool = False


@dataclass(slots=True)
class _Open:
    start: float
    frames: deque[AudioFrame]
    texts: list[str] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    text_end: float = -math.inf
    """Where the words that arrived before SpeechEnded reach to (call time)."""
    text_t: float = 0.0


@dataclass(frozen=True, slots=True)
class _Entry:
    t: float
    start: float
    label: str
    score: float


class ToneStage(Stage):
    """Scores one party's tension per utterance (the caller's by default; a bridged call has a
    second one for the agent); see the module docstring."""

    name = "tone"

    def __init__(
        self,
        settings: ToneSettings,
        *,
        tuning: ToneTuning | None = None,
        prosody_config: ProsodyConfig | None = None,
        neutral: NeutralProsody | None = None,
        lexicon: LexicalScorer | None = None,
        party: Party = Party.CALLER,
        alerts: bool = True,
        load: ProcessLoad | None = None,
    ) -> None:
        """``load``: the process's load state; while it sheds prosody, tone comes from words."""
        self.settings = settings
        self.load = load
        self.party = party
        self.alerts = alerts
        """Rising-tension and anger alerts (the agent's tone is shown, not alerted on)."""
        self.tuning = tuning or ToneTuning()
        self._prosody_config = prosody_config or ProsodyConfig()
        self._lexicon = lexicon or LexicalScorer()
        self._baseline = ProsodyBaseline(settings.baseline_utterances, neutral, self.tuning.min_voiced_s)
        self._preroll: deque[AudioFrame] = deque()
        self._open: _Open | None = None
        self._pending: list[_Utterance] = []
        self._recent: deque[_Utterance] = deque(maxlen=self.tuning.recent_utterances)
        self._history: list[_Entry] = []
        self._playing = 0
        self._rising_armed = True
        self._angry_armed = True

    # -- public -----------------------------------------------------------------------------

    def arc(self) -> list[tuple[float, str, float]]:
        """The call's tone over time, one ``(t, label, score)`` per scored utterance."""
        return [(e.t, e.label, e.score) for e in self._history]

    @property
    def baseline_complete(self) -> bool:
        return self._baseline.complete

    # -- Stage ------------------------------------------------------------------------------

    def process_frame(self, frame: AudioFrame) -> list[Event]:
        if frame.party is not self.party or (self._playing and self.party is Party.CALLER):
            return []
        if self._open is not None:
            _append_bounded(self._open.frames, frame, self.tuning.max_utterance_s)
        else:
            _append_bounded(self._preroll, frame, self.tuning.preroll_s)
        return []

    def process_event(self, event: Event) -> list[Event]:
        if isinstance(event, PlaybackStarted):
            self._playing += 1
            return []
        if isinstance(event, PlaybackEnded):
            self._playing = max(0, self._playing - 1)
            return []
        if event.party is not self.party:
            return []
        if isinstance(event, SpeechStarted):
            self._start_utterance(event.t)
            return []
        if isinstance(event, SpeechEnded):
            out = self._flush(event.t)
            start = event.start
            end = start + event.duration if event.duration > 0 else event.t
            return out + self._end_utterance(start, end, event.t)
        if isinstance(event, FinalTranscript):
            return self._on_final(event)
        return []

    def finish(self, t: float) -> list[Event]:
        out: list[Event] = []
        if self._open is not None:
            out += self._end_utterance(self._open.start, t, t)
        out += self._flush(t)
        self._preroll.clear()
        return out

    # -- utterances -------------------------------------------------------------------------

    def _start_utterance(self, t: float) -> None:
        frames = deque(f for f in self._preroll if f.end > t)
        self._preroll.clear()
        self._open = _Open(start=t, frames=frames)

    def _end_utterance(self, start: float, end: float, t: float) -> list[Event]:
        opened = self._open
        self._open = None
        source = opened.frames if opened is not None else self._preroll
        frames = [f for f in source if f.end > start and f.timestamp < end]
        self._preroll.clear()
        utt = _Utterance(start=start, end=end, prosody=self._measure(frames, start, end))
        if opened is not None:
            utt.texts, utt.words = opened.texts, opened.words
            if opened.texts and opened.text_end >= end - self.tuning.match_slack_s:
                # The transcript already covers the whole utterance: nothing left to wait for.
                return self._score(utt, max(opened.text_t, t))
        self._pending.append(utt)
        return []

    def _measure(self, frames: list[AudioFrame], start: float, end: float) -> Prosody | None:
        if not frames or (self.load is not None and not self.load.prosody):
            return None  # overload: pitch analysis (on the event loop) is shed before anything else
        rate = frames[0].sample_rate
        pcm = np.concatenate([f.samples() for f in frames if f.sample_rate == rate])
        # Trim to the VAD's bounds: the first and last frames straddle them. (Frames dropped
        # under a playback leave gaps, so only the two ends are cut by time.)
        head = max(0, round((start - frames[0].timestamp) * rate))
        tail = max(0, round((frames[-1].end - end) * rate))
        return analyze(pcm[head : max(head, len(pcm) - tail)], rate, self._prosody_config)

    def _on_final(self, final: FinalTranscript) -> list[Event]:
        text = final.text.strip()
        for utt in self._pending:
            if self._matches(final, utt):
                self._pending.remove(utt)
                _add_text(utt, text, final.words)
                return self._score(utt, final.t)
        if self._open is not None and final.start >= self._open.start - self.tuning.match_slack_s:
            # The ASR cut a long utterance before the VAD ended it: keep the words for later.
            if text:
                self._open.texts.append(text)
                self._open.words.extend(final.words)
                self._open.text_end = max(self._open.text_end, final.end)
                self._open.text_t = final.t
            return []
        for utt in reversed(self._recent):
            if self._matches(final, utt) and text:
                _add_text(utt, text, final.words)
                return self._score(utt, final.t)
        if not text:
            return []
        utt = _Utterance(start=final.start, end=final.end, prosody=None)
        _add_text(utt, text, final.words)
        return self._score(utt, final.t)

    def _matches(self, final: FinalTranscript, utt: _Utterance) -> bool:
        if final.start == 0.0 and final.end == 0.0:
            return True  # no bounds given: the oldest waiting utterance
        slack = self.tuning.match_slack_s
        end = max(final.end, final.start)
        return final.start <= utt.end + slack and end >= utt.start - slack

    def _flush(self, t: float) -> list[Event]:
        """Score utterances whose transcript never came (prosody only, or partial words)."""
        out: list[Event] = []
        pending, self._pending = self._pending, []
        for utt in pending:
            out += self._score(utt, t)
        return out

    # -- scoring ----------------------------------------------------------------------------

    def _score(self, utt: _Utterance, t: float) -> list[Event]:
        text = " ".join(utt.texts).strip()
        lexical = self._lexicon.score(text) if text else None
        wps = self._words_per_s(utt, text)
        delta: ProsodyDelta | None = None
        prosody_tension: float | None = None
        if utt.prosody is not None and self._baseline.usable(utt.prosody):
            delta = self._baseline.compare(utt.prosody, wps)
            prosody_tension = self._prosody_tension(delta)
        wp = self.settings.prosody_weight if prosody_tension is not None else 0.0
        wl = self.settings.lexical_weight if lexical is not None else 0.0
        if wp + wl <= 0:
            self._recent.append(utt)
            return []
        score = ((wp * (prosody_tension or 0.0)) + (wl * (lexical.tension if lexical else 0.0))) / (wp + wl)
        score = min(1.0, max(0.0, score))
        if utt.prosody is not None and not utt.in_baseline:
            utt.in_baseline = self._baseline.add(utt.prosody, wps)
        if not any(u is utt for u in self._recent):
            self._recent.append(utt)

        label = self._label(score)
        self._record(_Entry(t=t, start=utt.start, label=label, score=score))
        trend = self._trend()
        signals = _signals(utt.prosody, delta, prosody_tension, lexical, wps, self._baseline.complete)
        update = ToneUpdate(t=t, party=self.party, label=label, score=score, trend=trend,
                            signals=signals, start=utt.start, end=utt.end)
        log.debug("tone update: label=%s score=%.2f trend=%+.2f", label, score, trend)
        return [update, *self._alerts(t, label, score, trend, delta, lexical)]

    def _prosody_tension(self, d: ProsodyDelta) -> float | None:
        tu = self.tuning
        parts: list[tuple[float, float]] = []
        if math.isfinite(d.pitch_change):
            parts.append((tu.pitch_weight, 12.0 * math.log2(1.0 + d.pitch_change) / tu.pitch_scale_st))
        if math.isfinite(d.loudness_change_db):
            parts.append((tu.loudness_weight, d.loudness_change_db / tu.loudness_scale_db))
        if math.isfinite(d.rate_change):
            parts.append((tu.rate_weight, d.rate_change / tu.rate_scale))
        if math.isfinite(d.spread_change):
            parts.append((tu.spread_weight, max(0.0, d.spread_change) / tu.spread_scale))
        if not parts:
            return None
        total = sum(w for w, _ in parts)
        arousal = sum(w * min(tu.max_deviation, max(tu.min_deviation, v)) for w, v in parts) / total
        tension = min(1.0, max(0.0, tu.neutral_tension + tu.arousal_gain * arousal))
        confidence = 1.0 if d.reference == "baseline" else tu.prebaseline_confidence
        return tu.neutral_tension + confidence * (tension - tu.neutral_tension)

    def _words_per_s(self, utt: _Utterance, text: str) -> float | None:
        if not text:
            return None
        timed = [w for w in utt.words if w.end > w.start]
        if len(timed) >= 2 and timed[-1].end - timed[0].start > 0:
            return len(timed) / (timed[-1].end - timed[0].start)
        span = utt.prosody.active_s if utt.prosody is not None else utt.end - utt.start
        return len(tokenize(text)) / span if span > 0 else None

    def _label(self, score: float) -> str:
        if score >= self.settings.angry_score:
            return ANGRY
        if score >= self.settings.tense_score:
            return TENSE
        if score < self.settings.calm_score:
            return CALM
        return NEUTRAL

    def _record(self, entry: _Entry) -> None:
        """Append, or replace the entry of the same utterance (a late transcript revised it)."""
        for i, old in enumerate(self._history):
            if abs(old.start - entry.start) < 1e-6:
                self._history[i] = entry
                return
        self._history.append(entry)

    def _trend(self) -> float:
        scores = [e.score for e in self._history[-self.settings.trend_window :]]
        if len(scores) < 2:
            return 0.0
        return float(np.polyfit(np.arange(len(scores), dtype=float), scores, 1)[0])

    def _alerts(self, t: float, label: str, score: float, trend: float,
                delta: ProsodyDelta | None, lexical: LexicalSignal | None) -> list[Event]:
        s = self.settings
        if not self.alerts:
            return []
        if score < s.tense_score:
            self._rising_armed = self._angry_armed = True
            return []
        out: list[Event] = []
        reasons = self._reasons(delta, lexical)
        if self._rising_armed and trend >= s.rising_trend:
            self._rising_armed = False
            why = (f"tension rising {trend:+.2f} per utterance", *reasons)
            out.append(ToneAlert(t=t, party=self.party, kind="rising_tension", label=label, score=score, reasons=why))
        if self._angry_armed and label == ANGRY:
            self._angry_armed = False
            out.append(ToneAlert(t=t, party=self.party, kind="angry", label=label, score=score, reasons=reasons))
        if out:
            log.info("tone alert: %s", ",".join(a.kind for a in out if isinstance(a, ToneAlert)))
        return out

    def _reasons(self, d: ProsodyDelta | None, lex: LexicalSignal | None) -> tuple[str, ...]:
        """Plain words for the signals that drove the score."""
        tu = self.tuning
        out: list[str] = []
        if d is not None:
            ref = "over baseline" if d.reference != "defaults" else "over typical"
            if d.pitch_change >= tu.reason_pitch:
                out.append(f"pitch {d.pitch_change * 100:+.0f}% {ref}")
            if d.loudness_change_db >= tu.reason_loudness_db:
                out.append(f"loudness {d.loudness_change_db:+.0f} dB")
            if d.rate_change >= tu.reason_rate:
                out.append(f"speaking rate {d.rate_change * 100:+.0f}%")
            if d.spread_change >= tu.reason_spread:
                out.append(f"pitch range {d.spread_change * 100:+.0f}%")
        if lex is not None:
            out += [f"escalation phrase: '{p}'" for p in lex.phrases]
            if lex.sentiment <= tu.reason_sentiment:
                out.append(f"negative words (sentiment {lex.sentiment:+.2f})")
        return tuple(out)


def _append_bounded(frames: deque[AudioFrame], frame: AudioFrame, keep_s: float) -> None:
    frames.append(frame)
    while frames and frame.end - frames[0].timestamp > keep_s + 1e-9:
        frames.popleft()


def _add_text(utt: _Utterance, text: str, words: tuple[Word, ...]) -> None:
    if text:
        utt.texts.append(text)
        utt.words.extend(words)


def _signals(p: Prosody | None, d: ProsodyDelta | None, prosody: float | None,
             lex: LexicalSignal | None, wps: float | None, baseline: bool) -> dict[str, float]:
    """The numbers behind a score, finite values only (they go into JSON)."""
    raw: dict[str, float | None] = {"baseline": 1.0 if baseline else 0.0, "prosody": prosody}
    if p is not None:
        raw.update(voiced_s=p.voiced_s, pitch_hz=p.pitch_hz, pitch_spread_st=p.pitch_spread_st,
                   loudness_db=p.loudness_db, syllable_rate=p.syllable_rate)
    if d is not None:
        raw.update(pitch_change=d.pitch_change, loudness_change_db=d.loudness_change_db,
                   rate_change=d.rate_change, spread_change=d.spread_change)
    if lex is not None:
        raw.update(lexical=lex.tension, sentiment=lex.sentiment, escalation=lex.escalation)
    raw["words_per_s"] = wps
    return {k: round(float(v), 4) for k, v in raw.items() if v is not None and math.isfinite(v)}
