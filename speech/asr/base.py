"""The engine contract: a process-wide model, one blocking session per utterance stream.

Engines are blocking C libraries (vosk releases the GIL, pocketsphinx does not), so sessions are
only ever called from one worker thread each; ``speech.asr.stream.AsrStream`` wraps them for
asyncio. Word times a session reports are seconds from the start of the current utterance (the
first ``accept`` after the last ``finish``); the stream shifts them onto the call clock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from speech.events import Word


class AsrError(RuntimeError):
    """The engine cannot be used: model missing or unreadable, bad grammar, library error."""


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """What a session heard so far (partial) or for a whole utterance (final)."""

    text: str
    words: tuple[Word, ...] = field(default=())
    confidence: float = 0.0
    final: bool = False


class RecognizerSession(ABC):
    """One recognizer for one party of one call. Not thread-safe: one worker thread only."""

    sample_rate: int = 16000

    @abstractmethod
    def accept(self, pcm: bytes) -> Hypothesis | None:
        """Feed 16-bit mono PCM at ``sample_rate``; return a partial when it changed, else None."""

    @abstractmethod
    def finish(self) -> Hypothesis:
        """End the current utterance and return its final hypothesis; ready for the next one."""

    def close(self) -> None:
        """Free the recognizer."""


class AsrEngine(ABC):
    """Owns the loaded model: create one per process and share it across calls."""

    name: str = "engine"
    sample_rate: int = 16000

    @abstractmethod
    def open_session(self, grammar: Sequence[str] | None = None) -> RecognizerSession:
        """A new recognizer; with ``grammar``, only those phrases (IVR menu mode) can come out."""

    def close(self) -> None:
        """Free the model."""
