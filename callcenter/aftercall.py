"""What happens when a call ends: redact, summarize, store in the CRM, deliver to webhooks.

One ``AfterCall`` per process owns the store writer and the webhook outbox. Redaction happens
before anything leaves the pipeline (sinks are wrapped with ``redacting``), so neither MQTT, the
console nor the CRM ever see a card number the settings do not allow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from callcenter.settings import Settings
from speech.events import Event

log = logging.getLogger(__name__)


class AfterCall:
    def __init__(self, settings: Settings, *, store: bool = True) -> None:
        from summaries.redact import Redactor

        self.settings = settings
        self._use_store = store
        self.redactor = Redactor(keep_original=settings.store.keep_original_pii)
        self.store = None
        self.writer = None
        self.webhook = None

    async def start(self) -> None:
        if self._use_store:
            from summaries.store import CrmStore, DurableWriter

            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.store = CrmStore(self.settings.store_url)
            try:
                self.store.start()
            except Exception as exc:  # database down: spool and write later
                log.warning("CRM store unavailable at start (%s); spooling", type(exc).__name__)
            self.writer = DurableWriter(self.store, self.settings.data_dir / "crm-spool")
        if self.settings.store.webhook_url:
            from summaries.webhook import WebhookOutbox

            self.webhook = WebhookOutbox(
                self.settings.store.webhook_url,
                self.settings.store.webhook_secret or "",
                self.settings.data_dir / "webhook-outbox",
            )
            await self.webhook.start()

    async def stop(self) -> None:
        if self.webhook is not None:
            await self.webhook.stop()
        if self.writer is not None:
            self.writer.flush()
        if self.store is not None:
            self.store.stop()

    def redact(self, event: Event) -> Event:
        return self.redactor.redact_event(event)

    def redacting(self, sink: Callable[[Event], None]) -> Callable[[Event], None]:
        """Wrap a sink so it only ever sees redacted events."""

        def wrapped(event: Event) -> None:
            sink(self.redact(event))

        return wrapped

    async def complete(self, call_id: str, events: Sequence[Event], **extra: Any) -> dict[str, Any]:
        """Summarize and store a finished call; returns the summary as a dict."""
        from summaries.summarizer import summarize

        clean = self.redactor.redact_events(list(events))
        summary = summarize(clean, call_id=call_id)
        if self.writer is not None:
            self.writer.save_call(clean, summary)
        if self.webhook is not None:
            await self.webhook.enqueue(summary)
        data = summary.to_dict()
        data.update({k: v for k, v in extra.items() if k not in data})
        return data


def format_summary(summary: dict[str, Any]) -> str:
    """A few lines for the terminal after a replay."""
    from summaries.report import format_summary_brief

    return format_summary_brief(summary)
