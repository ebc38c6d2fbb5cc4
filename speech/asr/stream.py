"""One party's utterances through the process's shared decode pool, fed from asyncio.

``UtteranceStream`` is what the ASR stage drives (begin/push/end at the VAD's marks), whatever the
engine: it resamples to the engine's rate once (the engine's edge), splits long turns at a pause
rather than cutting blindly, and moves word times onto the call clock. ``SessionStream`` feeds a
streaming engine's session chunk by chunk on one strand of the pool; ``speech.asr.adapter``
has the stream for batch engines. ``open_stream`` picks by the engine's capabilities.

Results come back as asyncio futures resolved on the loop, so events are emitted on the loop
and in order; the event loop itself never decodes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

import numpy as np
import soxr

from speech.asr.base import AsrEngine, Hypothesis, RecognizerSession
from speech.asr.pool import Priority, Strand
from speech.events import Event, FinalTranscript, PartialTranscript
from speech.frames import AudioFrame, Party
from speech.load import ProcessLoad
from speech.settings import AsrSettings

log = logging.getLogger(__name__)


class UtteranceStream:
    """Base: utterance bookkeeping, edge resampling, pause splitting, future tracking."""

    def __init__(
        self,
        engine: AsrEngine,
        party: Party,
        emit: Callable[[Event], None],
        settings: AsrSettings,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        load: ProcessLoad | None = None,
    ) -> None:
        """``load``: the process's load state; partials stop while it sheds them."""
        self.engine = engine
        self.load = load
        self.party = party
        self.settings = settings
        self.rate = engine.capabilities.sample_rate
        self._emit = emit
        self._loop = loop or asyncio.get_running_loop()
        self._pending: set[asyncio.Future[Any]] = set()
        self._resamplers: dict[int, soxr.ResampleStream] = {}
        self._grammar: tuple[str, ...] | None = None
        self._utt_start: float | None = None  # call time of the first sample of this utterance
        self._utt_onset = 0.0  # VAD onset (reported as the utterance start)
        self._utt_grammar: tuple[str, ...] | None = None
        self._fed_until = 0.0
        self._rms_sum = 0.0
        self._rms_n = 0
        self._last_rms = 0.0
        self._closed = False
        self.errors = 0
        self.finals_pending = 0
        """Utterances ended but whose final has not been emitted yet (loop side)."""

    @property
    def partials_on(self) -> bool:
        """Partials are configured and the process is not shedding them (overload)."""
        return self.settings.partials and (self.load is None or self.load.partials)

    @property
    def in_utterance(self) -> bool:
        return self._utt_start is not None

    def set_grammar(self, phrases: Sequence[str] | None) -> None:
        """Menu phrases for the next utterances (IVR); None for free speech."""
        self._grammar = tuple(phrases) if phrases else None

    def begin(self, onset: float, preroll: Sequence[AudioFrame] = ()) -> None:
        """Start an utterance at call time ``onset``; ``preroll`` frames precede it."""
        if self._closed:
            return
        if self.in_utterance:
            self.end(onset)
        first = preroll[0].timestamp if preroll else onset
        self._utt_start = first
        self._utt_onset = onset
        self._utt_grammar = self._grammar
        self._fed_until = first
        self._rms_sum, self._rms_n = 0.0, 0
        self._on_begin()
        for frame in preroll:
            self.push(frame)

    def push(self, frame: AudioFrame) -> None:
        """Feed a frame of the current utterance (ignored outside one)."""
        if self._closed or self._utt_start is None:
            return
        self._fed_until = frame.end
        pcm = self._at_engine_rate(frame)
        self._on_audio(pcm, frame.end)
        elapsed = frame.end - self._utt_start
        s = self.settings
        if elapsed >= s.max_utterance_s or (
            elapsed >= s.max_utterance_s - s.split_search_s and self._is_pause(pcm)
        ):
            self.end(frame.end)
            self.begin(frame.end)

    def end(self, t_end: float) -> None:
        """Close the utterance at call time ``t_end``: a FinalTranscript follows."""
        if self._closed or self._utt_start is None:
            return
        self.finals_pending += 1
        self._on_end(self._utt_start, self._utt_onset, t_end, self._utt_grammar)
        self._utt_start = None

    async def drain(self) -> None:
        """Wait until every submitted decode has finished and its events were emitted."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        await asyncio.sleep(0)

    async def aclose(self) -> None:
        """Finish pending work and free engine state. Idempotent."""
        if self._closed:
            return
        if self.in_utterance:
            self.end(self._fed_until)
        await self.drain()
        self._closed = True
        await self._release()

    # -- for subclasses ------------------------------------------------------------------------

    def _on_begin(self) -> None: ...

    def _on_audio(self, pcm: bytes, t: float) -> None: ...

    def _on_end(self, utt_start: float, onset: float, t_end: float, grammar: tuple[str, ...] | None) -> None: ...

    async def _release(self) -> None: ...

    def _track(self, fut: Future[Any], done: Callable[[Any], None]) -> None:
        """Call ``done(result)`` on the loop when the pool finishes ``fut``; count errors."""
        afut = asyncio.wrap_future(fut, loop=self._loop)
        self._pending.add(afut)

        def _done(f: asyncio.Future[Any]) -> None:
            self._pending.discard(f)
            if f.cancelled():
                return
            exc = f.exception()
            if exc is not None:
                self.errors += 1
                log.error("ASR decode failed (%s): %s", self.engine.name, type(exc).__name__)
                done(None)
                return
            done(f.result())

        afut.add_done_callback(_done)

    def _final_event(
        self, hyp: Hypothesis, utt_start: float, onset: float, t_end: float, grammar: tuple[str, ...] | None
    ) -> FinalTranscript:
        words = tuple(
            replace(w, start=round(utt_start + w.start, 3), end=round(utt_start + w.end, 3)) for w in hyp.words
        )
        native = grammar is not None and self.engine.capabilities.grammar == "native"
        return FinalTranscript(
            t=t_end,
            party=self.party,
            text=hyp.text,
            words=words,
            confidence=hyp.confidence,
            start=onset,
            end=t_end,
            engine=self.engine.name + ("+grammar" if native else ""),
        )

    def _emit_final(self, event: FinalTranscript) -> None:
        self.finals_pending -= 1
        self._emit(event)

    def _at_engine_rate(self, frame: AudioFrame) -> bytes:
        if frame.sample_rate == self.rate:
            pcm = frame.pcm
            x = np.frombuffer(pcm, dtype="<i2")
        else:
            rs = self._resamplers.get(frame.sample_rate)
            if rs is None:
                rs = soxr.ResampleStream(frame.sample_rate, self.rate, 1, dtype="int16")
                self._resamplers[frame.sample_rate] = rs
            x = rs.resample_chunk(np.frombuffer(frame.pcm, dtype="<i2"))
            pcm = x.astype("<i2").tobytes()
        if x.size:
            rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
            self._last_rms = rms
            self._rms_sum += rms
            self._rms_n += 1
        return pcm

    def _is_pause(self, pcm: bytes) -> bool:
        if not self._rms_n or not pcm:
            return False
        return self._last_rms < self.settings.pause_ratio * (self._rms_sum / self._rms_n)


class SessionStream(UtteranceStream):
    """A streaming engine: chunks of ~100 ms into one session per grammar, on one pool strand."""

    CHUNK_S = 0.1

    def __init__(self, engine: AsrEngine, party: Party, emit: Callable[[Event], None], settings: AsrSettings,
                 **kw: Any) -> None:
        super().__init__(engine, party, emit, settings, **kw)
        self._strand = Strand()
        self._sessions: dict[tuple[str, ...] | None, RecognizerSession] = {}
        self._chunk_bytes = int(self.CHUNK_S * self.rate) * 2
        self._buf = bytearray()
        self._buf_end = 0.0

    def _on_audio(self, pcm: bytes, t: float) -> None:
        # Engines are called per ~100 ms, not per 20 ms frame: a fifth of the calls and hand-offs.
        self._buf += pcm
        self._buf_end = t
        if len(self._buf) >= self._chunk_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._buf and self._utt_start is not None:
            start, grammar = self._utt_start, self._utt_grammar
            fut = self.engine.pool.submit(
                self._accept, bytes(self._buf), grammar, self.partials_on, priority=Priority.FEED, strand=self._strand
            )
            t = self._buf_end
            self._track(fut, lambda hyp: self._partial_done(hyp, t, start))
        self._buf.clear()

    def _on_end(self, utt_start: float, onset: float, t_end: float, grammar: tuple[str, ...] | None) -> None:
        self._flush()
        fut = self.engine.pool.submit(self._finish, grammar, priority=Priority.FINAL, strand=self._strand)

        def done(hyp: Hypothesis | None) -> None:
            hyp = hyp or Hypothesis(text="", final=True)
            self._emit_final(self._final_event(hyp, utt_start, onset, t_end, grammar))

        self._track(fut, done)

    def _partial_done(self, hyp: Hypothesis | None, t: float, start: float) -> None:
        if hyp is not None and self.partials_on and hyp.text:
            self._emit(PartialTranscript(t=t, party=self.party, text=hyp.text, start=start))

    async def _release(self) -> None:
        try:
            fut = self.engine.pool.submit(self._close_sessions, priority=Priority.FEED, strand=self._strand)
        except RuntimeError:  # the engine (and its pool) closed first: nothing decodes any more
            self._close_sessions()
            return
        await asyncio.wrap_future(fut, loop=self._loop)

    # -- pool thread (one strand: never concurrent) ---------------------------------------------

    def _session(self, grammar: tuple[str, ...] | None) -> RecognizerSession:
        session = self._sessions.get(grammar)
        if session is None:
            session = self.engine.open_session(grammar=list(grammar) if grammar else None)
            self._sessions[grammar] = session
        return session

    def _accept(self, pcm: bytes, grammar: tuple[str, ...] | None, partials: bool) -> Hypothesis | None:
        session = self._session(grammar)
        session.partials = partials
        return session.accept(pcm)

    def _finish(self, grammar: tuple[str, ...] | None) -> Hypothesis:
        return self._session(grammar).finish()

    def _close_sessions(self) -> None:
        for session in self._sessions.values():
            try:
                session.close()
            except Exception:
                log.exception("closing ASR session failed")
        self._sessions.clear()


def open_stream(
    engine: AsrEngine, party: Party, emit: Callable[[Event], None], settings: AsrSettings,
    load: ProcessLoad | None = None,
) -> UtteranceStream:
    """The right stream for ``engine``: sessions for streaming engines, the adapter for batch ones."""
    if engine.capabilities.streaming:
        return SessionStream(engine, party, emit, settings, load=load)
    from speech.asr.adapter import BufferedStream

    return BufferedStream(engine, party, emit, settings, load=load)


