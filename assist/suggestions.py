"""Knowledge suggestions as a pipeline stage: on each caller final, search the knowledge base
off the event loop and emit ``assist.suggestion``.

The search runs on the loop's default executor (SQLite FTS5: a few milliseconds; on the call's
first final also opening and syncing the index), so frames and transcripts are never held up; the result re-enters the chain through ``self.ctx.emit`` right after this
stage. Results of older finals that arrive after newer ones are dropped, and a suggestion is only
emitted when its set of articles changed, so the agent view does not flicker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from assist.index import Hit, KnowledgeIndex
from assist.kb_settings import KnowledgeSettings
from assist.query import query_terms
from speech.events import AssistSuggestion, Event, FinalTranscript, IvrAction, IvrStep, QueueUpdate
from speech.frames import Party
from speech.stage import Stage

log = logging.getLogger(__name__)

BODY_MAX_CHARS = 4000
"""An article's Markdown sent with a suggestion is cut here: articles read during a call are
short, and every suggestion is stored with the call."""

IndexOpener = Callable[[], KnowledgeIndex]
"""Opens (and, with ``auto_index``, syncs) the index: blocking, called on an executor thread."""


class SuggestionStage(Stage):
    name = "knowledge"

    def __init__(self, open_index: IndexOpener, settings: KnowledgeSettings | None = None,
                 *, party: Party = Party.CALLER) -> None:
        self.settings = settings or KnowledgeSettings()
        self.party = party
        self._open_index = open_index
        self._index: KnowledgeIndex | None = None
        self._open_lock = threading.Lock()
        self._broken = False
        self._recent: deque[str] = deque(maxlen=self.settings.window)
        self._queue = ""
        self._seq = 0
        self._done_seq = 0
        self._last_ids: tuple[str, ...] = ()
        self._pending: set[asyncio.Future[list[Hit]]] = set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def process_event(self, event: Event) -> list[Event]:
        if isinstance(event, QueueUpdate) and event.queue:
            self._queue = event.queue
        elif isinstance(event, IvrStep) and event.action == IvrAction.ROUTE:
            queue = event.detail.get("queue")
            if isinstance(queue, str) and queue:
                self._queue = queue
        elif isinstance(event, FinalTranscript) and event.party == self.party and event.text and not self._broken:
            self._recent.append(event.text)
            if query_terms([event.text]):
                self._submit(list(self._recent), event.t)
        return []

    def _submit(self, utterances: list[str], final_t: float) -> None:
        self._seq += 1
        seq, queue = self._seq, self._queue
        fut = asyncio.get_running_loop().run_in_executor(None, self._search, utterances, queue)
        self._pending.add(fut)

        def done(f: asyncio.Future[list[Hit]]) -> None:
            self._pending.discard(f)
            if f.cancelled():
                return
            exc = f.exception()
            if exc is not None:
                self._broken = True  # a missing or broken index: no suggestions on this call
                log.error("knowledge search failed on call %s: %s", self.ctx.call_id, type(exc).__name__)
                return
            self._deliver(f.result(), seq, queue, final_t)

        fut.add_done_callback(done)

    def _search(self, utterances: list[str], queue: str) -> list[Hit]:
        """On an executor thread."""
        with self._open_lock:  # two finals in quick succession: open the index once
            if self._index is None:
                self._index = self._open_index()
        return suggest(self._index, utterances, queue, self.settings)

    def _deliver(self, hits: list[Hit], seq: int, queue: str, final_t: float) -> None:
        if seq < self._done_seq:
            return  # a newer final's result is already in
        self._done_seq = seq
        ids = tuple(h.id for h in hits)
        if not hits or ids == self._last_ids:
            return
        self._last_ids = ids
        articles = tuple(
            {"id": h.id, "title": h.title, "score": h.score, "matched": list(h.matched),
             "body": h.body[:BODY_MAX_CHARS]}
            for h in hits)
        self.ctx.emit(AssistSuggestion(t=final_t, party=self.party, articles=articles, queue=queue,
                                       final_t=final_t))

    async def drain(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        index, self._index = self._index, None
        if index is not None:
            await asyncio.to_thread(index.close)


def suggest(index: KnowledgeIndex, utterances: list[str], queue: str, settings: KnowledgeSettings,
            *, with_body: bool = True) -> list[Hit]:
    """The articles for the newest utterance, in the context of the ones before it.

    Two BM25 searches fused: the newest final alone (what the caller asks now) plus the whole
    window at ``context_weight`` (what they said before, so "yes, twice" still finds the double
    charge). One search over the whole window lets an earlier topic outweigh a new one."""
    s = settings
    pool = max(s.top_k * 3, 10)
    now = index.search(query_terms(utterances[-1:]), queue=queue or None, limit=pool,
                       queue_boost=s.queue_boost, with_body=with_body)
    context = index.search(query_terms(utterances[:-1]), queue=queue or None, limit=pool,
                           queue_boost=s.queue_boost, with_body=with_body) if len(utterances) > 1 else []
    fused: dict[str, Hit] = {h.id: h for h in now}
    for h in context:
        mine = fused.get(h.id)
        score = h.score * s.context_weight + (mine.score if mine else 0.0)
        matched = tuple(dict.fromkeys((*(mine.matched if mine else ()), *h.matched)))
        fused[h.id] = Hit(h.id, h.title, round(score, 3), matched, h.body)
    ranked = sorted(fused.values(), key=lambda h: h.score, reverse=True)
    return [h for h in ranked if h.score >= s.min_score][: s.top_k]


def index_opener(kb_dir: Path | None, index_path: Path, *, auto_index: bool) -> IndexOpener:
    """What the composition root hands the stage: open the index file and, with ``auto_index``,
    bring it in line with ``kb_dir`` first."""

    def open_index() -> KnowledgeIndex:
        index = KnowledgeIndex(index_path)
        if auto_index and kb_dir is not None:
            try:
                index.sync(kb_dir)
            except Exception:
                index.close()
                raise
        return index

    return open_index
