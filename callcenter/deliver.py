"""``callcenter deliver``: send on what earlier runs left behind, and say what is still waiting.

A replay or a worker never loses an after-call record: while the database is down the call
waits in the CRM spool (``data_dir/crm-spool``), while the webhook receiver is down the summary
waits in the outbox (``data_dir/webhook-outbox``). Both retry on their own while a process runs;
this command is the operator's "now": it writes the spool, makes every undelivered webhook entry
due (parked ones too), gives each one attempt and reports. Exit 0 when nothing is left waiting.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from callcenter.settings import Settings
from summaries.durable_writer import BAD_SUFFIX

if TYPE_CHECKING:
    from summaries.webhook import Delivery, WebhookOutbox

CRM_SPOOL_DIR = "crm-spool"
WEBHOOK_OUTBOX_DIR = "webhook-outbox"
"""Folders under ``data_dir``, as ``callcenter.aftercall`` lays them out."""
POLL_S = 0.05


@dataclass(frozen=True)
class SinkReport:
    """What one sink did: ``done`` sent now, ``waiting`` still left, ``reason`` why."""

    name: str
    done: int
    waiting: int
    reason: str | None = None
    set_aside: int = 0
    """Unreadable spool files moved aside (``*.bad``) for a person to look at."""

    def line(self) -> str:
        verb = "written" if self.name == "crm" else "delivered"
        out = f"{self.name}: {self.done} {verb}, {self.waiting} waiting"
        if self.set_aside:
            out += f", {self.set_aside} unreadable (set aside as *{BAD_SUFFIX})"
        return out + (f" ({self.reason})" if self.waiting and self.reason else "")


@dataclass(frozen=True)
class DeliveryReport:
    crm: SinkReport
    webhook: SinkReport

    @property
    def ok(self) -> bool:
        return self.crm.waiting == 0 and self.webhook.waiting == 0


async def flush_crm_spool(settings: Settings) -> SinkReport:
    """Write every spooled call to the store (each in one transaction); the rest stay spooled."""
    from summaries.durable_writer import DurableWriter
    from summaries.store import CrmStore

    spool = settings.data_dir / CRM_SPOOL_DIR
    # Redacted on the way in like a live call: a spool left by an older version may hold PII.
    store = CrmStore(settings.store_url, secure_ivr_nodes=settings.summary.secure_ivr_nodes,
                     keep_original_pii=settings.store.keep_original_pii)
    writer = DurableWriter(store, spool)
    before = len(writer.spooled())
    if not before:
        return SinkReport("crm", 0, 0)
    bad_before = _bad_files(spool)
    try:
        waiting = await asyncio.to_thread(writer.flush)
    finally:
        await asyncio.to_thread(store.stop)
    set_aside = _bad_files(spool) - bad_before
    return SinkReport("crm", before - waiting - set_aside, waiting, writer.last_error, set_aside)


def _bad_files(spool: Path) -> int:
    return sum(1 for _ in spool.glob(f"*{BAD_SUFFIX}"))


async def deliver_webhook_outbox(settings: Settings, timeout_s: float) -> SinkReport:
    """One attempt (within ``timeout_s``) for every undelivered summary in the outbox."""
    from summaries.webhook import OUTBOX_FILE, WebhookOutbox

    folder = settings.data_dir / WEBHOOK_OUTBOX_DIR
    if not (folder / OUTBOX_FILE).exists():
        return SinkReport("webhook", 0, 0)
    url = settings.store.webhook_url
    outbox = WebhookOutbox(url or "", settings.store.webhook_secret or "", folder, timeout_s=timeout_s)
    try:
        if not url:
            return SinkReport("webhook", 0, len(_undelivered(outbox)), "store.webhook_url is not set")
        if await outbox.retry_now() == 0:
            return SinkReport("webhook", 0, 0)
        tried = {d.key: d.attempts for d in outbox.pending()}
        await outbox.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            attempts = {d.key: d.attempts for d in outbox.pending()}
            if all(attempts.get(k, n + 1) > n for k, n in tried.items()):
                break
            await asyncio.sleep(POLL_S)
        await outbox.stop(grace_s=0)
        delivered = {d.key for d in outbox.delivered()}
        left = _undelivered(outbox)
        errors = [d.last_error for d in left if d.last_error]
        reason = errors[0] if errors else ("no answer within the timeout" if left else None)
        return SinkReport("webhook", len(delivered & tried.keys()), len(left), reason)
    finally:
        await outbox.stop(grace_s=0)


def _undelivered(outbox: WebhookOutbox) -> list[Delivery]:
    """Pending and parked entries."""
    return [*outbox.pending(), *(d for d in outbox.failed() if d.status == "parked")]


async def deliver(settings: Settings, *, timeout_s: float = 10.0) -> DeliveryReport:
    """Drain the CRM spool and the webhook outbox of ``settings.data_dir``."""
    crm = await flush_crm_spool(settings)
    webhook = await deliver_webhook_outbox(settings, timeout_s)
    return DeliveryReport(crm, webhook)


async def run_deliver(settings: Settings, out: TextIO, *, timeout_s: float = 10.0) -> int:
    """The CLI command: one line per sink; 0 when nothing waits, 1 otherwise."""
    report = await deliver(settings, timeout_s=timeout_s)
    out.write(report.crm.line() + "\n")
    out.write(report.webhook.line() + "\n")
    return 0 if report.ok else 1
