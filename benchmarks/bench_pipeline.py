"""Pipeline cost and speed, against the ASR engine alone on the same audio, in the same run.

    .venv/bin/python benchmarks/bench_pipeline.py [FILES...]

For each recording (default: the committed fixtures) it measures, with process CPU time (all
threads):
  * engine alone: every second of every channel decoded by the engine (no VAD gating);
  * whole pipeline: VAD, DTMF, dead air, talk-over, VAD-gated ASR and tone, as `replay` runs it;
and prints CPU seconds per audio second for both, their ratio, the replay speed as a multiple of
real time, and how far the dead-air alert lags the true threshold crossing (call time, and wall
time when frames are paced in real time). Numbers vary ±25% on a shared machine.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callcenter.replay import replay_file  # noqa: E402
from callcenter.settings import load_settings  # noqa: E402
from callcenter.wiring import build_pipeline, load_asr_engine  # noqa: E402
from speech.audio_io import load_recording  # noqa: E402
from speech.events import CallStarted, DeadAirStarted  # noqa: E402

FIXTURES = ROOT / "audio_fixtures"


def engine_alone(engine, path: Path) -> tuple[float, float]:
    """(cpu seconds, audio seconds) decoding every channel in 100 ms chunks, no VAD."""
    rec = load_recording(path)
    cpu0 = time.process_time()
    audio = 0.0
    for track in rec.tracks.values():
        session = engine.open_session()
        pcm = track.astype("<i2").tobytes()
        step = 3200
        for i in range(0, len(pcm), step):
            session.accept(pcm[i : i + step])
        session.finish()
        session.close()
        audio += len(track) / 16000
    return time.process_time() - cpu0, audio


async def pipeline_run(settings, engine, path: Path) -> tuple[float, float, list]:
    """(cpu seconds, wall seconds, events) of one replay (no store)."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    res = await replay_file(path, settings, engine)
    if res.error:
        raise SystemExit(res.error)
    return time.process_time() - cpu0, time.perf_counter() - wall0, res.events


async def dead_air_wall_lag(settings, engine, path: Path, threshold: float) -> list[float]:
    """Pace frames in real time; wall seconds from the crossing frame's push to the alert."""
    rec = load_recording(path)
    pipeline = build_pipeline("bench", settings, engine)
    pushed_at: dict[float, float] = {}
    lags: list[float] = []

    def sink(event) -> None:
        if isinstance(event, DeadAirStarted):
            crossing = event.start + threshold
            # the frame whose end first reached the crossing
            key = min((k for k in pushed_at if k >= crossing - 1e-6), default=None)
            if key is not None:
                lags.append(time.perf_counter() - pushed_at[key])

    pipeline.add_sink(sink)
    await pipeline.start(CallStarted(t=0.0))
    t0 = time.perf_counter()
    for frame in rec.frames():
        delay = t0 + frame.timestamp - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pushed_at[round(frame.end, 3)] = time.perf_counter()
        pipeline.push_frame(frame)
    await pipeline.end()
    return lags


def speech_share(events: list, channel_seconds: float) -> float:
    """Share of channel-seconds the VAD called speech (what the ASR is fed, before pre-roll)."""
    from speech.events import SpeechEnded

    return sum(e.duration for e in events if isinstance(e, SpeechEnded)) / channel_seconds


def main() -> None:
    files = [Path(a) for a in sys.argv[1:]] or sorted(
        p for p in FIXTURES.glob("*.wav") if not p.stem.endswith(("_8k_ulaw", "_8k_alaw"))
    )
    settings = load_settings(overrides={"asr.engine": "pocketsphinx"})
    engine = load_asr_engine(settings)
    rows = []
    for path in files:
        e_cpu, e_audio = engine_alone(engine, path)
        p_cpu, p_wall, events = asyncio.run(pipeline_run(settings, engine, path))
        d_cpu, _, _ = asyncio.run(pipeline_run(settings, None, path))
        rec = load_recording(path)
        lag_call = [
            round(e.t - (e.start + settings.dead_air.threshold_s), 3) for e in events if isinstance(e, DeadAirStarted)
        ]
        rows.append({
            "file": path.name,
            "audio_s": round(rec.duration, 1),
            "engine_cpu_per_audio_s": round(e_cpu / e_audio, 3),
            "pipeline_cpu_per_audio_s": round(p_cpu / e_audio, 3),
            "detectors_cpu_per_audio_s": round(d_cpu / e_audio, 3),
            "speech_share": round(speech_share(events, e_audio), 2),
            "pipeline_vs_engine": round(p_cpu / e_cpu, 2) if e_cpu else None,
            "replay_x_realtime": round(rec.duration / p_wall, 1),
            "dead_air_lag_call_s": lag_call,
        })
    print(f"engine: {engine.name}; pipeline = VAD + DTMF + dead air + talk-over + VAD-gated ASR + tone\n")
    head = ["file", "audio s", "speech share", "engine CPU/audio s", "pipeline CPU/audio s", "of which detectors",
            "pipeline/engine", "replay ×RT", "dead-air lag (call s)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print(f"| {r['file']} | {r['audio_s']} | {r['speech_share']} | {r['engine_cpu_per_audio_s']} | "
              f"{r['pipeline_cpu_per_audio_s']} | {r['detectors_cpu_per_audio_s']} | "
              f"{r['pipeline_vs_engine']} | {r['replay_x_realtime']} | {r['dead_air_lag_call_s'] or '-'} |")
    tot_e = statistics.mean(r["engine_cpu_per_audio_s"] for r in rows)
    tot_p = statistics.mean(r["pipeline_cpu_per_audio_s"] for r in rows)
    print(f"\nmean CPU per audio second: engine alone {tot_e:.3f}, pipeline {tot_p:.3f} (ratio {tot_p / tot_e:.2f})")
    dead = FIXTURES / "dead_air.wav"
    if dead.exists():
        lags = asyncio.run(dead_air_wall_lag(settings, engine, dead, settings.dead_air.threshold_s))
        if lags:
            print(f"dead-air alert, frames paced in real time: wall lag after the crossing frame "
                  f"{statistics.median(lags) * 1000:.2f} ms (n={len(lags)})")
    print(json.dumps(rows), file=sys.stderr)
    engine.close()


if __name__ == "__main__":
    main()
