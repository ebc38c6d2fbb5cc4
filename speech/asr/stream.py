"""One party's recognizer on its own worker thread, fed from asyncio.

Engines block (a vosk chunk can stall for seconds), so every call into a session runs on a
single-thread executor owned by this stream: order is kept, the event loop never decodes, and
results come back through ``loop.call_soon_threadsafe``. Utterances are delimited by the VAD;
word times are moved from "seconds into the utterance audio" to call time here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from speech.asr.base import AsrEngine, Hypothesis, RecognizerSession
from speech.events import Event, FinalTranscript, PartialTranscript
from speech.frames import AudioFrame, Party

log = logging.getLogger(__name__)


class AsrStream:
    """Streams one party's utterances through one recognizer; emits transcript events."""

    def __init__(
        self,
        engine: AsrEngine,
        party: Party,
        emit: Callable[[Event], None],
        *,
        partials: bool = True,
        max_utterance_s: float = 20.0,
        chunk_s: float = 0.1,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.engine = engine
        self.party = party
        self._emit = emit
        self._partials = partials
        self._max_utterance_s = max_utterance_s
        self._loop = loop or asyncio.get_running_loop()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"asr-{party.value}")
        self._pending: set[asyncio.Future[None]] = set()
        self._grammar: tuple[str, ...] | None = None
        self._sessions: dict[tuple[str, ...] | None, RecognizerSession] = {}
        self._utt_start: float | None = None  # call time of the first sample fed this utterance
        self._utt_onset: float = 0.0  # VAD onset (reported as the utterance start)
        self._utt_grammar: tuple[str, ...] | None = None
        self._fed_until: float = 0.0
        self._chunk_bytes = int(chunk_s * engine.sample_rate) * 2
        self._buf = bytearray()
        self._buf_end = 0.0
        self._closed = False
        self.errors = 0
        self.finals_pending = 0
        """Utterances ended but whose final has not been emitted yet (loop side)."""

    # -- asyncio side -------------------------------------------------------------------------

    @property
    def in_utterance(self) -> bool:
        return self._utt_start is not None

    def set_grammar(self, phrases: Sequence[str] | None) -> None:
        """Restrict the next utterances to ``phrases`` (IVR menus); None for free speech."""
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
        for frame in preroll:
            self.push(frame)

    def push(self, frame: AudioFrame) -> None:
        """Feed a frame of the current utterance (ignored outside one)."""
        if self._closed or self._utt_start is None:
            return
        self._fed_until = frame.end
        # Engines are called per ~100 ms, not per 20 ms frame: a fifth of the calls and hand-offs.
        self._buf += frame.pcm
        self._buf_end = frame.end
        if len(self._buf) >= self._chunk_bytes:
            self._flush()
        if frame.end - self._utt_start >= self._max_utterance_s:
            onset = frame.end
            self.end(onset)
            self.begin(onset)

    def end(self, t_end: float) -> None:
        """Close the utterance at call time ``t_end``: a FinalTranscript follows."""
        if self._closed or self._utt_start is None:
            return
        self._flush()
        self.finals_pending += 1
        self._submit(self._finish, self._utt_start, self._utt_onset, t_end, self._utt_grammar)
        self._utt_start = None

    def _flush(self) -> None:
        if self._buf and self._utt_start is not None:
            self._submit(self._accept, bytes(self._buf), self._buf_end, self._utt_start, self._utt_grammar)
        self._buf.clear()

    async def drain(self) -> None:
        """Wait until every submitted chunk has been decoded and its events emitted."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        # Results are posted with call_soon_threadsafe: let them run.
        await asyncio.sleep(0)

    async def aclose(self) -> None:
        """Finish pending work, free the sessions and the thread. Idempotent."""
        if self._closed:
            return
        if self.in_utterance:
            self.end(self._fed_until)
        await self.drain()
        self._closed = True
        await self._loop.run_in_executor(self._pool, self._close_sessions)
        self._pool.shutdown(wait=True)

    def _submit(self, fn: Callable[..., None], *args: object) -> None:
        fut = self._loop.run_in_executor(self._pool, fn, *args)
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)

    def _post(self, event: Event) -> None:
        try:
            self._loop.call_soon_threadsafe(self._emit, event)
        except RuntimeError:  # loop closed during shutdown
            pass

    # -- worker thread ------------------------------------------------------------------------

    def _session(self, grammar: tuple[str, ...] | None) -> RecognizerSession:
        session = self._sessions.get(grammar)
        if session is None:
            session = self.engine.open_session(grammar=list(grammar) if grammar else None)
            self._sessions[grammar] = session
        return session

    def _accept(self, pcm: bytes, t: float, utt_start: float, grammar: tuple[str, ...] | None) -> None:
        try:
            hyp = self._session(grammar).accept(pcm)
        except Exception:  # engine errors must not kill the call
            self.errors += 1
            log.exception("ASR accept failed (%s)", self.engine.name)
            return
        if hyp is not None and self._partials and hyp.text:
            self._post(PartialTranscript(t=t, party=self.party, text=hyp.text, start=utt_start))

    def _finish(self, utt_start: float, onset: float, t_end: float, grammar: tuple[str, ...] | None) -> None:
        try:
            hyp = self._session(grammar).finish()
        except Exception:
            self.errors += 1
            log.exception("ASR finish failed (%s)", self.engine.name)
            hyp = Hypothesis(text="", final=True)
        event = self._final_event(hyp, utt_start, onset, t_end, grammar)
        try:
            self._loop.call_soon_threadsafe(self._final_done, event)
        except RuntimeError:  # loop closed during shutdown
            pass

    def _final_done(self, event: FinalTranscript) -> None:
        self.finals_pending -= 1
        self._emit(event)

    def _final_event(
        self, hyp: Hypothesis, utt_start: float, onset: float, t_end: float, grammar: tuple[str, ...] | None
    ) -> FinalTranscript:
        words = tuple(
            replace(w, start=round(utt_start + w.start, 3), end=round(utt_start + w.end, 3)) for w in hyp.words
        )
        return FinalTranscript(
            t=t_end,
            party=self.party,
            text=hyp.text,
            words=words,
            confidence=hyp.confidence,
            start=onset,
            end=t_end,
            engine=self.engine.name + ("+grammar" if grammar else ""),
        )

    def _close_sessions(self) -> None:
        for session in self._sessions.values():
            try:
                session.close()
            except Exception:
                log.exception("closing ASR session failed")
        self._sessions.clear()
