"""The engine contract: a process-wide model that declares what it can do and owns its decode pool.

Two kinds of engine (livekit's ``STTCapabilities`` split):

- *streaming* engines (pocketsphinx, vosk) decode incrementally: ``open_session()`` gives a
  stateful ``RecognizerSession`` fed chunk by chunk, with native partials;
- *batch* engines (whisper) decode a whole utterance at once: ``BatchEngine.decode()`` is a pure
  function of the audio, and ``speech.asr.adapter.BufferedStream`` turns it into an utterance
  stream with partials by re-decoding.

Either way the engine is created once per process by the composition root and shared by every
call; all decoding runs on its one ``DecodePool`` (finals ahead of partials). Word times an engine
reports are seconds from the start of the audio it was given; streams move them onto the call clock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from speech.asr.pool import DecodePool
from speech.events import Word

GrammarMode = Literal["native", "after", "none"]
"""How an engine serves IVR menus: ``native`` restricts its search to the phrases; ``after``
decodes freely and the shared phrase matcher (``speech.text``) picks the choice; ``none``: no
menus by speech."""


class AsrError(RuntimeError):
    """The engine cannot be used: model missing or unreadable, bad grammar, library error."""


@dataclass(frozen=True, slots=True)
class EngineCapabilities:
    """What the stream layer may expect of an engine."""

    streaming: bool = True
    """Incremental decoding with native partials (``open_session``); else ``BatchEngine``."""
    grammar: GrammarMode = "native"
    sample_rate: int = 16000
    """Input rate the engine needs; streams resample to it once, at the engine's edge."""
    concurrency: int = 1
    """Decodes worth running at once (threads in the engine's decode pool)."""


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """What an engine heard so far (partial) or for a whole utterance (final)."""

    text: str
    words: tuple[Word, ...] = field(default=())
    confidence: float = 0.0
    final: bool = False


class RecognizerSession(ABC):
    """One streaming recognizer for one party of one call. Not thread-safe: its stream runs every
    call on one strand of the decode pool, so calls never overlap and keep their order."""

    sample_rate: int = 16000
    partials: bool = True
    """False while nobody wants partials (the process sheds them under overload): ``accept``
    may skip computing them and return None."""

    @abstractmethod
    def accept(self, pcm: bytes) -> Hypothesis | None:
        """Feed 16-bit mono PCM at ``sample_rate``; return a partial when it changed, else None."""

    @abstractmethod
    def finish(self) -> Hypothesis:
        """End the current utterance and return its final hypothesis; ready for the next one."""

    def close(self) -> None:
        """Free the recognizer."""


class AsrEngine:
    """Owns the loaded model and the process's decode pool: one per process, shared by calls.

    Subclasses describe themselves with the class attributes below (or override
    ``capabilities``); ``workers`` sizes the pool (0: the engine's ``concurrency``).
    """

    name: str = "engine"
    sample_rate: int = 16000
    streaming: bool = True
    grammar_mode: GrammarMode = "native"
    concurrency: int = 1
    workers: int = 0

    @property
    def capabilities(self) -> EngineCapabilities:
        return EngineCapabilities(
            streaming=self.streaming,
            grammar=self.grammar_mode,
            sample_rate=self.sample_rate,
            concurrency=max(1, self.workers or self.concurrency),
        )

    @property
    def pool(self) -> DecodePool:
        """The engine's decode pool, started on first use (sized from ``capabilities``)."""
        pool: DecodePool | None = self.__dict__.get("_decode_pool")
        if pool is None:
            pool = DecodePool(self.capabilities.concurrency, name=f"asr-{self.name}")
            self.__dict__["_decode_pool"] = pool
        return pool

    def decode_stats(self) -> dict[str, float | int]:
        """Where this process's recognizer time went: decodes done and decode-thread seconds per
        kind (finals, streaming feed, partial re-decodes), plus what the engine adds."""
        pool: DecodePool | None = self.__dict__.get("_decode_pool")
        if pool is None:
            return {}
        out: dict[str, float | int] = {}
        for p in pool.done:
            kind = p.name.lower()
            out[f"{kind}_decodes"] = pool.done[p]
            out[f"{kind}_busy_s"] = round(pool.busy_s[p], 3)
        pressure = pool.pressure.percent()
        if pressure is not None:  # partials wait while it is above asr.partial_max_cpu_pressure
            out["cpu_pressure"] = round(pressure, 1)
        return out

    def warm_up(self) -> None:
        """Pay first-use costs (allocations, lazy set-up) before the first call, not during it."""

    def open_session(self, grammar: Sequence[str] | None = None) -> RecognizerSession:
        """A new streaming recognizer; with ``grammar`` (native mode) only those phrases come out."""
        raise AsrError(f"{self.name} is not a streaming engine")

    def close(self) -> None:
        """Free the model and stop the decode pool. Idempotent."""
        pool: DecodePool | None = self.__dict__.pop("_decode_pool", None)
        if pool is not None:
            pool.shutdown()


class BatchEngine(AsrEngine, ABC):
    """An engine that decodes a whole utterance per call (Whisper). Thread-safe: ``decode`` runs
    on any pool thread, several at once up to ``concurrency``."""

    streaming = False
    grammar_mode: GrammarMode = "after"

    @abstractmethod
    def decode(self, audio: np.ndarray, *, final: bool, hints: Sequence[str] | None = None) -> Hypothesis:
        """Transcribe float32 mono ``audio`` at ``sample_rate`` in [-1, 1]; no state is kept
        between calls (no text carried from one utterance into the next). ``final=False`` is a
        partial re-decode: the engine may skip word timings to save time. ``hints``: the phrases
        of the IVR menu being answered (the engine may use them; the matcher still decides)."""
