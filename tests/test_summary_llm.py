"""LLM summarizer against a tiny local HTTP server that speaks the chat-completions shape.

No real LLM can run on this machine, so the server is a fake: it returns scripted answers in the
OpenAI response format (or garbage, or nothing, or too late) and records the requests it got.
The client, HTTP, JSON parsing and fallback are all real.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from summaries.llm_summarizer import FALLBACK_PRODUCER, LlmSummarizer
from summaries.sample_calls import billing_call
from summaries.summary import UNKNOWN

GOOD = {
    "reason": "billing",
    "reason_phrase": "charged twice on my bill",
    "actions_taken": ["refunded duplicate charge"],
    "resolution": "resolved",
    "next_steps": [],
    "follow_ups": [{"text": "email confirmation", "due": "within 24 hours"}],
    "entities": [{"kind": "amount", "value": "$49.99"}],
    "key_phrases": ["double charge"],
    "evidence": {"reason": [0], "follow_ups": [4, 99]},
}


class FakeLlm:
    def __init__(self) -> None:
        self.mode = "good"
        self.requests: list[tuple[dict, dict]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append((dict(self.headers), body))
                if owner.mode == "slow":
                    time.sleep(1.5)
                if owner.mode == "500":
                    self.send_response(500)
                    self.end_headers()
                    return
                content = {"good": json.dumps(GOOD), "fenced": "```json\n" + json.dumps(GOOD) + "\n```",
                           "bad": "Sure! Here is a summary: the caller", "slow": json.dumps(GOOD),
                           "invented": json.dumps({**GOOD, "reason": "aliens", "resolution": "maybe"})}[owner.mode]
                out = json.dumps({"id": "x", "object": "chat.completion",
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                               "finish_reason": "stop"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    f = FakeLlm()
    yield f
    f.close()


def test_llm_answer_is_used_and_detector_fields_kept(fake):
    llm = LlmSummarizer(fake.url, "sk-test", "tiny", timeout=5)
    s = llm.summarize(billing_call())
    assert s.producer == "llm:tiny"
    assert s.reason == "billing" and s.resolution == "resolved"
    assert s.follow_ups[0].due == "within 24 hours"
    # Counts come from the events, never from the model.
    assert (s.dead_air_count, s.talk_over_count, s.ivr_path[0]) == (1, 1, "main_menu")
    assert ("account_number", "12345678") in {(e.kind, e.value) for e in s.entities}
    # Evidence indexes map to utterances; out-of-range ones are dropped.
    assert s.evidence["reason"][0].t_start == 8.0
    assert len(s.evidence["follow_ups"]) == 1
    headers, body = fake.requests[0]
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "tiny" and body["messages"][0]["role"] == "system"
    assert "charged twice" in body["messages"][1]["content"]


def test_fenced_json_is_accepted(fake):
    fake.mode = "fenced"
    assert LlmSummarizer(fake.url, None, "tiny").summarize(billing_call()).producer == "llm:tiny"


def test_invented_categories_become_unknown(fake):
    fake.mode = "invented"
    s = LlmSummarizer(fake.url, None, "tiny").summarize(billing_call())
    assert (s.reason, s.resolution) == (UNKNOWN, UNKNOWN)


@pytest.mark.parametrize("mode", ["bad", "500", "slow"])
def test_failures_fall_back_to_offline(fake, mode):
    fake.mode = mode
    llm = LlmSummarizer(fake.url, None, "tiny", timeout=0.5)
    s = llm.summarize(billing_call())
    assert s.producer == FALLBACK_PRODUCER
    assert s.reason == "billing"  # the offline summarizer's answer
    assert llm.last_error


def test_server_down_falls_back():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = LlmSummarizer(f"http://127.0.0.1:{port}/v1", None, "tiny", timeout=1)
    s = llm.summarize(billing_call())
    assert s.producer == FALLBACK_PRODUCER and "ConnectError" in llm.last_error


async def test_async_path(fake):
    s = await LlmSummarizer(fake.url, None, "tiny").asummarize(billing_call())
    assert s.producer == "llm:tiny"
