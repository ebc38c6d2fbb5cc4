"""Bridged calls on 2 cores: callers press 0, wait in the agents queue, talk with registered agents.

``callcenter serve`` (Kamailio front with its registrar, 2 workers, the default whisper engine,
CRM store) and, per level, N agents' phones (``telephony.test_agent``, digest-registered, each
plays the agent side of ``audio_fixtures/sides/bridged_refund.agent.wav`` and records what it
hears) and N callers (``telephony.test_caller``: press 0, then the caller side), all at once.
Reported per level, side by side:

- calls bridged / failed, and audio frames dropped in the workers;
- **queue-to-agent connect time**: from the caller entering the queue to the agent's answer
  (the ``connected`` queue event's ``wait_s`` plus ring time, from the stored events);
- **agent-answer-to-audio time**: from the agent's answer to the first frame in which the
  agent hears the caller (the caller side is played without its leading silence and looped,
  so the caller is never quiet: this is the bridge's set-up plus the audio path, measured on
  the agent phone's own recording);
- worker CPU per bridged call-second (psutil over the worker processes);
- the baseline in the same run: the same callers with no agent (IVR and queue music only).

A worker holds 4 SIP calls (the pjsua2 wheel); a bridged call takes 2 of them, so 2 workers bridge
at most 4 calls at a time; the level above shows what callers beyond that get.

    .venv/bin/python benchmarks/bench_bridge.py [--levels 1,2,4,6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callcenter.serve import Service, start_service, stop_service  # noqa: E402
from callcenter.settings import load_settings  # noqa: E402
from summaries.store import CrmStore  # noqa: E402
from telephony.acd.directory import Directory, make_agent, save_directory  # noqa: E402
from telephony.net import free_port  # noqa: E402

SIDES = ROOT / "audio_fixtures" / "sides"
CALLER_SIDE = SIDES / "bridged_refund.caller.wav"
AGENT_SIDE = SIDES / "bridged_refund.agent.wav"
CALL_S = 30.0
VOICE_DBFS = -40.0
"""A 20 ms frame louder than this is the caller's voice (the bridge carries silence before)."""


def settings_for(tmp: Path, agents: int) -> Any:
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    save_directory(Directory(agents=tuple(make_agent(f"agent{i}", f"pw-{i}", skills=("agents",), rounds=1000)
                                          for i in range(agents))), data / "agents.yaml")
    base = free_port()
    return load_settings(overrides={
        "data_dir": str(data), "sip.port": free_port(), "sip.worker_base_port": base,
        "sip.workers": 2, "sip.front": "kamailio", "mqtt.enabled": False, "console.enabled": False,
        "acd.wrap_up_s": 0.0, "acd.registrar_poll_s": 0.5,
    }, environ={})


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(values, q))


async def _run(*args: str, timeout_s: float = 120) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(sys.executable, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
                                                cwd=str(ROOT))
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    if not lines:
        return {"error": err.decode()[-500:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def continuous_caller(tmp: Path) -> Path:
    """The caller side with its pauses under -40 dBFS cut out, looped to the call's length."""
    audio, rate = sf.read(str(CALLER_SIDE), dtype="int16")
    frame = rate // 50
    n = len(audio) // frame
    frames = audio[: n * frame].reshape(n, frame)
    dbfs = 20 * np.log10(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) / 32768 + 1e-12)
    voiced = frames[dbfs > VOICE_DBFS].reshape(-1)
    reps = int(np.ceil(CALL_S * rate / max(1, len(voiced))))
    out = tmp / "caller-continuous.wav"
    sf.write(str(out), np.tile(voiced, reps)[: int(CALL_S * rate)], rate, subtype="PCM_16")
    return out


def _first_voice_s(wav: str) -> float | None:
    audio, rate = sf.read(wav, dtype="int16")
    frame = rate // 50
    n = len(audio) // frame
    if not n:
        return None
    x = audio[: n * frame].reshape(n, frame).astype(np.float64)
    dbfs = 20 * np.log10(np.sqrt(np.mean(x**2, axis=1)) / 32768 + 1e-12)
    loud = np.nonzero(dbfs > VOICE_DBFS)[0]
    return float(loud[0]) * 0.02 if len(loud) else None


def _worker_cpu(svc: Service) -> float:
    total = 0.0
    for stats in svc.worker_stats():
        try:
            t = psutil.Process(stats["pid"]).cpu_times()
            total += t.user + t.system
        except (psutil.Error, KeyError):
            pass
    return total


async def run_level(svc: Service, n: int, tmp: Path, *, with_agents: bool) -> dict[str, Any]:
    front = f"{svc.settings.sip.host}:{svc.settings.sip.port}"
    agents = []
    if with_agents:
        agents = [asyncio.create_task(_run(
            "-m", "telephony.test_agent", f"sip:agent{i}@{front}", "--password", f"pw-{i}", "--play", str(AGENT_SIDE),
            "--record", str(tmp / f"agent{i}-n{n}.wav"), "--wait-call", "90"))
            for i in range(n)]
        await asyncio.sleep(3)  # registered and ready
    cpu0 = _worker_cpu(svc)
    callers = [_run("-m", "telephony.test_caller", svc.sip_uri, "--dtmf", "0", "--dtmf-first",
                    "--play", str(continuous_caller(tmp)), "--hangup-after", str(CALL_S), "--json") for _ in range(n)]
    results = await asyncio.gather(*callers)
    agent_results = await asyncio.gather(*agents)
    await asyncio.sleep(3)
    cpu = _worker_cpu(svc) - cpu0
    answered = [r for r in results if r.get("answered")]
    store = CrmStore(svc.settings.store_url)
    store.start()
    connect: list[float] = []
    bridged = 0
    try:
        for r in answered:
            detail = store.get_call(r["call_id"])
            if detail is None:
                continue
            ev = detail.events
            conn = [e for e in ev if e["type"] == "queue.update" and e["action"] == "connected"]
            ring = [e for e in ev if e["type"] == "party.joined"]
            if conn and ring:
                bridged += 1
                connect.append(conn[0]["wait_s"] + ring[0].get("ring_s", 0.0))
    finally:
        store.stop()
    to_audio = []
    for a in agent_results:
        for call in a.get("calls", []):
            if call.get("answered") and call.get("recording_path"):
                t = _first_voice_s(call["recording_path"])
                if t is not None:
                    to_audio.append(t)
    dropped = sum(s.get("frames_dropped", 0) for s in svc.worker_stats())
    return {"n": n, "agents": with_agents, "answered": len(answered), "failed": n - len(answered),
            "bridged": bridged, "dropped_frames": dropped,
            "connect_p50": percentile(connect, 50), "connect_p95": percentile(connect, 95),
            "answer_to_audio_p50": percentile(to_audio, 50), "answer_to_audio_p95": percentile(to_audio, 95),
            "cpu_per_call_s": cpu / max(1, len(answered)) / CALL_S}


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", default="1,2,4,6")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    rows = []
    for n in levels:
        for with_agents in (False, True):
            with tempfile.TemporaryDirectory() as d:
                tmp = Path(d)
                svc = await start_service(settings_for(tmp, n if with_agents else 0), log_dir=tmp / "logs")
                try:
                    rows.append(await run_level(svc, n, tmp, with_agents=with_agents))
                finally:
                    await stop_service(svc)
            print(json.dumps(rows[-1]), flush=True)
    print()
    print("| callers | agents | answered | failed | bridged | dropped frames | queue→agent p50/p95 (s) "
          "| answer→audio p50/p95 (s) | worker CPU per call-second |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {'yes' if r['agents'] else 'none (baseline)'} | {r['answered']} | {r['failed']} "
              f"| {r['bridged']} | {r['dropped_frames']} | {r['connect_p50']:.2f} / {r['connect_p95']:.2f} "
              f"| {r['answer_to_audio_p50']:.2f} / {r['answer_to_audio_p95']:.2f} | {r['cpu_per_call_s']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
