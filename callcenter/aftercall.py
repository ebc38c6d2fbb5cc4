"""What happens when a call ends, composed from settings: redact, summarize, store, deliver.

``summaries.after_call.AfterCallChain`` does the work (redactor → summarizer → durable CRM
writer → webhook outbox); ``AfterCall`` here builds it from settings and owns the lifecycles.
Live sinks are wrapped with ``redacting`` so MQTT and the console never see PII the settings do
not allow; the live redactor is a separate instance, because a redactor follows one ordered
event stream. ``live_sinks`` and ``finish_call`` are the one sequence live calls and replays
share: redacted sinks during the call, then summary, store and the ``summary`` event to the sinks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from callcenter.settings import Settings
from speech.events import (
    CallEnded,
    DtmfDigit,
    Event,
    IvrAction,
    IvrStep,
    PartialTranscript,
    SummaryReady,
)
from summaries.redact import CARD_DTMF_MAX_GAP_S
from summaries.spoken import mask_long_runs

if TYPE_CHECKING:  # imported lazily at run time: only a call's end needs them
    from assist.feedback import FeedbackStore
    from summaries.after_call import AfterCallChain
    from summaries.durable_writer import DurableWriter
    from summaries.store import CrmStore
    from summaries.webhook import WebhookOutbox

LIVE_DTMF_VISIBLE = 6
"""Digits of one keypad run shown live; later ones show as ``X``. A card typed on the keypad is
only known to be one (length, Luhn) once the run ends, but agents see digits as they are typed;
PCI DSS allows the first six digits of a card number to be displayed."""


class LiveDtmfMask:
    """Masks keypad digits past the sixth of a run in live streams (the stored record is
    redacted exactly, after the call, by ``summaries.redact``)."""

    def __init__(self, visible: int = LIVE_DTMF_VISIBLE, max_gap_s: float = CARD_DTMF_MAX_GAP_S) -> None:
        self.visible = visible
        self.max_gap_s = max_gap_s
        self._runs: dict[str, tuple[int, float]] = {}

    def __call__(self, event: Event) -> Event:
        cid = event.call_id
        if isinstance(event, DtmfDigit):
            count, last = self._runs.get(cid, (0, float("-inf")))
            if not event.digit.isdigit():
                self._runs[cid] = (0, event.t)
                return event
            count = count + 1 if event.t - last <= self.max_gap_s else 1
            self._runs[cid] = (count, event.t)
            if count > self.visible:
                return dataclasses.replace(event, digit="X")
        elif isinstance(event, IvrStep) and event.action == IvrAction.ENTER:
            self._runs.pop(cid, None)
        elif isinstance(event, CallEnded):
            self._runs.pop(cid, None)
        return event

log = logging.getLogger(__name__)


class AfterCall:
    def __init__(self, settings: Settings, *, store: bool = True) -> None:
        from summaries.redact import Redactor

        self.settings = settings
        self._use_store = store
        secure = settings.summary.secure_ivr_nodes
        self._live_redactor = Redactor(keep_original=False, secure_ivr_nodes=secure)
        self._live_mask = LiveDtmfMask()
        self._redactor = Redactor(keep_original=settings.store.keep_original_pii, secure_ivr_nodes=secure)
        self.store: CrmStore | None = None
        self.writer: DurableWriter | None = None
        self.webhook: WebhookOutbox | None = None
        self._chain: AfterCallChain | None = None
        self._feedback: FeedbackStore | None = None

    async def start(self) -> None:
        if self._use_store:
            from summaries.durable_writer import DurableWriter
            from summaries.store import CrmStore

            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            store = self.store = CrmStore(self.settings.store_url)
            try:
                await asyncio.to_thread(store.start)
            except Exception as exc:  # database down: calls are spooled and written later
                log.warning("CRM store unavailable at start (%s); spooling calls", type(exc).__name__)
            writer = self.writer = DurableWriter(store, self.settings.data_dir / "crm-spool")
            writer.start()
        if self.settings.store.webhook_url and self._use_store:
            from summaries.webhook import WebhookOutbox

            webhook = self.webhook = WebhookOutbox(
                self.settings.store.webhook_url,
                self.settings.store.webhook_secret or "",
                self.settings.data_dir / "webhook-outbox",
            )
            await webhook.start()
        self._chain = self._build_chain()

    def _build_chain(self) -> AfterCallChain:
        from summaries.after_call import AfterCallChain
        from summaries.llm_summarizer import LlmSummarizer

        s = self.settings.summary
        summarizer = (
            LlmSummarizer(s.llm_base_url, s.llm_api_key, s.llm_model, s.llm_timeout_s) if s.llm_base_url else None
        )
        return AfterCallChain(self._redactor, summarizer, self.writer, self.webhook, scorer=self._scorer())

    def _scorer(self) -> Callable[[list[Event], Any], list[Event]] | None:
        """The final QA scorecards on the forms of ``qa.forms`` (none: no scoring)."""
        if not self.settings.qa.forms:
            return None
        from qa.forms import FormError
        from qa.live import final_scorecards

        try:
            forms = self.settings.qa.load()
        except FormError as exc:
            log.error("QA scoring switched off: %s", exc)
            return None
        return lambda events, summary: list(final_scorecards(forms, events, summary))

    async def stop(self) -> None:
        if self.webhook is not None:
            await self.webhook.stop()
        if self.writer is not None:
            waiting = await asyncio.to_thread(self.writer.flush)
            self.writer.stop()
            if waiting:
                print(f"warning: {waiting} call record(s) wait in {self.writer.spool_dir} for the database; "
                      "run `callcenter deliver` once it is back", file=sys.stderr)
        if self.store is not None:
            self.store.stop()
        if self._feedback is not None:
            self._feedback.close()
            self._feedback = None

    def _article_marks(self, call_id: str, t: float) -> list[Event]:
        """The agent's marks on suggested articles (made in the console) as ``assist.feedback``
        events at the call's end, so the summary names the articles used. Blocking."""
        from assist.feedback import FeedbackStore, feedback_events

        path = self.settings.kb_feedback_path
        if self._feedback is None:
            if not path.exists():
                return []  # nobody marked anything on this host yet
            self._feedback = FeedbackStore(path)
        return list(feedback_events(self._feedback.for_call(call_id), call_id, t))

    def redacting(self, sink: Callable[[Event], None]) -> Callable[[Event], None]:
        """Wrap a live sink so it only ever sees redacted events."""

        def wrapped(event: Event) -> None:
            red = self._live_redactor.redact_event(self._live_mask(event))
            if isinstance(red, PartialTranscript):  # a card number still too short to know it is one
                red = dataclasses.replace(red, text=mask_long_runs(red.text, LIVE_DTMF_VISIBLE))
            sink(red)

        return wrapped

    async def complete(self, call_id: str, events: Sequence[Event], **extra: Any) -> dict[str, Any]:
        """Summarize, store and deliver a finished call; returns the summary as a dict."""
        summary, _ = await self.complete_with_scorecards(call_id, events, **extra)
        return summary

    async def complete_with_scorecards(self, call_id: str, events: Sequence[Event],
                                       **extra: Any) -> tuple[dict[str, Any], tuple[Event, ...]]:
        """``complete``, and the call's final ``qa.scorecard`` events for the caller to publish."""
        if self._chain is None:
            self._chain = self._build_chain()
        events = [e if e.call_id else e.with_call_id(call_id) for e in events]
        if self.settings.knowledge.enabled:
            events += await asyncio.to_thread(self._article_marks, call_id, max((e.t for e in events), default=0.0))
        recording = extra.get("recording")  # stored with the call: its review page plays it
        result = await self._chain.process(events, recording=str(recording) if recording else None)
        data = result.summary.to_dict()
        data.update({k: v for k, v in extra.items() if k not in data})
        return data, result.scorecards


Sink = Callable[[Event], None]


def live_sinks(sinks: Sequence[Sink], after_call: AfterCall | None) -> list[Sink]:
    """The sinks as a call's pipeline should feed them: through the live redactor, if any."""
    return [after_call.redacting(sink) if after_call is not None else sink for sink in sinks]


async def finish_call(
    after_call: AfterCall, call_id: str, events: Sequence[Event], sinks: Sequence[Sink], *, t: float, **extra: Any
) -> dict[str, Any]:
    """Summarize, store and deliver a finished call, then tell the sinks (``SummaryReady`` at
    call time ``t``). Raises when the after-call chain fails; a failing sink is logged and skipped.
    The summary comes from redacted events, so the sinks get it as is."""
    summary, scorecards = await after_call.complete_with_scorecards(call_id, events, **extra)
    final = [*scorecards, SummaryReady(call_id=call_id, t=t, summary=summary)]
    for sink in sinks:
        for event in final:
            try:
                sink(event)
            except Exception:
                log.exception("summary sink failed on call %s", call_id)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """A few lines for the terminal after a replay."""
    from summaries.report import format_summary_brief

    return format_summary_brief(summary)
