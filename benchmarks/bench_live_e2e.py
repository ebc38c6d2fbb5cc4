"""End-to-end live latency: from speech ending (or the dead-air threshold being crossed) in the
caller's audio to the event arriving at an MQTT subscriber in another process.

    .venv/bin/python benchmarks/bench_live_e2e.py [FILES...]

Recorded calls (default: the 16 kHz fixtures) are paced in real time through the live pipeline
(VAD, DTMF, dead air, talk-over, pocketsphinx, tone) whose events go to a mosquitto broker through
the durable publisher; a subscriber process stamps each message on arrival (wall clock, shared by
both processes). Reported, p50/p95:
  * utterance end → final transcript at the subscriber: from the moment the frame holding the
    utterance's last voiced audio was pushed (the VAD's back-dated end) — includes the 300 ms
    hangover that keeps words whole, the recognizer's final decode and MQTT;
  * dead-air crossing → alert at the subscriber: from the moment the frame whose end reaches
    silence start + threshold was pushed.
Baseline in the same run: publish() → subscriber for the same events (MQTT alone).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callcenter.settings import load_settings  # noqa: E402
from callcenter.wiring import build_pipeline, load_asr_engine  # noqa: E402
from live.broker import EmbeddedBroker  # noqa: E402
from live.publisher import MqttPublisher  # noqa: E402
from speech.audio_io import load_recording  # noqa: E402
from speech.events import CallStarted, DeadAirStarted, FinalTranscript  # noqa: E402
from telephony.net import free_port  # noqa: E402

SUBSCRIBER = r"""
import asyncio, json, sys, time, aiomqtt
async def main(port):
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.subscribe("bench/calls/+/events", qos=1)
        print("ready", flush=True)
        async for m in c.messages:
            d = json.loads(m.payload)
            if d["type"] in ("transcript.final", "dead_air.started"):
                print(json.dumps({"at": time.time(), "type": d["type"], "call_id": d["call_id"],
                                  "t": d["t"], "end": d.get("end"), "start": d.get("start"), "text": bool(d.get("text"))}), flush=True)
asyncio.run(main(int(sys.argv[1])))
"""


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


async def run(files: list[Path]) -> None:
    port = free_port()
    tmp = Path(tempfile.mkdtemp())
    settings = load_settings(environ={}, overrides={"asr.engine": "pocketsphinx", "mqtt.topic_prefix": "bench"})
    engine = load_asr_engine(settings)
    async with EmbeddedBroker(port=port):
        sub = subprocess.Popen(  # noqa: ASYNC220 - once, before any timing starts
            [sys.executable, "-c", SUBSCRIBER, str(port)], stdout=subprocess.PIPE, text=True
        )
        assert sub.stdout is not None and sub.stdout.readline().strip() == "ready"
        publisher = MqttPublisher(settings.mqtt, tmp / "outbox.sqlite", host="127.0.0.1", port=port)
        await publisher.start()
        pushed: dict[tuple[str, float], float] = {}
        published: dict[tuple[str, str, float], float] = {}
        thresholds = settings.dead_air.threshold_s
        for i, path in enumerate(files):
            rec = load_recording(path)
            call_id = f"bench-{i}"
            pipeline = build_pipeline(call_id, settings, engine)

            def sink(event, call_id=call_id) -> None:
                publisher.publish(event)
                if isinstance(event, FinalTranscript | DeadAirStarted):
                    published[(call_id, event.type.value, round(event.t, 3))] = time.time()

            pipeline.add_sink(sink)
            await pipeline.start(CallStarted(t=0.0))
            t0 = time.perf_counter()
            for frame in rec.frames():
                delay = t0 + frame.timestamp - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                pushed.setdefault((call_id, round(frame.end, 2)), time.time())
                pipeline.push_frame(frame)
            await pipeline.end()
        await publisher.stop(drain=True, timeout=10)
        await asyncio.sleep(0.5)
        sub.terminate()
        out, _ = sub.communicate(timeout=5)
    engine.close()

    finals, dead, mqtt_only = [], [], []
    for line in out.splitlines():
        m = json.loads(line)
        key = (m["call_id"], m["type"], round(m["t"], 3))
        if key in published:
            mqtt_only.append(m["at"] - published[key])
        if m["type"] == "transcript.final" and m["text"]:
            ref = m["end"]  # the VAD's end of voiced audio
            frame_key = min((k for k in pushed if k[0] == m["call_id"] and k[1] >= ref - 1e-6),
                            key=lambda k: k[1], default=None)
            if frame_key:
                finals.append(m["at"] - pushed[frame_key])
        elif m["type"] == "dead_air.started":
            crossing = m["start"] + thresholds
            frame_key = min((k for k in pushed if k[0] == m["call_id"] and k[1] >= crossing - 1e-6),
                            key=lambda k: k[1], default=None)
            if frame_key:
                dead.append(m["at"] - pushed[frame_key])
    print(f"{len(files)} calls paced in real time; pocketsphinx; mosquitto; subscriber in another process\n")
    print("| path | n | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    for name, xs in (("utterance end → final transcript at subscriber", finals),
                     ("dead-air crossing → alert at subscriber", dead),
                     ("baseline: publish() → subscriber (same events)", mqtt_only)):
        ms = [x * 1000 for x in xs]
        print(f"| {name} | {len(ms)} | {pct(ms, 0.5):.0f} | {pct(ms, 0.95):.0f} | {max(ms) if ms else float('nan'):.0f} |")
    if finals:
        print(f"\nmean utterance-end → final: {statistics.mean(finals) * 1000:.0f} ms "
              f"(of which VAD hangover {settings.vad.hangover_ms} ms)")


def main() -> None:
    fixtures = ROOT / "audio_fixtures"
    files = [Path(a) for a in sys.argv[1:]] or sorted(
        p for p in fixtures.glob("*.wav") if not p.stem.endswith(("_8k_ulaw", "_8k_alaw"))
    ) + [fixtures / "dead_air.wav"] * 4  # one dead-air gap per call: repeat it for a p95
    asyncio.run(run(files))


if __name__ == "__main__":
    main()
