"""PocketSphinx: the English engine that always works offline (its model ships in the wheel).

Accuracy is modest (FACTS: ~34% WER on read speech, ~70% on espeak-ng voices), so it is the
fallback for free speech and the right tool for IVR menus, where a JSGF grammar of the menu
phrases turns it into a choice among a few answers at a fraction of the CPU.

A pocketsphinx ``Decoder`` bundles the acoustic model, dictionary and language model (~95 MB,
~0.5 s to load), and cannot be shared by two utterances at once. The engine therefore keeps a
pool of decoders: a session leases one only while an utterance is being decoded and gives it
back at ``finish()``, so the number of loaded models follows the number of utterances decoded
at the same moment, not the number of calls or grammars. Grammar searches are added to a
decoder once and cached by their phrases; each session keeps its own cepstral mean (CMN) and
restores it on the decoder it leases, so parties do not leak channel statistics into each other.

pocketsphinx holds the GIL while it decodes: run one stream per process to use several cores.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pocketsphinx

from speech.asr.base import AsrEngine, AsrError, Hypothesis, RecognizerSession
from speech.events import Word
from speech.settings import AsrSettings
from speech.text import DEFAULT_RULES, match_phrase
from speech.text import words as text_words

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""The shipped en-us acoustic model is 16 kHz; telephone audio is resampled to it upstream."""
FRAME_S = 0.01
"""pocketsphinx frame rate (``frate`` 100): ``seg()`` frame indices are 10 ms steps."""
PARTIAL_INTERVAL_S = 0.5
"""Audio between two looks at the partial hypothesis (reading it costs a search backtrace)."""
NOISE_FLOOR_DBFS = -60.0
"""Level of the Gaussian noise floor mixed into the input (None: off). Exact digital silence
(padding, silent RTP) drives pocketsphinx's log-energy features and its running cepstral mean
off the model; measured on espeak-ng menu phrases resampled from 8 kHz, grammar hits went from
5/12 to 12/12 with this floor. Its own ``dither`` option (1/2 bit) is too weak to help."""
MIN_PREFIX_COVERAGE = DEFAULT_RULES.min_prefix_coverage
"""Share of a menu phrase's words an unfinished grammar path must cover to count as it."""
_NON_WORDS = frozenset({"<s>", "</s>", "<sil>"})
_VARIANT = re.compile(r"\(\d+\)$")


@dataclass(frozen=True, slots=True)
class PocketsphinxModel:
    """Where the model files are; the defaults are the en-us model inside the wheel."""

    hmm: Path
    lm: Path
    dictionary: Path

    @classmethod
    def shipped(cls) -> PocketsphinxModel:
        base = Path(pocketsphinx.get_model_path("en-us"))
        return cls(hmm=base / "en-us", lm=base / "en-us.lm.bin", dictionary=base / "cmudict-en-us.dict")


@dataclass(frozen=True, slots=True)
class _Grammar:
    """A menu compiled to JSGF; ``phrases`` maps the spoken word sequence to the caller's phrase."""

    name: str
    jsgf: str
    phrases: dict[str, str]

    def choose(self, spoken: str) -> tuple[str, float]:
        """The phrase ``spoken`` stands for, and how much of it was heard (0 = no choice).

        When the audio ends before the search reaches the grammar's final state, pocketsphinx
        returns the best path so far ("speak to an"). The shared matcher (``speech.text``)
        decides: a whole phrase is that phrase; the start of exactly one phrase covering at
        least ``MIN_PREFIX_COVERAGE`` of its words is that phrase with a proportionally lower
        confidence; anything else is no choice (empty text).
        """
        match = match_phrase(spoken, [(phrase, key) for key, phrase in self.phrases.items()])
        if match is None:
            return "", 0.0
        return match.key, 1.0 if match.score > 1 else match.score


class PocketsphinxEngine(AsrEngine):
    """US-English pocketsphinx; create one per process and share it across calls."""

    name = "pocketsphinx"
    sample_rate = SAMPLE_RATE
    concurrency = 1  # it holds the GIL while decoding: more threads would only queue

    def __init__(
        self,
        model: PocketsphinxModel | None = None,
        *,
        partial_interval_s: float = PARTIAL_INTERVAL_S,
        noise_floor_dbfs: float | None = NOISE_FLOOR_DBFS,
    ) -> None:
        self.model = model or PocketsphinxModel.shipped()
        self.partial_interval_s = partial_interval_s
        self.noise_sigma = 0.0 if noise_floor_dbfs is None else 32768.0 * 10 ** (noise_floor_dbfs / 20)
        for path in (self.model.hmm, self.model.lm, self.model.dictionary):
            if not path.exists():
                raise AsrError(f"{path}: pocketsphinx model file not found")
        self._lock = threading.Lock()
        self._idle: list[_LeasedDecoder] = []
        self._decoders = 0
        self._grammars: dict[tuple[str, ...], _Grammar] = {}
        self._closed = False
        t0 = time.perf_counter()
        first = self._new_decoder()
        self.load_seconds = time.perf_counter() - t0
        """Time it took to load the first decoder (the model)."""
        self._idle.append(first)

    @property
    def description(self) -> str:
        return (
            f"pocketsphinx, en-us model {self.model.hmm}, loaded in {self.load_seconds:.1f} s, "
            f"{self.decoders_loaded} decoder(s)"
        )

    @property
    def decoders_loaded(self) -> int:
        """How many decoders (model copies) this engine has loaded so far."""
        return self._decoders

    def open_session(self, grammar: Sequence[str] | None = None) -> PocketsphinxSession:
        if self._closed:
            raise AsrError("pocketsphinx engine is closed")
        compiled = self.compile_grammar(grammar) if grammar else None
        return PocketsphinxSession(self, compiled)

    def compile_grammar(self, phrases: Sequence[str]) -> _Grammar:
        """Normalize ``phrases`` to dictionary words and build (and cache) their JSGF grammar.

        Words missing from the dictionary are dropped (a warning counts them); a phrase left with
        no word at all is an ``AsrError``, since it could never be recognized.
        """
        key = tuple(phrases)
        with self._lock:
            cached = self._grammars.get(key)
        if cached is not None:
            return cached
        if not key:
            raise AsrError("grammar has no phrases")
        decoder = self._lease()
        try:
            spoken: dict[str, str] = {}
            dropped = 0
            for phrase in key:
                spoken_words = text_words(phrase)
                known = [w for w in spoken_words if decoder.decoder.lookup_word(w) is not None]
                dropped += len(spoken_words) - len(known)
                if not known:
                    raise AsrError(
                        f"grammar phrase {phrase!r} has no word in the pocketsphinx dictionary"
                    )
                spoken.setdefault(" ".join(known), phrase)
        finally:
            self._release(decoder)
        if dropped:
            log.warning("grammar: dropped %d word(s) missing from the pocketsphinx dictionary", dropped)
        alternatives = " | ".join(spoken)
        jsgf = f"#JSGF V1.0;\ngrammar menu;\npublic <choice> = {alternatives};\n"
        name = "g" + hashlib.sha1(jsgf.encode()).hexdigest()[:12]
        compiled = _Grammar(name=name, jsgf=jsgf, phrases=spoken)
        with self._lock:
            self._grammars[key] = compiled
        return compiled

    def close(self) -> None:
        """Drop the idle decoders; leased ones are freed when their sessions finish. Idempotent."""
        with self._lock:
            self._closed = True
            self._idle.clear()
        super().close()

    # -- decoder pool (any worker thread) ---------------------------------------------------

    def _new_decoder(self) -> _LeasedDecoder:
        config = pocketsphinx.Config(
            hmm=str(self.model.hmm),
            lm=str(self.model.lm),
            dict=str(self.model.dictionary),
            samprate=SAMPLE_RATE,
            loglevel="FATAL",
        )
        try:
            decoder = pocketsphinx.Decoder(config)
        except (RuntimeError, ValueError) as exc:
            raise AsrError(f"{self.model.hmm}: pocketsphinx could not load the model ({exc})") from exc
        with self._lock:
            self._decoders += 1
        return _LeasedDecoder(decoder)

    def _lease(self) -> _LeasedDecoder:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._new_decoder()

    def _release(self, leased: _LeasedDecoder) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(leased)


class _LeasedDecoder:
    """A decoder plus the grammar searches already added to it."""

    def __init__(self, decoder: pocketsphinx.Decoder) -> None:
        self.decoder = decoder
        self.searches: set[str] = set()
        self.initial_cmn: str = decoder.get_cmn(False)
        """The model's ``cmninit``: where a new session's channel estimate starts."""

    def activate(self, grammar: _Grammar | None) -> None:
        if grammar is None:
            self.decoder.activate_search()
            return
        if grammar.name not in self.searches:
            try:
                self.decoder.add_jsgf_string(grammar.name, grammar.jsgf)
            except ValueError as exc:
                raise AsrError(f"pocketsphinx rejected the grammar ({exc})") from exc
            self.searches.add(grammar.name)
        self.decoder.activate_search(grammar.name)


class PocketsphinxSession(RecognizerSession):
    """One party's recognizer. Not thread-safe; holds the GIL while decoding."""

    sample_rate = SAMPLE_RATE

    def __init__(self, engine: PocketsphinxEngine, grammar: _Grammar | None) -> None:
        self._engine = engine
        self._grammar = grammar
        self._leased: _LeasedDecoder | None = None
        self._cmn: str | None = None
        self._samples = 0
        self._next_partial = 0
        self._last_partial = ""
        self._rng = np.random.default_rng(0)  # deterministic noise floor per session

    def accept(self, pcm: bytes) -> Hypothesis | None:
        if not pcm:
            return None
        if self._leased is None:
            self._start()
        assert self._leased is not None
        decoder = self._leased.decoder
        if self._engine.noise_sigma:
            pcm = self._with_noise_floor(pcm)
        try:
            decoder.process_raw(pcm, False, False)
        except RuntimeError as exc:
            raise AsrError(f"pocketsphinx failed to decode ({exc})") from exc
        self._samples += len(pcm) // 2
        if not self.partials or self._samples < self._next_partial:
            return None  # reading the hypothesis costs a search backtrace
        self._next_partial = self._samples + int(self._engine.partial_interval_s * SAMPLE_RATE)
        hyp = decoder.hyp()
        text = self._text(hyp.hypstr) if hyp is not None else ""
        if not text or text == self._last_partial:
            return None
        self._last_partial = text
        return Hypothesis(text=text, final=False)

    def finish(self) -> Hypothesis:
        """End the utterance: text, word timings (seconds into it) and a confidence in [0, 1].

        Confidence: free speech uses the mean lattice posterior of the words (``seg().prob``);
        grammar mode uses the utterance posterior (``get_prob()``), because the FSG search
        gives every word of the chosen phrase a posterior of 1, times the share of the phrase
        heard (see ``_Grammar.choose``). In grammar mode the text is the menu phrase as given to
        ``open_session``, or "" when no phrase was recognized.
        """
        leased = self._leased
        if leased is None:
            return Hypothesis(text="", final=True)
        decoder = leased.decoder
        try:
            decoder.end_utt()
            hyp = decoder.hyp()
            words = tuple(
                Word(
                    word=_VARIANT.sub("", seg.word),
                    start=round(seg.start_frame * FRAME_S, 3),
                    end=round((seg.end_frame + 1) * FRAME_S, 3),
                    conf=float(min(max(seg.prob, 0.0), 1.0)),
                )
                for seg in (decoder.seg() or ())
                if _is_word(seg.word)
            )
            utterance_prob = float(decoder.get_prob()) if hyp is not None else 0.0
            self._cmn = decoder.get_cmn(False)
        finally:
            self._leased = None
            self._engine._release(leased)
        spoken = " ".join(w.word for w in words)
        if self._grammar is not None:
            text, coverage = self._grammar.choose(spoken)
            confidence = utterance_prob * coverage
        else:
            text = spoken
            confidence = sum(w.conf for w in words) / len(words) if words else 0.0
        return Hypothesis(
            text=text, words=words, confidence=min(max(confidence, 0.0), 1.0), final=True
        )

    def close(self) -> None:
        """Give back a decoder still leased mid-utterance. Idempotent."""
        leased, self._leased = self._leased, None
        if leased is not None:
            try:
                leased.decoder.end_utt()
            except RuntimeError:
                pass
            self._engine._release(leased)

    def _start(self) -> None:
        leased = self._engine._lease()
        try:
            leased.activate(self._grammar)
            leased.decoder.set_cmn(self._cmn if self._cmn is not None else leased.initial_cmn)
            leased.decoder.start_utt()
        except Exception:
            self._engine._release(leased)
            raise
        self._leased = leased
        self._samples = 0
        self._next_partial = int(self._engine.partial_interval_s * SAMPLE_RATE)
        self._last_partial = ""

    def _with_noise_floor(self, pcm: bytes) -> bytes:
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        x += self._rng.normal(0.0, self._engine.noise_sigma, x.size).astype(np.float32)
        return np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()

    def _text(self, hypstr: str) -> str:
        words = [_VARIANT.sub("", w) for w in hypstr.split() if _is_word(w)]
        return " ".join(words)


def _is_word(token: str) -> bool:
    """Not a sentence mark, silence or a filler such as ``[NOISE]`` / ``++UM++``."""
    return token not in _NON_WORDS and not token.startswith(("[", "+"))


def build(settings: AsrSettings) -> PocketsphinxEngine:
    """Registry factory (``speech.asr.registry``)."""
    engine = PocketsphinxEngine()
    engine.workers = settings.workers
    return engine
