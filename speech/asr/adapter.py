"""StreamAdapter (livekit's pattern): a batch engine (Whisper) as an utterance stream with partials.

The open utterance is buffered on the loop. Every ``partial_interval_s`` of new audio, if the
decode pool has an idle thread, the machine's cores are not contended (Linux PSI under
``partial_max_cpu_pressure``: several workers can oversubscribe the cores while each has a thread
idle) and the utterance's partials are within their budget
(``partial_budget``: decode-thread seconds per second of utterance audio), the whole utterance so
far is re-decoded at low priority. A re-decode costs the encoder plus ~5 ms per token, so it
grows with the utterance: the budget keeps a long turn's partials from costing several times its
final (they thin out instead), and since it counts wall time on the decode thread, a busy machine
thins them further. A
partial publishes only the *stable prefix*, the words two consecutive decodes agree on
(LocalAgreement, as in whisper_streaming), so the agent's screen does not flicker. At the VAD's
end of utterance the final decode runs at the highest priority on this stream's strand (finals
leave in utterance order) and brings word timings and a confidence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from speech.asr.base import AsrEngine, BatchEngine, Hypothesis
from speech.asr.pool import Priority, Strand
from speech.asr.stream import UtteranceStream
from speech.events import Event, PartialTranscript
from speech.frames import Party
from speech.settings import AsrSettings
from speech.text import normalize

FREE_PARTIALS = 2
"""Re-decodes of an utterance the budget does not count: LocalAgreement publishes nothing until
two decodes agree, so a budget that allowed only one early decode left whole turns without a
partial whenever their first words wavered."""


class LocalAgreement:
    """The longest word prefix two consecutive hypotheses share; it only ever grows."""

    def __init__(self) -> None:
        self.previous: list[str] = []
        self.stable: list[str] = []

    def update(self, words: list[str]) -> list[str] | None:
        """Feed the newest hypothesis' words; the new stable prefix when it grew, else None."""
        keys = [normalize(w) for w in words]
        prev = [normalize(w) for w in self.previous]
        n = 0
        while n < min(len(keys), len(prev)) and keys[n] == prev[n]:
            n += 1
        self.previous = words
        if n > len(self.stable) and [normalize(w) for w in self.stable] == keys[: len(self.stable)]:
            self.stable = self.stable + words[len(self.stable) : n]  # published words keep their spelling
            return self.stable
        return None

    def reset(self) -> None:
        self.previous, self.stable = [], []


class BufferedStream(UtteranceStream):
    """Buffers each utterance; partials by re-decoding when the pool has room; one final decode."""

    def __init__(self, engine: AsrEngine, party: Party, emit: Callable[[Event], None], settings: AsrSettings,
                 **kw: Any) -> None:
        if not isinstance(engine, BatchEngine):
            raise TypeError(f"{engine.name} is not a batch engine")
        super().__init__(engine, party, emit, settings, **kw)
        self.batch = engine
        self._finals = Strand()
        self._chunks: list[bytes] = []
        self._samples = 0
        self._utt_id = 0
        self._next_partial = 0
        self._partial_busy = False
        self._partial_spent = 0.0
        self._utt_partials = 0
        self._agree = LocalAgreement()
        self.partial_decodes = 0
        self.partials_skipped = 0
        """Partials not decoded because the utterance's partials had used their budget."""

    def _on_begin(self) -> None:
        self._utt_id += 1
        self._chunks, self._samples = [], 0
        self._next_partial = int(self.settings.partial_interval_s * self.rate)
        self._partial_spent = 0.0
        self._utt_partials = 0
        self._agree.reset()

    def _on_audio(self, pcm: bytes, t: float) -> None:
        self._chunks.append(pcm)
        self._samples += len(pcm) // 2
        if not self.partials_on or self._samples < self._next_partial:
            return
        if self._partial_busy or self.engine.pool.idle == 0 or self._cores_contended():
            return  # no room: finals and other calls first; try again on the next frame
        self._next_partial = self._samples + int(self.settings.partial_interval_s * self.rate)
        budget = self.settings.partial_budget
        if budget <= 0 or (self._utt_partials >= FREE_PARTIALS
                           and self._partial_spent >= budget * self._samples / self.rate):
            self.partials_skipped += 1
            return
        self._utt_partials += 1
        self._partial_busy = True
        self.partial_decodes += 1
        utt, start = self._utt_id, self._utt_start if self._utt_start is not None else t
        fut = self.engine.pool.submit(self._timed_partial, self._audio(), priority=Priority.PARTIAL)
        self._track(fut, lambda res: self._partial_done(res, utt, t, start))

    def _cores_contended(self) -> bool:
        """Whether the machine's cores are too contended for optional work
        (``partial_max_cpu_pressure``; no PSI reading: never)."""
        limit = self.settings.partial_max_cpu_pressure
        if limit >= 100:
            return False
        pressure = self.engine.pool.pressure.percent()
        return pressure is not None and pressure > limit

    def _on_end(self, utt_start: float, onset: float, t_end: float, grammar: tuple[str, ...] | None) -> None:
        audio = self._audio()
        self._chunks, self._samples = [], 0
        self._utt_id += 1  # partials still in flight belong to a closed utterance now
        fut = self.engine.pool.submit(
            self._decode, audio, True, grammar, priority=Priority.FINAL, strand=self._finals
        )

        def done(hyp: Hypothesis | None) -> None:
            hyp = hyp or Hypothesis(text="", final=True)
            self._emit_final(self._final_event(hyp, utt_start, onset, t_end, grammar))

        self._track(fut, done)

    def _partial_done(self, res: tuple[Hypothesis, float] | None, utt: int, t: float, start: float) -> None:
        self._partial_busy = False
        if res is None or utt != self._utt_id:
            return
        hyp, seconds = res
        self._partial_spent += seconds
        if not hyp.text or not self.partials_on:
            return
        stable = self._agree.update([w.word for w in hyp.words])
        if stable:
            self._emit(PartialTranscript(t=t, party=self.party, text=" ".join(stable), start=start))

    def _audio(self) -> np.ndarray:
        pcm = b"".join(self._chunks)
        return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0

    def _timed_partial(self, audio: np.ndarray) -> tuple[Hypothesis, float]:
        """A partial decode and its wall time on the decode thread (for the budget)."""
        t0 = time.perf_counter()
        hyp = self._decode(audio, False, None)
        return hyp, time.perf_counter() - t0

    def _decode(self, audio: np.ndarray, final: bool, hints: tuple[str, ...] | None) -> Hypothesis:
        return self.batch.decode(audio, final=final, hints=hints)
