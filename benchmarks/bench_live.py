"""Latency from ``MqttPublisher.publish(event)`` to an MQTT subscriber receiving it.

Runs a private mosquitto on a free port, one publisher and one subscriber (aiomqtt) in this
process, and prints p50/p95/max per event kind, with and without a background stream of
partials (the busy case: several calls' partials and tone updates). Also the cost of the
``publish()`` call itself, which is what the call's analysis pays.

    .venv/bin/python benchmarks/bench_live.py [--n 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt

# Until pyproject's package list includes ``live*``, run from a checkout without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from live.broker import EmbeddedBroker, find_mosquitto
from live.publisher import NO_DELAY, MqttPublisher
from live.testing import free_port
from speech.events import DeadAirStarted, FinalTranscript, PartialTranscript
from speech.frames import Party


class Settings:
    host = "127.0.0.1"
    username = password = ca_file = None
    tls = False
    topic_prefix = "bench"
    outbox_max = 1_000_000

    def __init__(self, port: int) -> None:
        self.port = port


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def run(n: int, background_hz: float) -> dict[str, list[float]]:
    port = free_port()
    sent: dict[tuple[str, int], float] = {}
    got: dict[str, list[float]] = {"transcript.final": [], "dead_air.started": []}
    call_cost: list[float] = []
    done = asyncio.Event()
    async with EmbeddedBroker(port=port, backend="mosquitto"):
        with tempfile.TemporaryDirectory() as tmp:
            pub = MqttPublisher(Settings(port), Path(tmp) / "outbox.sqlite")
            await pub.start()
            ready = asyncio.Event()

            async def subscriber() -> None:
                async with aiomqtt.Client("127.0.0.1", port, socket_options=NO_DELAY) as client:
                    await client.subscribe("bench/calls/+/transcript", qos=1)
                    await client.subscribe("bench/calls/+/alerts", qos=1)
                    ready.set()
                    async for msg in client.messages:
                        now = time.perf_counter()
                        event = json.loads(msg.payload)
                        key = (event["type"], int(round(event["t"] * 1000)))
                        if key in sent:
                            got[event["type"]].append((now - sent.pop(key)) * 1000)
                            if all(len(v) >= n for v in got.values()):
                                done.set()

            async def background() -> None:
                i = 0
                while background_hz:
                    pub.publish(PartialTranscript(call_id=f"bg{i % 4}", t=i / 100, text="some words"))
                    i += 1
                    await asyncio.sleep(1 / background_hz)

            sub = asyncio.create_task(subscriber())
            await ready.wait()
            bg = asyncio.create_task(background())
            for i in range(n):
                for event in (
                    FinalTranscript(call_id="c1", t=i + 0.001, party=Party.CALLER,
                                    text="i would like to check my balance", confidence=0.8),
                    DeadAirStarted(call_id="c1", t=i + 0.002, start=i - 5.0, threshold=5.0),
                ):
                    sent[(event.type.value, int(round(event.t * 1000)))] = time.perf_counter()
                    t0 = time.perf_counter()
                    pub.publish(event)
                    call_cost.append((time.perf_counter() - t0) * 1000)
                    await asyncio.sleep(0.01)
            await asyncio.wait_for(done.wait(), 60)
            for task in (bg, sub):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await pub.stop()
    got["publish() call"] = call_cost
    return got


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="events of each kind")
    args = parser.parse_args()
    if find_mosquitto() is None:
        raise SystemExit("mosquitto binary missing")
    print(f"{'load':<22} {'event':<18} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for label, hz in (("idle", 0.0), ("+200 partials/s", 200.0)):
        results = asyncio.run(run(args.n, hz))
        for kind, values in results.items():
            print(f"{label:<22} {kind:<18} {len(values):>5} {pct(values, 50):>8.2f} "
                  f"{pct(values, 95):>8.2f} {max(values):>8.2f}")


if __name__ == "__main__":
    main()
