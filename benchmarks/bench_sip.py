"""SIP endpoint benchmark: call set-up time (INVITE → 200 OK) and CPU per call with media.

sipp reports response times in whole milliseconds. The answer goes INVITE → asyncio accept() →
PJSIP thread, whose command queue is read between ``libHandleEvents`` polls (10 ms), so set-up
times fall between ~0 and ~12 ms.

Runs a SipEndpoint in this process that answers everything, drives it with sipp on 127.0.0.1
and prints a table. ``python benchmarks/bench_sip.py [--calls 40]``.

``--flood 50 100 200 400``: INVITE floods (sipp ``uac``, 2 s calls, 3 s at each rate) straight at
one endpoint in its own process (``tests.sip.answerer``): what it answered and refused, whether
it survived, and when a normal call placed after the flood was answered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from telephony import LegEnded, SipEndpoint  # noqa: E402
from telephony.net import free_port  # noqa: E402
from telephony.settings import SipSettings  # noqa: E402
from tests.sip.sipp import run_sipp  # noqa: E402


async def answer_all(ep: SipEndpoint, stats: dict) -> None:
    """Accept every call and drain its inbox, as a call session would."""

    async def drain(leg) -> None:
        while not isinstance(await leg.inbox.get(), LegEnded):
            pass
        stats["frames"] += leg.frames_received
        stats["dropped"] += leg.frames_dropped
        stats["calls"] += 1

    tasks = set()
    while True:
        leg = await ep.accept()
        task = asyncio.create_task(drain(leg))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def rtts(workdir: Path) -> list[float]:
    out: list[float] = []
    for f in workdir.glob("*_rtt.csv"):
        with f.open() as fh:
            for row in csv.reader(fh, delimiter=";"):
                with contextlib.suppress(ValueError, IndexError):
                    out.append(float(row[1]))
    return out


async def main(calls: int, media_calls: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ep = SipEndpoint(SipSettings(), port=free_port(), name="bench")
        await ep.start()
        stats = {"frames": 0, "dropped": 0, "calls": 0}
        acceptor = asyncio.create_task(answer_all(ep, stats))
        try:
            # 1. set-up time, no media: sequential-ish calls, at most 4 up at once
            work = Path(tmp) / "setup"
            run = await run_sipp(ep.port, work, builtin="uac", calls=calls, limit=4, rate=10,
                                 duration_ms=100, timeout_s=calls / 5 + 20,
                                 extra=["-trace_rtt", "-rtt_freq", "1"])
            setup = np.array(rtts(work))
            rows.append(("setup INVITE→200 p50 (ms)", f"{np.percentile(setup, 50):.1f}" if len(setup) else "n/a"))
            rows.append(("setup INVITE→200 p95 (ms)", f"{np.percentile(setup, 95):.1f}" if len(setup) else "n/a"))
            rows.append(("setup INVITE→200 mean (ms)", f"{setup.mean():.1f}" if len(setup) else "n/a"))
            rows.append(("setup calls ok / run", f"{len(setup)} / {calls} (sipp rc {run.returncode})"))

            # 2. CPU per call with media: idle baseline, then N concurrent pcap calls (~9 s each)
            t0, c0 = time.monotonic(), cpu_s()
            await asyncio.sleep(3)
            idle = (cpu_s() - c0) / (time.monotonic() - t0)
            stats.update(frames=0, dropped=0, calls=0)
            t0, c0 = time.monotonic(), cpu_s()
            run = await run_sipp(ep.port, Path(tmp) / "media", builtin="uac_pcap", calls=media_calls,
                                 limit=media_calls, rate=20, timeout_s=40)
            wall = time.monotonic() - t0
            busy = (cpu_s() - c0) / wall
            for _ in range(50):  # let the last LegEnded reach the drain tasks
                if stats["calls"] >= media_calls:
                    break
                await asyncio.sleep(0.1)
            rows.append(("idle endpoint CPU (% of a core)", f"{100 * idle:.1f}"))
            rows.append((f"{media_calls} media calls CPU (% of a core)", f"{100 * busy:.1f}"))
            rows.append(("CPU per call with media (% of a core)", f"{100 * (busy - idle) / media_calls:.1f}"))
            rows.append(("frames received / dropped", f"{stats['frames']} / {stats['dropped']}"))
            rows.append(("media calls completed", f"{stats['calls']} (sipp rc {run.returncode})"))
        finally:
            acceptor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acceptor
            await ep.stop()
    width = max(len(r[0]) for r in rows)
    print(f"{'metric'.ljust(width)} | value")
    print(f"{'-' * width}-+-{'-' * 24}")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")


async def flood(rates: list[int]) -> None:
    """One fresh endpoint process per rate; a probe call once sipp (and its calls) finished."""
    print("| flood calls/s | calls | answered | 486 | 503 | other failures | endpoint survived "
          "| probe answered, s after the flood |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for rate in rates:
            port = free_port()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.sip.answerer", str(port), cwd=ROOT,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            assert proc.stdout is not None
            await asyncio.wait_for(proc.stdout.readline(), 20)
            calls = rate * 3
            run = await run_sipp(port, Path(tmp) / f"flood{rate}", builtin="uac", calls=calls, rate=rate,
                                 duration_ms=2000, timeout_s=30)
            end = time.monotonic()
            alive = proc.returncode is None
            probe_s: float | None = None
            while alive and probe_s is None and time.monotonic() - end < 10:
                probe = await run_sipp(port, Path(tmp) / f"probe{rate}", builtin="uac", duration_ms=100,
                                       timeout_s=5)
                if probe.returncode == 0:
                    probe_s = time.monotonic() - end
            answered = len(run.calls_with_status(200))
            busy, unavailable = len(run.calls_with_status(486)), len(run.calls_with_status(503))
            other = calls - answered - busy - unavailable
            if proc.returncode is None:
                proc.terminate()
            out, _ = await proc.communicate()
            lines = out.decode().splitlines()
            refused = json.loads(lines[-1])["refused"] if lines and lines[-1].startswith("{") else "-"
            probe = f"{probe_s:.2f}" if probe_s is not None else "never"
            print(f"| {rate} | {calls} | {answered} | {busy} | {unavailable} | {other} | "
                  f"{'yes' if alive else 'NO'} (refused by us: {refused}) | {probe} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--media-calls", type=int, default=4)
    ap.add_argument("--flood", type=int, nargs="*", help="INVITE flood rates (calls/s) instead")
    a = ap.parse_args()
    if a.flood:
        asyncio.run(flood(a.flood))
    else:
        asyncio.run(main(a.calls, a.media_calls))
