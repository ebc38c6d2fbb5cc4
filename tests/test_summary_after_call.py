"""After-call chain end to end on real parts: redaction, summary, SQLite store, webhook receiver."""

from __future__ import annotations

import dataclasses
import json

from speech.events import FinalTranscript
from summaries.after_call import AfterCallChain
from summaries.durable_writer import DurableWriter
from summaries.redact import Redactor
from summaries.sample_calls import billing_call
from summaries.store import CrmStore
from summaries.webhook import WebhookOutbox
from tests.test_webhook import SECRET, Receiver


def _with_card(events):
    i = next(i for i, e in enumerate(events) if isinstance(e, FinalTranscript))
    events[i] = dataclasses.replace(events[i], text="I was charged twice on my bill, card 4111 1111 1111 1111", words=())
    return events


async def test_pii_never_leaves_redacted_and_everything_arrives(tmp_path):
    rcv = Receiver(tmp_path)
    rcv.start()
    store = CrmStore(f"sqlite:///{tmp_path / 'crm.db'}")
    writer = DurableWriter(store, tmp_path / "spool")
    writer.start()
    hook = WebhookOutbox(rcv.url, SECRET, tmp_path / "outbox", backoff_base_s=0.05)
    await hook.start()
    try:
        chain = AfterCallChain(Redactor(keep_original=False), writer=writer, webhook=hook)
        result = await chain.process(_with_card(billing_call()))
        assert result.call_id == "call-billing" and result.summary.reason == "billing"
        assert "4111" not in json.dumps(result.event.to_dict())
        assert await hook.drain(20)
        assert [r["key"] for r in rcv.records()] == ["call-billing"]
        detail = store.get_call("call-billing")
        assert "[CARD]" in detail.transcript[0].text and detail.transcript[0].original_text is None
        assert "4111" not in json.dumps(detail.to_dict())
    finally:
        await hook.stop()
        writer.stop()
        store.stop()
        rcv.stop()
