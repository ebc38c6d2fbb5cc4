"""Webhook outbox against a real receiver process on loopback that checks the HMAC: it is stopped
mid-way, summaries are enqueued, it comes back, and each idempotency key arrives exactly once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from speech.ports import free_port
from summaries.sample_calls import angry_tech_call, billing_call
from summaries.summarizer import summarize
from summaries.webhook import WebhookOutbox, sign, verify

RECEIVER = Path(__file__).with_name("webhook_receiver.py")
SECRET = "hook-secret"


class Receiver:
    def __init__(self, tmp: Path, secret: str = SECRET) -> None:
        self.port = free_port()
        self.log = tmp / "deliveries.jsonl"
        self.secret = secret
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(RECEIVER), "--port", str(self.port), "--secret", self.secret, "--log", str(self.log)],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def records(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


@pytest.fixture
def receiver(tmp_path):
    r = Receiver(tmp_path)
    r.start()
    yield r
    r.stop()


def _summary(call_id: str):
    return summarize(billing_call(call_id=call_id))


def test_signature_helpers():
    body = b'{"a":1}'
    assert verify(SECRET, body, sign(SECRET, body))
    assert not verify(SECRET, body + b" ", sign(SECRET, body))
    assert not verify(SECRET, body, None)


async def test_receiver_restart_each_key_delivered_exactly_once(tmp_path, receiver):
    box = WebhookOutbox(receiver.url, SECRET, tmp_path / "outbox", backoff_base_s=0.05, backoff_max_s=0.3, timeout_s=2)
    await box.start()
    try:
        for i in range(3):
            await box.enqueue(_summary(f"c{i}"))
        assert await box.drain(20)
        assert [r["key"] for r in receiver.records()] == ["c0", "c1", "c2"]

        receiver.stop()
        for i in range(3, 6):
            await box.enqueue(_summary(f"c{i}"))
        for _ in range(200):
            if len(box.failed()) == 3:
                break
            await asyncio.sleep(0.05)
        failed = box.failed()
        assert {d.key for d in failed} == {"c3", "c4", "c5"}
        assert all(d.attempts >= 1 and "ConnectError" in d.last_error for d in failed)
        assert {d.key for d in box.pending()} == {"c3", "c4", "c5"}  # still being retried

        # Re-enqueueing an already delivered summary does not send it again.
        await box.enqueue(_summary("c0"))
        receiver.start()
        assert await box.drain(20)
        keys = [r["key"] for r in receiver.records()]
        assert sorted(keys) == [f"c{i}" for i in range(6)]
        assert not any(r["duplicate"] for r in receiver.records())
        assert box.failed() == [] and len(box.delivered()) == 6
    finally:
        await box.stop()
        await box.stop()


async def test_wrong_secret_stays_visible_and_is_retried(tmp_path, receiver):
    box = WebhookOutbox(receiver.url, "wrong", tmp_path / "outbox", backoff_base_s=0.05, backoff_max_s=0.1)
    await box.start()
    try:
        await box.enqueue(_summary("bad-sig"))
        assert not await box.drain(1.0)
        (d,) = box.failed()
        assert d.last_error == "HTTP 401" and d.attempts >= 2 and d.status == "pending"
        assert receiver.records() == []
    finally:
        await box.stop()


async def test_outbox_survives_a_restart_of_the_sender(tmp_path):
    rcv = Receiver(tmp_path)  # not started: nothing listens
    spool = tmp_path / "outbox"
    box = WebhookOutbox(rcv.url, SECRET, spool, backoff_base_s=0.05, backoff_max_s=0.1, timeout_s=1)
    await box.start()
    await box.enqueue(summarize(angry_tech_call()))
    await box.stop()
    rcv.start()
    try:
        box2 = WebhookOutbox(rcv.url, SECRET, spool, backoff_base_s=0.05, backoff_max_s=0.1)
        assert [d.key for d in box2.pending()] == ["call-tech"]
        await box2.start()
        assert await box2.drain(20)
        await box2.stop()
        (rec,) = rcv.records()
        assert rec["key"] == "call-tech" and rec["call_id"] == "call-tech"
    finally:
        rcv.stop()


async def test_max_attempts_parks_then_retry_failed_delivers(tmp_path):
    rcv = Receiver(tmp_path)
    box = WebhookOutbox(rcv.url, SECRET, tmp_path / "outbox", max_attempts=2, backoff_base_s=0.05, timeout_s=1)
    await box.start()
    try:
        await box.enqueue(_summary("parked"))
        for _ in range(200):
            if box.failed() and box.failed()[0].status == "parked":
                break
            await asyncio.sleep(0.05)
        (d,) = box.failed()
        assert d.status == "parked" and d.attempts == 2 and box.pending() == []
        rcv.start()
        assert await box.retry_failed() == 1
        assert await box.drain(20)
        assert [r["key"] for r in rcv.records()] == ["parked"]
    finally:
        await box.stop()
        rcv.stop()


async def test_enqueue_needs_a_key(tmp_path):
    box = WebhookOutbox("http://127.0.0.1:9/x", SECRET, tmp_path / "o")
    with pytest.raises(ValueError):
        await box.enqueue({"reason": "billing"})
    await box.stop()


async def test_retry_now_skips_the_backoff_and_stop_lets_a_due_delivery_finish(tmp_path):
    rcv = Receiver(tmp_path)  # down at first
    box = WebhookOutbox(rcv.url, SECRET, tmp_path / "outbox", backoff_base_s=600, backoff_max_s=600,
                        timeout_s=2)
    await box.start()
    try:
        await box.enqueue(_summary("late"))
        await box.stop()  # the due attempt is made (refused) before stop returns
        (d,) = box.pending()
        assert d.attempts == 1 and d.next_attempt_at > d.created_at + 500  # next try in 10 min
        rcv.start()
        assert await box.retry_now() == 1
        await box.start()
        assert await box.drain(10)
        await box.enqueue(_summary("at-exit"))
        await box.stop()  # enqueued just before a short-lived process exits: still sent
        assert {r["key"] for r in rcv.records()} == {"late", "at-exit"}
        assert await box.retry_now() == 0
    finally:
        await box.stop()
        rcv.stop()
