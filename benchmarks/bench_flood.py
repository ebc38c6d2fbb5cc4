"""INVITE floods against the whole service: what the Kamailio front absorbs, and how soon a normal
call is answered once a flood stops.

``callcenter serve`` (``start_service``: 2 workers behind the front, pocketsphinx, CRM store) is
flooded by sipp's stock ``uac`` (2 s calls, no media) at increasing rates for 3 s each, all from
127.0.0.1, the address the probe calls come from too (the worst case: a carrier trunk brings
every call from one address). Reported per rate: calls answered, refused with 503 by reason
(per-source limit, total rate limit, every worker busy), any other failure, worker crashes
(restarts seen by the supervisor) and the time until a probe call (sipp, one 0.2 s call, tried
again 0.1 s after each refusal) placed then is answered, counted from the flood's last INVITE and from the end of its last call.
Baseline in the same run: a probe call on the idle service (sipp start to its BYE answered).

    .venv/bin/python benchmarks/bench_flood.py [--rates 25,50,100,200,400,800] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callcenter.serve import Service, start_service, stop_service  # noqa: E402
from callcenter.settings import load_settings  # noqa: E402
from telephony.kamailio import kamailio_binary  # noqa: E402
from telephony.net import free_port  # noqa: E402

REASONS = {"source": "Too Many Calls From This Source", "rate": "Too Many New Calls", "busy": "All Workers Busy"}


def settings_for(tmp: Path):
    import socket

    def free(port: int) -> bool:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    return False
        return True

    base = free_port()
    while not (free(base) and free(base + 1)):
        base = free_port()
    return load_settings(overrides={
        "data_dir": str(tmp / "data"), "sip.port": free_port(), "sip.worker_base_port": base,
        "sip.workers": 2, "sip.front": "kamailio", "mqtt.enabled": False, "console.enabled": False,
        "asr.engine": "pocketsphinx",
    }, environ={})


def _prepare(workdir: Path) -> tuple[Path, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    stat, err = workdir / "stat.csv", workdir / "err.log"
    for f in (stat, err):
        f.unlink(missing_ok=True)
    return stat, err


def _counts(stat: Path, err: Path) -> dict[str, int]:
    lines = [ln for ln in stat.read_text().splitlines() if ln.strip()] if stat.exists() else []
    row = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False)) if lines else {}
    errors = err.read_text(errors="replace") if err.exists() else ""
    out = {"answered": int(row.get("SuccessfulCall(C)", 0)), "failed": int(row.get("FailedCall(C)", 0))}
    for key, phrase in REASONS.items():
        out[key] = len(re.findall(rf"received 'SIP/2\.0 503 {phrase}", errors))
    out["other"] = out["failed"] - sum(out[k] for k in REASONS)
    return out


async def sipp(port: int, workdir: Path, *, calls: int, rate: float, duration_ms: int,
               timeout_s: float = 60) -> dict[str, int]:
    """One sipp ``uac`` run; its counts: answered, failed, and 503s by reason."""
    stat, err = _prepare(workdir)
    proc = await asyncio.create_subprocess_exec(
        "sipp", "-sn", "uac", f"127.0.0.1:{port}", "-i", "127.0.0.1", "-p", str(free_port()),
        "-m", str(calls), "-r", str(rate), "-d", str(duration_ms), "-nostdin", "-timeout", f"{int(timeout_s)}s",
        "-timeout_error", "-trace_stat", "-stf", str(stat), "-fd", "1", "-trace_err", "-error_file", str(err),
        cwd=workdir, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.wait_for(proc.wait(), timeout_s + 15)
    return _counts(stat, err)


async def probe_until_answered(port: int, workdir: Path, give_up_s: float = 30) -> float:
    """Seconds from now to the first probe call that was answered (one tried every 0.1 s)."""
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < give_up_s:
        tried = time.monotonic()
        res = await sipp(port, workdir / f"probe{n}", calls=1, rate=1, duration_ms=200, timeout_s=10)
        n += 1
        if res["answered"] == 1:
            return tried - start
        await asyncio.sleep(0.1)
    return float("inf")


def restarts(svc: Service) -> int:
    return sum(w["restarts"] for w in svc.health()["workers"])


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="25,50,100,200,400,800")
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    if shutil.which("sipp") is None or kamailio_binary() is None:
        sys.exit("sipp and kamailio are needed")
    tmp = Path(tempfile.mkdtemp(prefix="bench_flood_"))
    svc = await start_service(settings_for(tmp), log_dir=tmp / "logs")
    port = svc.settings.sip.port
    rows = []
    try:
        t0 = time.monotonic()
        idle = await sipp(port, tmp / "idle", calls=1, rate=1, duration_ms=200)
        baseline = time.monotonic() - t0
        assert idle["answered"] == 1, idle
        for rate in (int(r) for r in args.rates.split(",")):
            await asyncio.sleep(4)  # let the previous calls end
            before = restarts(svc)
            calls = int(rate * args.seconds)
            start = time.monotonic()
            res = await sipp(port, tmp / f"flood{rate}", calls=calls, rate=rate, duration_ms=2000)
            ended = time.monotonic()
            last_invite = start + args.seconds
            after = await probe_until_answered(port, tmp / f"after{rate}")
            crashes = restarts(svc) - before + sum(p.returncode is not None for p in svc.workers)
            rows.append((rate, calls, res, crashes, ended - last_invite + after, after))
    finally:
        await stop_service(svc)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nbaseline: a probe call on the idle service took {baseline:.2f} s (sipp start to BYE done)\n")
    print("| flood calls/s | calls | answered | 503 per source | 503 total rate | 503 workers busy | other "
          "failures | worker crashes | next call answered, s after last INVITE / after flood's last call |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rate, calls, res, crashes, since_invite, since_end in rows:
        print(f"| {rate} | {calls} | {res['answered']} | {res['source']} | {res['rate']} | {res['busy']} | "
              f"{res['other']} | {crashes} | {since_invite:.2f} / {since_end:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
