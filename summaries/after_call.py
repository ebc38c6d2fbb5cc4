"""What happens when a call ends: redact, summarize, store, notify.

A call session collects its events and, on ``CallEnded``, hands them to
``AfterCallChain.process`` (``callcenter.aftercall.AfterCall`` builds the chain from settings).
Order matters: redaction comes first, so neither the summary (which quotes transcripts) nor the
store, the webhook or the returned ``SummaryReady`` event ever hold PII (originals go only to
the store's separate columns when ``keep_original`` is set).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from speech.events import CallEnded, Event, SummaryReady
from summaries.durable_writer import DurableWriter
from summaries.redact import Redactor
from summaries.summarizer import summarize
from summaries.summary import CallSummary
from summaries.webhook import WebhookOutbox


class Summarizer(Protocol):
    async def asummarize(self, events: Iterable[Event], *, call_id: str | None = None) -> CallSummary: ...


class OfflineSummarizer:
    """The rule-based summarizer behind the same async interface as ``LlmSummarizer``."""

    async def asummarize(self, events: Iterable[Event], *, call_id: str | None = None) -> CallSummary:
        return summarize(events, call_id=call_id)


Scorer = Callable[[list[Event], CallSummary], list[Event]]
"""Final QA scorecards of a whole (redacted) call and its summary, as events stored with it
(the composition root passes ``qa``'s; summaries never imports it)."""


@dataclass(frozen=True)
class AfterCallResult:
    call_id: str
    summary: CallSummary
    event: SummaryReady
    """The ``summary`` event to publish (MQTT, console)."""
    scorecards: tuple[Event, ...] = ()
    """The final ``qa.scorecard`` events (stored with the call; to publish too)."""


class AfterCallChain:
    """Redactor → summarizer → durable store writer → webhook outbox (each optional but the first two)."""

    def __init__(
        self,
        redactor: Redactor,
        summarizer: Summarizer | None = None,
        writer: DurableWriter | None = None,
        webhook: WebhookOutbox | None = None,
        scorer: Scorer | None = None,
    ) -> None:
        self.redactor = redactor
        self.scorer = scorer
        self.summarizer = summarizer or OfflineSummarizer()
        self.writer = writer
        self.webhook = webhook

    async def process(self, events: Iterable[Event], *, recording: str | None = None) -> AfterCallResult:
        """``recording``: the call's recording path, stored with the call for its review page."""
        evs = list(events)
        red = self.redactor.redact_call(evs)
        call_id = next((e.call_id for e in red.events if e.call_id), None)
        summary = await self.summarizer.asummarize(red.events, call_id=call_id)
        scorecards = await asyncio.to_thread(self.scorer, red.events, summary) if self.scorer is not None else []
        if self.writer is not None:
            await self.writer.awrite([*red.events, *scorecards], summary, originals=red.originals,
                                     recording=recording)
        if self.webhook is not None and summary.call_id:
            await self.webhook.enqueue(summary)
        end = next((e for e in reversed(red.events) if isinstance(e, CallEnded)), None)
        event = SummaryReady(call_id=summary.call_id, t=end.t if end else 0.0, summary=summary.to_dict())
        return AfterCallResult(summary.call_id, summary, event, tuple(scorecards))

    def process_soon(self, events: Iterable[Event]) -> asyncio.Task[AfterCallResult]:
        """Start processing in the background (the call session need not wait for it)."""
        return asyncio.create_task(self.process(list(events)), name="after-call")
