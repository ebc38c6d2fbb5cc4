"""Settings of the speech stages and recognizers (frozen; built by the composition root)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VadSettings(_Frozen):
    aggressiveness: int = Field(2, ge=0, le=3)
    """webrtcvad mode; 2-3 keep silence gaps whole in noise."""
    frame_ms: Literal[10, 20, 30] = 20
    start_ms: int = 60
    """Voiced audio needed before an utterance starts."""
    hangover_ms: int = 300
    """Unvoiced audio needed before it ends, so a word is not cut."""
    preroll_ms: int = 300
    """Audio before the detected onset that is still sent to ASR."""
    floor_margin_db: float = 6.0
    """A chunk is voiced only this far above the party's running noise floor (webrtcvad alone
    keeps saying "speech" for 60-120 ms after a word)."""


class AsrSettings(_Frozen):
    engine: Literal["auto", "vosk", "pocketsphinx", "none"] = "auto"
    """``auto``: vosk when a vosk model resolves, else pocketsphinx (ships its English model)."""
    vosk_model_path: Path | None = None
    vosk_language: str = "en-us"
    vosk_download: bool = False
    """Let vosk download a model for ``vosk_language`` (needs internet)."""
    partials: bool = True
    max_utterance_s: float = 20.0
    """Force a final after this much continuous speech."""


class DeadAirSettings(_Frozen):
    threshold_s: float = Field(5.0, gt=0)


class ToneSettings(_Frozen):
    baseline_utterances: int = 2
    """Caller utterances that set the prosody baseline."""
    calm_score: float = 0.2
    """Below this tension an utterance is calm (neutral up to ``tense_score``)."""
    tense_score: float = 0.45
    angry_score: float = 0.7
    rising_trend: float = 0.12
    """Score slope per utterance over the window that raises a rising-tension alert."""
    trend_window: int = 3
    prosody_weight: float = 0.45
    lexical_weight: float = 0.55


class TalkOverSettings(_Frozen):
    min_overlap_s: float = 0.3


class DtmfSettings(_Frozen):
    min_duration_ms: int = 40
    min_gap_ms: int = 40
    twist_db: float = 8.0
    min_level_db: float = -30.0
    min_tone_fraction: float = 0.8
    """Share of a window's energy the two tones must carry: rejects speech and music."""
    min_peak_ratio_db: float = 6.0
    """How far the strongest tone of a group stands above the runner-up."""
