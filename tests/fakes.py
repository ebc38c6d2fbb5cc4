"""Scripted stand-ins, used only where the test is about plumbing, not recognition quality.

``ScriptedEngine`` subclasses the real engine contract and answers each utterance with the next
scripted text (livekit's FakeUserSpeech idea): it lets pipeline tests assert ordering, timing
and draining exactly, which a real recognizer's errors would blur. Real engines are tested on
real audio in tests/test_asr_*.py and end to end in tests/test_replay*.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from speech.asr.base import AsrEngine, Hypothesis, RecognizerSession
from speech.events import Word


class ScriptedSession(RecognizerSession):
    def __init__(self, engine: ScriptedEngine, grammar: Sequence[str] | None) -> None:
        self.engine = engine
        self.grammar = grammar
        self.samples = 0

    def accept(self, pcm: bytes) -> Hypothesis | None:
        self.samples += len(pcm) // 2
        if self.samples >= 16000 and self.samples - len(pcm) // 2 < 16000:
            return Hypothesis(text="…", final=False)
        return None

    def finish(self) -> Hypothesis:
        seconds = self.samples / 16000
        self.samples = 0
        self.engine.grammars_seen.append(tuple(self.grammar) if self.grammar else None)
        text = self.engine.texts.pop(0) if self.engine.texts else ""
        words = text.split()
        step = seconds / max(1, len(words))
        return Hypothesis(
            text=text,
            words=tuple(Word(w, i * step, (i + 1) * step, 0.9) for i, w in enumerate(words)),
            confidence=0.9 if words else 0.0,
            final=True,
        )


class ScriptedEngine(AsrEngine):
    name = "scripted"

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        self.grammars_seen: list[tuple[str, ...] | None] = []
        self.sessions = 0

    def open_session(self, grammar: Sequence[str] | None = None) -> RecognizerSession:
        self.sessions += 1
        return ScriptedSession(self, grammar)
