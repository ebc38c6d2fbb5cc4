"""Load on the whole service: sipp calls with media through the Kamailio front, full analysis.

Issue 14's measurement. For each concurrency level, sipp (``uac_pcap``: ~7 s of PCMA speech, an
RFC 4733 "1", BYE at ~9 s) places that many calls at once against ``callcenter serve`` with its
default settings (the default recognizer, whisper; every utterance recognized, tone, dead air,
recording, the CRM store, MQTT published to the mosquitto ``serve`` starts; workers from the
capacity plan). Levels step up until the first one with a failed call, a dropped frame or a dead
worker (that level is the last row). Reported per level: calls answered/failed, INVITE→200 OK
set-up p50/p95 (sipp ``-trace_rtt``), audio frames dropped in the workers, utterances closed by
the VAD and finals published, final-transcript latency p50/p95 (``speech.ended`` →
``transcript.final`` as they arrive on the broker, ``live_capacity.EventClock``), worker CPU per
call-second (psutil over the worker processes), memory per worker (RSS/USS), calls the workers
refused as overloaded (503) and their highest shed level; and where the recognizer's time went
(the workers' decode-thread seconds for finals, menu re-decodes and partials, ``decode`` in
their stats).

In the same run, side by side: the no-recognizer floor (``asr.engine = none``, same levels) and
the recognizer alone on the same audio in a process of its own (CPU-s per audio second, and the
calls 2 cores could decode at the audio's speech share: the engine-bound limit).

``--arrivals steady`` places each level's calls one after another (three times the level, at most
the level up at once), so as many calls are up at every moment but their callers do not all stop
talking in the same second: the final-transcript latency of a sustained load, where ``burst``
(the default) measures the worst second.

    .venv/bin/python benchmarks/bench_serve.py [--levels 4,8,12,16,20,24,30] [--workers auto|N]
        [--engine whisper] [--floor-levels 8,16,24,32] [--arrivals burst|steady] [--no-stop] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.live_capacity import (  # noqa: E402
    THREADS,
    EventClock,
    ThreadMeter,
    pcap_wav,
    recognizer_alone,
    sipp_failures,
    sipp_last_stats,
    worker_memory,
)
from callcenter.serve import Service, start_service, stop_service  # noqa: E402
from callcenter.settings import load_settings  # noqa: E402
from telephony.net import free_port  # noqa: E402

PCAP_DIR = Path("/usr/share/sip-tester")
SIPP_TIMEOUT_S = 60
SETTLE_S = 30
READY_S = 300.0
"""How long the workers may take to start (each loads the recognizer; on a busy machine, minutes)."""
IDLE_S = 4.0
"""Before each level: how long the workers' CPU with no call is sampled (then subtracted)."""
CALL_S = 9.0
"""Length of a ``uac_pcap`` call (its BYE comes ~9 s after the answer)."""


EXTRA: dict[str, object] = {}
"""``--set KEY=VALUE`` settings, applied to every service this run starts (an A/B of one setting)."""


def settings_for(tmp: Path, *, workers: int, engine: str | None):
    """Default settings but for ports, the data folder, the console (off: no browser here),
    ``engine`` (None: the default) and ``--set``."""
    while True:
        base = free_port()
        if all(_free(p) for p in range(base, base + 16)):
            break
    overrides: dict[str, object] = {
        "data_dir": str(tmp / "data"), "sip.port": free_port(), "sip.worker_base_port": base,
        "sip.workers": workers, "sip.front": "kamailio", "console.enabled": False,
        "mqtt.enabled": True, "mqtt.embedded_port": free_port(),
    }
    overrides.update(EXTRA)
    if engine:
        overrides["asr.engine"] = engine
    return load_settings(overrides=overrides, environ={})


def _free(port: int) -> bool:
    import socket

    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _prepare(workdir: Path) -> None:
    """sipp's pcap scenarios read ``pcap/...`` relative to the folder they run in."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "pcap").exists():
        os.symlink(PCAP_DIR, workdir / "pcap")


def _read_sipp(workdir: Path, stat_file: Path) -> tuple[dict, list[float]]:
    """Last statistics row, and every INVITE→200 time (ms) from the ``-trace_rtt`` files."""
    last = sipp_last_stats(stat_file)
    rtts: list[float] = []
    for f in workdir.glob("*_rtt.csv"):
        for row in csv.DictReader(f.open(), delimiter=";"):
            key = next((k for k in row if k and k.lower().startswith("response_time")), None)
            if key and row[key]:
                rtts.append(float(row[key]))
        f.unlink()
    stat_file.unlink(missing_ok=True)
    return last, rtts


ADMIT_WAIT_S = 60
"""Before a level: how long to wait for overloaded workers to recover (admit calls again)."""


STEADY_ROUNDS = 3
"""``--arrivals steady``: calls placed per level, in multiples of the level (the first round ramps up)."""


def sipp_rate(calls: int, arrivals: str) -> tuple[int, list[str]]:
    """Calls sipp places for a level of ``calls`` concurrent ones, and its rate options.

    ``burst``: all at once (20 a second), so every caller speaks and stops in the same second and
    every final is decoded at once: the worst case. ``steady``: ``STEADY_ROUNDS`` times as many,
    one every ``CALL_S / calls`` seconds with at most ``calls`` up at a time, so after the first
    round ``calls`` calls are up at every moment at spread-out points of their script, as calls
    arriving independently are (the same concurrency, not the same second)."""
    if arrivals == "burst":
        return calls, ["-r", "20"]
    return calls * STEADY_ROUNDS, ["-r", str(calls), "-rp", str(int(CALL_S * 1000))]


async def run_level(svc: Service, calls: int, workdir: Path, clock: EventClock | None = None,
                    arrivals: str = "burst") -> dict:
    _prepare(workdir)
    deadline = time.monotonic() + ADMIT_WAIT_S  # a level starts on a recovered service
    while time.monotonic() < deadline:
        if all((s.get("load") or {}).get("admitting", True) for s in svc.worker_stats()):
            break
        await asyncio.sleep(0.5)
    procs = [psutil.Process(p.pid) for p in svc.workers]
    pids = [p.pid for p in procs]
    idle, t_idle = ThreadMeter(pids), time.monotonic()
    await asyncio.sleep(IDLE_S)  # the workers' own CPU with no call, subtracted below
    idle_cpu = idle.totals()
    idle_rate = {k: v / (time.monotonic() - t_idle) for k, v in idle_cpu.items()}
    meter, t_calls = ThreadMeter(pids), time.monotonic()
    sampling = asyncio.create_task(meter.run())
    cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs)
    before = {s["index"]: s for s in svc.worker_stats()}
    stat_file = workdir / "stat.csv"
    mark = clock.mark() if clock is not None else 0
    placed, rate = sipp_rate(calls, arrivals)
    timeout_s = SIPP_TIMEOUT_S * placed // calls  # a steady level lasts its rounds
    cmd = ["sipp", f"127.0.0.1:{svc.settings.sip.port}", "-sn", "uac_pcap", "-i", "127.0.0.1",
           "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", str(free_port()), "-m", str(placed),
           "-l", str(calls), *rate, "-nostdin", "-timeout", f"{timeout_s}s", "-timeout_error",
           "-trace_stat", "-stf", str(stat_file), "-fd", "1", "-trace_rtt", "-rtt_freq", "1",
           "-trace_err"]  # what a failed call got, in the run folder (--keep)
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=workdir, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.wait_for(proc.wait(), timeout_s + 15)
    except TimeoutError:
        proc.kill()
        await proc.wait()
    wall = time.monotonic() - t0
    # let the workers finish the after-call work of these calls
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        stats = svc.worker_stats()
        if all(s["active_calls"] == 0 for s in stats) or any(p.returncode is not None for p in svc.workers):
            break
        await asyncio.sleep(0.2)
    alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    cpu1 = sum(sum(p.cpu_times()[:2]) for p in alive) if len(alive) == len(procs) else float("nan")
    sampling.cancel()
    threads1, span = meter.totals(), time.monotonic() - t_calls
    after = svc.worker_stats()
    dropped = sum(s["frames_dropped"] - before.get(s["index"], {}).get("frames_dropped", 0) for s in after)
    refused = sum((s.get("refused") or {}).get("503", 0) - (before.get(s["index"], {}).get("refused") or {}).get("503", 0)
                  for s in after)
    decode = _decode_delta(after, before)
    shed = max((lvl for s in after for lvl in _levels(s, before.get(s["index"], {}))), default=0)
    last, rtts = _read_sipp(workdir, stat_file)
    await asyncio.sleep(1.0)  # the last finals' publications reach the broker
    events = clock.window(mark) if clock is not None else None
    mem = [m for m in worker_memory([p.pid for p in procs]) if m]
    ok = int(last.get("SuccessfulCall(C)", 0) or 0)
    call_s = max(1, ok) * CALL_S
    # per thread as measured (the media clock thread only lives while calls have audio, so an idle
    # rate cannot be taken off it); the total also net of the workers' idle CPU
    by_thread = {k: v / call_s for k, v in threads1.items()}
    by_thread["idle"] = idle_rate.get("total", 0.0) * span / call_s
    net = max(0.0, threads1["total"] - idle_rate.get("total", 0.0) * span) / call_s
    return {
        "calls": calls,
        "ok": ok,
        "failed": int(last.get("FailedCall(C)", 0) or 0),
        "failed_how": sipp_failures(last),
        "setup_p50": percentile(rtts, 0.5),
        "setup_p95": percentile(rtts, 0.95),
        "dropped": dropped,
        "placed": placed,
        "cpu_per_call": (cpu1 - cpu0) / placed,
        "cpu_per_call_s": net,
        "cpu_gross_per_call_s": (cpu1 - cpu0) / call_s,
        "idle_cpu_per_worker": idle_rate.get("total", 0.0) / max(1, len(pids)),
        "threads": by_thread,
        "utterances": events.utterances if events else 0,
        "finals": events.finals if events else 0,
        "final_p50": events.p50 if events else float("nan"),
        "final_p95": events.p95 if events else float("nan"),
        "rss_mb": statistics.median([m["rss_mb"] for m in mem]) if mem else float("nan"),
        "uss_mb": statistics.median([m["uss_mb"] for m in mem]) if mem else float("nan"),
        "wall": wall,
        "crashed": sum(1 for p in svc.workers if p.returncode is not None),
        "leaked": sum(s["active_calls"] for s in after),
        "refused": refused,
        "shed": shed,
        "decode": {k: v / call_s for k, v in decode.items()},
    }


DECODE_KINDS = {"final_busy_s": "finals (with menu re-decodes)", "menu_busy_s": "of which menu re-decodes",
                "partial_busy_s": "partial re-decodes", "feed_busy_s": "streaming feed"}


def _decode_delta(after: list[dict], before: dict[int, dict]) -> dict[str, float]:
    """The recognizer's decode-thread seconds by kind over the level, summed over the workers."""
    out = dict.fromkeys(DECODE_KINDS, 0.0)
    for s in after:
        prev = before.get(s["index"], {}).get("decode") or {}
        for k in out:
            out[k] += float((s.get("decode") or {}).get(k, 0.0)) - float(prev.get(k, 0.0))
    return out


LEVELS = ("normal", "refusing", "no_partials", "no_prosody")


def _levels(stats: dict, before: dict) -> list[int]:
    """Shed levels a worker was at during the level (its load history since ``before``)."""
    load = stats.get("load") or {}
    new = load.get("changes", 0) - (before.get("load") or {}).get("changes", 0)
    seen = [load.get("level", 0)]
    for change in load.get("history", [])[-new:] if new > 0 else []:
        seen += [LEVELS.index(x) for x in change.split(" -> ") if x in LEVELS]
    return seen


def _failed(r: dict) -> bool:
    return bool(r["failed"] or r["dropped"] or r["crashed"] or r["ok"] < r["placed"])


async def step(label: str, tmp: Path, levels: list[int], *, workers: int, engine: str | None,
               stop: bool, arrivals: str = "burst") -> tuple[list[dict], dict]:
    """Run ``levels`` on one service until the first level with a failure (unless not ``stop``)."""
    svc = await start_service(settings_for(tmp, workers=workers, engine=engine), log_dir=tmp / "logs",
                              ready_timeout=READY_S)
    mqtt = svc.settings.mqtt
    clock = EventClock("127.0.0.1", mqtt.embedded_port, mqtt.topic_prefix)
    info = {"label": label, "workers": len(svc.worker_ports),
            "plan": svc.capacity.to_dict() if svc.capacity is not None else None,
            "asr": svc.settings.asr.model_dump_json()}
    results: list[dict] = []
    try:
        await clock.start()
        for level in levels:
            res = await run_level(svc, level, tmp / f"sipp-{level}", clock, arrivals)
            res["label"], res["workers"] = label, info["workers"]
            results.append(res)
            print(f"  {label} {level} calls: {res['ok']} ok, {res['failed']} failed, dropped {res['dropped']}, "
                  f"final p95 {res['final_p95']:.2f} s, crashed {res['crashed']}"
                  + (f" (sipp: {res['failed_how']})" if res.get("failed_how") else ""), file=sys.stderr, flush=True)
            if res["crashed"]:
                break
            if stop and _failed(res):
                break
    finally:
        await clock.stop()
        await stop_service(svc)
    return results, info


def _fmt(x: float, spec: str = ".2f") -> str:
    return "-" if x != x else format(x, spec)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="4,8,12,16,20,24,30")
    ap.add_argument("--floor-levels", default="", help="no-recognizer levels (default: --levels); 'skip'")
    ap.add_argument("--workers", default="auto", help="endpoint workers, or auto (the capacity plan)")
    ap.add_argument("--engine", default=None, help="recognizer (default: the service's default)")
    ap.add_argument("--no-stop", action="store_true", help="run every level, not only until the first failure")
    ap.add_argument("--keep", action="store_true", help="keep the run's folder (logs, data) and print it")
    ap.add_argument("--arrivals", choices=("burst", "steady"), default="burst",
                    help="burst: a level's calls all at once; steady: placed one after another so that "
                         "as many are up at every moment, at spread-out points of their script")
    ap.add_argument("--latency-bound", type=float, default=2.0,
                    help="final-transcript p95 (s) a held level must stay within (reported, does not stop)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting for the services (dotted key, JSON or plain value), e.g. asr.partials=false")
    args = ap.parse_args()
    for item in args.set:
        key, _, raw = item.partition("=")
        try:
            EXTRA[key.strip()] = json.loads(raw)
        except ValueError:
            EXTRA[key.strip()] = raw
    workers = 0 if args.workers == "auto" else int(args.workers)
    levels = [int(x) for x in args.levels.split(",")]
    floor_levels = levels if not args.floor_levels else (
        [] if args.floor_levels == "skip" else [int(x) for x in args.floor_levels.split(",")])
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    load0 = os.getloadavg()
    full, info = await step("full analysis", tmp / "full", levels, workers=workers, engine=args.engine,
                            stop=not args.no_stop, arrivals=args.arrivals)
    floor: list[dict] = []
    if floor_levels:
        floor, _ = await step("no recognizer", tmp / "floor", floor_levels, workers=workers, engine="none",
                              stop=not args.no_stop, arrivals=args.arrivals)
    wav, audio_s, share = pcap_wav(tmp / "uac_pcap.wav")
    try:
        alone = await recognizer_alone(info["asr"], wav)
    except (RuntimeError, TimeoutError) as exc:
        print(f"recognizer alone failed: {exc}", file=sys.stderr)
        alone = float("nan")
    load1 = os.getloadavg()
    cores = os.cpu_count() or 1
    # per call: the caller speaks ``share`` of the audio's 7 s in a 9 s call; the recognizer decodes speech only
    engine_calls = cores / (alone * share * audio_s / CALL_S) if alone == alone and alone > 0 else float("nan")
    print()
    print(f"sipp uac_pcap (~{CALL_S:.0f} s calls: {audio_s:.1f} s of PCMA, speech share {share:.0%}, RFC 4733), "
          f"Kamailio front, {args.arrivals} arrivals; load average before {load0[0]:.2f}, after {load1[0]:.2f} "
          f"({cores} cores)")
    if EXTRA:
        print(f"settings: {EXTRA}")
    if info["plan"] is not None:
        print(f"capacity plan: {info['plan']}")
    print(f"recognizer alone on the same audio: {_fmt(alone, '.3f')} CPU-s per audio s -> engine-bound limit "
          f"{_fmt(engine_calls, '.0f')} calls on {cores} cores")
    print()
    print("| analysis | workers | calls up at once | placed / answered | failed | dropped frames | set-up p50/p95 (ms) | utterances / finals "
          "| final latency p50/p95 (s) | worker CPU per call-second (net / gross) | RSS / USS per worker (MB) | 503 overload | shed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in full + floor:
        print(f"| {r['label']} | {r['workers']} | {r['calls']} | {r['placed']} / {r['ok']} | {r['failed']} | {r['dropped']} "
              f"| {_fmt(r['setup_p50'], '.0f')} / {_fmt(r['setup_p95'], '.0f')} | {r['utterances']} / {r['finals']} "
              f"| {_fmt(r['final_p50'])} / {_fmt(r['final_p95'])} "
              f"| {_fmt(r['cpu_per_call_s'], '.3f')} / {_fmt(r['cpu_gross_per_call_s'], '.3f')} "
              f"| {_fmt(r['rss_mb'], '.0f')} / {_fmt(r['uss_mb'], '.0f')} | {r['refused']} | {LEVELS[r['shed']]} |")
    print(f"| recognizer alone | - | {_fmt(engine_calls, '.0f')} (engine-bound) | - | - | - | - | - | - "
          f"| {_fmt(alone * share * audio_s / CALL_S, '.3f')} | - | - | - |")
    print()
    print("Worker CPU per call-second by thread (as measured, idle included), at the highest clean level:")
    print("| analysis | calls | " + " | ".join(THREADS.values()) + " | other threads (recognizer, storage, ...) | total "
          "| of which the workers' idle | idle CPU per worker (cores) |")
    print("|---|---|" + "---|" * (len(THREADS) + 4))
    for rows in (full, floor):
        clean_rows = [r for r in rows if not _failed(r)] or rows[:1]
        if clean_rows:
            r = clean_rows[-1]
            th = r["threads"]
            print(f"| {r['label']} | {r['calls']} | " + " | ".join(f"{th.get(k, 0.0):.3f}" for k in THREADS)
                  + f" | {th.get('other', 0.0):.3f} | {th['total']:.3f} | {th['idle']:.3f} "
                  f"| {r['idle_cpu_per_worker']:.3f} |")
    print()
    print("Decode-thread seconds per call-second by kind (wall time on the decode pool, so contention "
          "inflates it), per level:")
    print("| calls | " + " | ".join(DECODE_KINDS.values()) + " |")
    print("|---|" + "---|" * len(DECODE_KINDS))
    for r in full:
        print(f"| {r['calls']} | " + " | ".join(f"{r['decode'].get(k, 0.0):.3f}" for k in DECODE_KINDS) + " |")
    print()
    for label, rows in (("full analysis", full), ("no recognizer", floor)):
        clean = [r["calls"] for r in rows if not _failed(r)]
        if rows:
            print(f"{label}: most concurrent calls with 0 failed, 0 dropped frames, no crash: {max(clean) if clean else 0}")
        timely = [r["calls"] for r in rows if not _failed(r) and not r["final_p95"] > args.latency_bound]
        if rows and label == "full analysis":
            print(f"{label}: ... and final-transcript p95 within {args.latency_bound:.1f} s: "
                  f"{max(timely) if timely else 0}")
    if args.keep:
        print(f"run folder kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
