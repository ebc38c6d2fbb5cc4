"""Load on the whole service: sipp calls with media through the Kamailio front into 2 workers.

For each concurrency level, sipp (``uac_pcap``: ~7 s of PCMA speech, an RFC 4733 "1", BYE at
~9 s) places that many calls at once against the service ``callcenter serve`` runs
(``start_service``: 2 workers, pocketsphinx, CRM store; MQTT and console off). Reported per level:
calls answered/failed, INVITE→200 OK set-up time p50/p95 (sipp ``-trace_rtt``), audio frames
dropped in the workers (their stats files), worker CPU per call (psutil over the worker
processes) and whether a worker died. A level whose worker died restarts the service.

    .venv/bin/python benchmarks/bench_serve.py [--levels 2,4,6,8] [--rounds 1] [--workers 2|auto]

``--workers auto``: as many workers as the capacity plan (``callcenter.capacity``) says; the
plan is printed, and per level how many calls the workers refused as overloaded (503) and
their highest shed level (``callcenter.overload``: refusing, no_partials, no_prosody).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
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

from callcenter.serve import Service, start_service, stop_service  # noqa: E402
from callcenter.settings import load_settings  # noqa: E402
from telephony.net import free_port  # noqa: E402

PCAP_DIR = Path("/usr/share/sip-tester")
SIPP_TIMEOUT_S = 60
SETTLE_S = 20


WORKERS = 2
"""``--workers``: 0 lets the capacity plan decide."""


def settings_for(tmp: Path):
    base = free_port()
    while any(not _free(p) for p in (base, base + 1)):
        base = free_port()
    return load_settings(overrides={
        "data_dir": str(tmp / "data"), "sip.port": free_port(), "sip.worker_base_port": base,
        "sip.workers": WORKERS, "sip.front": "kamailio", "mqtt.enabled": False, "console.enabled": False,
        "asr.engine": "pocketsphinx",
    }, environ={})


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
    rows = list(csv.DictReader(stat_file.open(), delimiter=";")) if stat_file.exists() else []
    rtts: list[float] = []
    for f in workdir.glob("*_rtt.csv"):
        for row in csv.DictReader(f.open(), delimiter=";"):
            key = next((k for k in row if k and k.lower().startswith("response_time")), None)
            if key and row[key]:
                rtts.append(float(row[key]))
        f.unlink()
    stat_file.unlink(missing_ok=True)
    return (rows[-1] if rows else {}), rtts


ADMIT_WAIT_S = 60
"""Before a level: how long to wait for overloaded workers to recover (admit calls again)."""


async def run_level(svc: Service, calls: int, workdir: Path) -> dict:
    _prepare(workdir)
    deadline = time.monotonic() + ADMIT_WAIT_S  # a level starts on a recovered service
    while time.monotonic() < deadline:
        if all((s.get("load") or {}).get("admitting", True) for s in svc.worker_stats()):
            break
        await asyncio.sleep(0.5)
    procs = [psutil.Process(p.pid) for p in svc.workers]
    cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs)
    before = {s["index"]: s for s in svc.worker_stats()}
    stat_file = workdir / "stat.csv"
    cmd = ["sipp", f"127.0.0.1:{svc.settings.sip.port}", "-sn", "uac_pcap", "-i", "127.0.0.1",
           "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", str(free_port()), "-m", str(calls),
           "-l", str(calls), "-r", "20", "-nostdin", "-timeout", f"{SIPP_TIMEOUT_S}s", "-timeout_error",
           "-trace_stat", "-stf", str(stat_file), "-fd", "1", "-trace_rtt", "-rtt_freq", "1"]
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=workdir, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.wait_for(proc.wait(), SIPP_TIMEOUT_S + 15)
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
    after = svc.worker_stats()
    dropped = sum(s["frames_dropped"] - before.get(s["index"], {}).get("frames_dropped", 0) for s in after)
    refused = sum((s.get("refused") or {}).get("503", 0) - (before.get(s["index"], {}).get("refused") or {}).get("503", 0)
                  for s in after)
    shed = max((lvl for s in after for lvl in _levels(s, before.get(s["index"], {}))), default=0)
    last, rtts = _read_sipp(workdir, stat_file)
    return {
        "calls": calls,
        "ok": int(last.get("SuccessfulCall(C)", 0) or 0),
        "failed": int(last.get("FailedCall(C)", 0) or 0),
        "setup_p50": percentile(rtts, 0.5),
        "setup_p95": percentile(rtts, 0.95),
        "dropped": dropped,
        "cpu_per_call": (cpu1 - cpu0) / calls,
        "wall": wall,
        "crashed": sum(1 for p in svc.workers if p.returncode is not None),
        "leaked": sum(s["active_calls"] for s in after),
        "refused": refused,
        "shed": shed,
    }


LEVELS = ("normal", "refusing", "no_partials", "no_prosody")


def _levels(stats: dict, before: dict) -> list[int]:
    """Shed levels a worker was at during the level (its load history since ``before``)."""
    load = stats.get("load") or {}
    new = load.get("changes", 0) - (before.get("load") or {}).get("changes", 0)
    seen = [load.get("level", 0)]
    for change in load.get("history", [])[-new:] if new > 0 else []:
        seen += [LEVELS.index(x) for x in change.split(" -> ") if x in LEVELS]
    return seen


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="2,4,6,8")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--workers", default="2", help="endpoint workers, or auto (the capacity plan)")
    args = ap.parse_args()
    global WORKERS
    WORKERS = 0 if args.workers == "auto" else int(args.workers)
    levels = [int(x) for x in args.levels.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    results = []
    svc = await start_service(settings_for(tmp), log_dir=tmp / "logs")
    plan = svc.capacity.to_dict() if svc.capacity is not None else None
    try:
        for level in levels:
            for rnd in range(args.rounds):
                res = await run_level(svc, level, tmp / f"sipp-{level}-{rnd}")
                results.append(res)
                print(f"  {level} calls: {res['ok']} ok, {res['failed']} failed, crashed {res['crashed']}",
                      file=sys.stderr, flush=True)
                if res["crashed"]:
                    await stop_service(svc)
                    svc = await start_service(settings_for(tmp / f"restart-{level}-{rnd}"), log_dir=tmp / "logs")
    finally:
        await stop_service(svc)
    print()
    print(f"{len(svc.worker_ports)} workers behind Kamailio, pocketsphinx, sipp uac_pcap "
          "(~9 s calls with PCMA speech + RFC 4733)")
    if plan is not None:
        print(f"capacity plan: {plan}")
    print(f"{'calls':>5} {'ok':>4} {'fail':>4} {'setup p50 ms':>12} {'setup p95 ms':>12} {'dropped':>8} "
          f"{'CPU s/call':>10} {'CPU %/call':>10} {'crashed':>7} {'leaked':>6} {'503 load':>8} {'shed':>11}")
    for r in results:
        per_call_pct = 100 * r["cpu_per_call"] / 9.0
        print(f"{r['calls']:>5} {r['ok']:>4} {r['failed']:>4} {r['setup_p50']:>12.1f} {r['setup_p95']:>12.1f} "
              f"{r['dropped']:>8} {r['cpu_per_call']:>10.2f} {per_call_pct:>10.1f} {r['crashed']:>7} {r['leaked']:>6} "
              f"{r['refused']:>8} {LEVELS[r['shed']]:>11}")
    clean = [r["calls"] for r in results if r["failed"] == 0 and r["dropped"] == 0 and not r["crashed"]]
    print(f"\nmost concurrent calls with zero failures, no dropped frames, no crash: {max(clean) if clean else 0}")
    print(f"medians over levels: setup p50 {statistics.median([r['setup_p50'] for r in results]):.1f} ms")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
