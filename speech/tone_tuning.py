"""The tone stage's fine-tuning constants: the scales and weights of its prosody model.

Operators tune ``speech.settings.ToneSettings`` (label thresholds, trend, signal weights); these
are the model's inner constants, kept apart so the stage module stays about the stage. Tests pass
a different ``ToneTuning`` to exercise bounds (e.g. a short ``max_utterance_s``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ToneTuning:
    """Thresholds of the tone stage that ToneSettings does not (yet) carry."""

    neutral_tension: float = 0.3
    """Prosody tension of a voice exactly at its baseline (matches the lexicon's neutral level)."""
    prebaseline_confidence: float = 0.5
    """Prosody deviations count this much until the caller's baseline is complete."""
    pitch_scale_st: float = 4.0
    """Pitch rise (semitones, ~+26%) that counts as one unit of arousal."""
    loudness_scale_db: float = 6.0
    rate_scale: float = 0.3
    """Relative speaking-rate change that counts as one unit (+30%)."""
    spread_scale: float = 0.5
    """Relative widening of the pitch range that counts as one unit; narrowing counts zero."""
    pitch_weight: float = 0.35
    loudness_weight: float = 0.3
    rate_weight: float = 0.25
    spread_weight: float = 0.1
    arousal_gain: float = 0.35
    """Prosody tension added per unit of arousal."""
    min_deviation: float = -1.0
    max_deviation: float = 2.0
    """Each feature's deviation is clipped to this many units, so one wild value cannot rule."""
    reason_pitch: float = 0.10
    """Pitch rise (relative) worth naming in an alert."""
    reason_loudness_db: float = 3.0
    reason_rate: float = 0.15
    reason_spread: float = 0.5
    reason_sentiment: float = -0.3
    """VADER compound at or below which "negative words" is named."""
    preroll_s: float = 0.5
    """Caller audio kept before SpeechStarted arrives (the VAD reports onsets late)."""
    max_utterance_s: float = 30.0
    """Audio kept per utterance (the newest part); bounds memory on endless speech."""
    min_voiced_s: float = 0.3
    """Voiced audio an utterance needs before its prosody counts (or joins the baseline)."""
    match_slack_s: float = 0.3
    """Slack when matching a transcript's bounds to an utterance's."""
    recent_utterances: int = 4
    """Scored utterances kept so a late transcript can still revise its update."""
