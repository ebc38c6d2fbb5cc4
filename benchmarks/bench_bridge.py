"""Bridged calls: callers press 0, wait in the agents queue, talk with registered agents.

``callcenter serve`` with its default settings (Kamailio front with its registrar, the default
whisper engine with both parties recognized, tone, dead air, recording, CRM store, MQTT to the
mosquitto it starts, workers from the capacity plan) and, per level, N agents' phones
(``telephony.test_agent``, digest-registered, each plays the agent side of
``audio_fixtures/sides/bridged_refund.agent.wav`` and records what it hears) and N callers
(``telephony.test_caller``: press 0, then the caller side, see :func:`caller_track`), all at
once once every phone is up (the phones' own start-up is kept out of the measured window).
Levels step up until the first with a failed call or a dropped frame (unless ``--no-stop``).
Reported per level, side by side:

- calls bridged / failed, and audio frames dropped in the workers;
- **queue-to-agent connect time**: from the caller entering the queue to the agent's answer
  (the ``connected`` queue event's ``wait_s`` plus ring time, from the stored events);
- **agent-answer-to-audio time**: from the agent's answer to the first frame in which the
  agent hears the caller (the caller talks without pauses until well after the answer: this is
  the bridge's set-up plus the audio path, measured on the agent phone's own recording);
- final-transcript latency p50/p95 (``speech.ended`` → ``transcript.final`` on the broker, both
  parties: ``live_capacity.EventClock``);
- worker CPU per bridged call-second (psutil over the worker processes) and memory per worker;
- the test phones' CPU per call-second (callers' and agents' pjsua2 processes, from the
  children's rusage, less what they spent starting): what a real deployment's phones would not
  take from the workers' cores;
- the baseline in the same run: the same callers with no agent (IVR and queue music only).

A worker holds 4 SIP calls (the pjsua2 wheel); a bridged call takes 2 of them, so a worker bridges
2 calls; the capacity plan counts both parties' recognition. The callers' and agents' phones are
pjsua2 processes on the same 2 cores (2 per bridged call, ~0.06 core per call between them), so
the figures are a lower bound; ``--phones sipp`` makes the same calls with one sipp for the
callers and one for the agents (~0.006 core per call: the service's own figures), at the cost
of the answer-to-audio time, which needs the agents' recordings.

    .venv/bin/python benchmarks/bench_bridge.py [--levels 2,4,8,12,16] [--workers auto|N] [--no-stop]
                                                [--phones-nice 19] [--caller conversation|continuous]
                                                [--spread 10] [--phones pjsua2|sipp]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.live_capacity import EventClock, sipp_failures, sipp_last_stats, worker_memory  # noqa: E402
from callcenter.serve import Service, start_service, stop_service  # noqa: E402
from callcenter.settings import load_settings  # noqa: E402
from summaries.store import CrmStore  # noqa: E402
from telephony.acd.directory import Directory, make_agent, save_directory  # noqa: E402
from telephony.net import free_port  # noqa: E402

SIDES = ROOT / "audio_fixtures" / "sides"
SIPP_DIR = Path(__file__).resolve().parent / "sipp"
CALLER_SIDE = SIDES / "bridged_refund.caller.wav"
AGENT_SIDE = SIDES / "bridged_refund.agent.wav"
CALL_S = 30.0
VOICE_DBFS = -40.0
"""A 20 ms frame louder than this is the caller's voice (the bridge carries silence before)."""


READY_S = 300.0
"""How long the workers may take to start (each loads the recognizer; on a busy machine, minutes)."""
READY_PHONES_S = 120.0
"""How long a level's phones may take to start (N Python processes on 2 cores)."""
STORE_WAIT_S = 90.0
"""How long to wait for the answered calls to reach the store (after-call work on a busy machine)."""
WORKERS = 0
"""``--workers``: 0 lets the capacity plan decide."""
LEAD_S = 10.0
"""``conversation`` callers: seconds of continuous voice before the recorded caller side."""
CALLER_MODE = "conversation"
"""``--caller``: ``conversation`` or ``continuous`` (see :func:`caller_track`)."""
SPREAD_S = 0.0
"""``--spread``: the level's calls are placed evenly over this many seconds (0: all at once).
At most ``CALL_S`` - 10 s, so that every call is up at once for a while."""
PHONES = "pjsua2"
"""``--phones``: ``pjsua2`` (``telephony.test_agent``/``test_caller`` processes) or ``sipp``."""
PHONES_NICE = 0
"""``--phones-nice``: the test phones' niceness. Above 0 they get only the CPU the service
leaves, roughly as if they ran on other machines (as real phones do); the phones' own audio may
then suffer, the service's figures are what is measured."""


def settings_for(tmp: Path, agents: int) -> Any:
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    save_directory(Directory(agents=tuple(make_agent(f"agent{i}", f"pw-{i}", skills=("agents",), rounds=1000)
                                          for i in range(agents))), data / "agents.yaml")
    base = free_port()
    return load_settings(overrides={
        "data_dir": str(data), "sip.port": free_port(), "sip.worker_base_port": base,
        "sip.workers": WORKERS, "sip.front": "kamailio", "mqtt.enabled": True, "mqtt.embedded_port": free_port(),
        "console.enabled": False, "acd.wrap_up_s": 0.0, "acd.registrar_poll_s": 0.5,
    }, environ={})


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(values, q))


async def _start(*args: str) -> asyncio.subprocess.Process:
    """A pjsua2 phone (``python -m ...``) whose JSON result is read from its output."""
    return await _spawn(sys.executable, *args, cwd=ROOT, output=asyncio.subprocess.PIPE)


async def _spawn(*cmd: str, cwd: Path, output: int) -> asyncio.subprocess.Process:
    """A test phone process, at ``PHONES_NICE`` when set."""
    nice = ("nice", "-n", str(PHONES_NICE)) if PHONES_NICE else ()
    proc = await asyncio.create_subprocess_exec(*nice, *cmd, stdout=output, stderr=output,
                                                stdin=asyncio.subprocess.DEVNULL, cwd=str(cwd),
                                                start_new_session=bool(PHONES_NICE))
    if PHONES_NICE:
        # With the kernel's autogroups (sched_autogroup_enabled), niceness only ranks processes
        # of one session, and every worker runs in a session of its own: the phone gets its own
        # session, and that session's group the niceness.
        with contextlib.suppress(OSError):
            Path(f"/proc/{proc.pid}/autogroup").write_text(str(PHONES_NICE))  # noqa: ASYNC240 - procfs, instant
    return proc


async def _result(proc: asyncio.subprocess.Process, timeout_s: float = 120) -> dict[str, Any]:
    """The JSON line a phone prints when it is done."""
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:  # an agent whose caller was refused (beyond capacity) waits in vain
        proc.kill()
        await proc.wait()
        return {"error": "timeout"}
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    if not lines:
        return {"error": err.decode()[-500:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


async def _wait_files(paths: list[Path], timeout_s: float) -> int:
    """Wait until every path exists (phones that are up); returns how many do."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not all(p.exists() for p in paths):  # noqa: ASYNC110 - other processes
        await asyncio.sleep(0.1)
    return sum(p.exists() for p in paths)


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds the running processes ``pids`` have used so far (gone ones count 0)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def caller_track(tmp: Path, mode: str) -> Path:
    """What each caller plays from pressing 0. ``continuous``: the caller side with its pauses
    under -40 dBFS cut out, looped to the call's length (both parties talk the whole call: a
    stress test, ~1.5 s of speech to recognize per call-second). ``conversation``: that
    continuous voice for the first ``LEAD_S`` (the queue wait and the agent's answer, so the
    answer-to-audio time is measured on a caller who is talking), then the caller side as
    recorded, pauses included (19 % voiced; with the agent's 46 %, ~0.9 s of speech per
    call-second, what the capacity plan assumes for a bridged call)."""
    audio, rate = sf.read(str(CALLER_SIDE), dtype="int16")
    frame = rate // 50
    n = len(audio) // frame
    frames = audio[: n * frame].reshape(n, frame)
    dbfs = 20 * np.log10(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) / 32768 + 1e-12)
    voiced = frames[dbfs > VOICE_DBFS].reshape(-1)
    total = int(CALL_S * rate)
    if mode == "continuous":
        track = np.tile(voiced, int(np.ceil(total / max(1, len(voiced)))))
    else:
        lead = np.tile(voiced, int(np.ceil(LEAD_S * rate / max(1, len(voiced)))))[: int(LEAD_S * rate)]
        rest = np.tile(audio, int(np.ceil(total / max(1, len(audio)))))
        track = np.concatenate([lead, rest])
    out = tmp / f"caller-{mode}.wav"
    sf.write(str(out), track[:total], rate, subtype="PCM_16")
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


def _children_cpu() -> float:
    """CPU seconds of this process's children that have exited and been waited for: the test
    phones of the levels so far (the workers, Kamailio and mosquitto are still running)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _worker_cpu(svc: Service) -> float:
    return _cpu_of([stats["pid"] for stats in svc.worker_stats() if "pid" in stats])


async def run_level(svc: Service, n: int, tmp: Path, *, with_agents: bool) -> dict[str, Any]:
    mqtt = svc.settings.mqtt
    clock = EventClock("127.0.0.1", mqtt.embedded_port, mqtt.topic_prefix)
    await clock.start()
    try:
        res = await _level(svc, n, tmp, with_agents=with_agents)
        await asyncio.sleep(1.0)
    finally:
        await clock.stop()
    ev = clock.window(0)
    mem = [m for m in worker_memory([p.pid for p in svc.workers]) if m]
    res.update(workers=len(svc.worker_ports), utterances=ev.utterances, finals=ev.finals, final_p50=ev.p50,
               final_p95=ev.p95, rss_mb=float(np.median([m["rss_mb"] for m in mem])) if mem else float("nan"),
               uss_mb=float(np.median([m["uss_mb"] for m in mem])) if mem else float("nan"))
    return res


async def _level(svc: Service, n: int, tmp: Path, *, with_agents: bool) -> dict[str, Any]:
    cpu0 = _worker_cpu(svc)
    run = await (_sipp_phones if PHONES == "sipp" else _pjsua2_phones)(svc, n, tmp, with_agents=with_agents)
    await asyncio.sleep(3)
    cpu = _worker_cpu(svc) - cpu0
    store = CrmStore(svc.settings.store_url)
    store.start()
    connect: list[float] = []
    bridged = 0
    try:
        deadline = time.monotonic() + STORE_WAIT_S  # after-call work (summary, QA) stores the call later
        call_ids = run.call_ids
        if call_ids is None:  # sipp does not know the service's call ids: every call of this service
            while store.count_calls() < run.answered and time.monotonic() < deadline:  # noqa: ASYNC110 - other processes
                await asyncio.sleep(1.0)
            call_ids = [row.call_id for row in store.list_calls(limit=10 * n)]
        for call_id in call_ids:
            detail = store.get_call(call_id)
            while detail is None and time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                detail = store.get_call(call_id)
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
    dropped = sum(s.get("frames_dropped", 0) for s in svc.worker_stats())
    return {"n": n, "agents": with_agents, "answered": run.answered, "failed": n - run.answered,
            "failed_how": run.failed_how, "bridged": bridged, "dropped_frames": dropped,
            "connect_p50": percentile(connect, 50), "connect_p95": percentile(connect, 95),
            "answer_to_audio_p50": percentile(run.to_audio, 50), "answer_to_audio_p95": percentile(run.to_audio, 95),
            "cpu_per_call_s": cpu / max(1, run.answered) / CALL_S,
            "phones_cpu_per_call_s": run.phones_cpu / max(1, n) / CALL_S}


@dataclass
class PhonesRun:
    """What a level's phones report."""

    answered: int
    call_ids: list[str] | None
    """The service's ids of the answered calls (None: the phones cannot tell)."""
    to_audio: list[float]
    """Agent answer → first frame of the caller's voice the agent hears, per call (s)."""
    phones_cpu: float
    """CPU seconds the phones spent from the go (their start-up excluded)."""
    failed_how: dict[str, str] = field(default_factory=dict)


async def _pjsua2_phones(svc: Service, n: int, tmp: Path, *, with_agents: bool) -> PhonesRun:
    front = f"{svc.settings.sip.host}:{svc.settings.sip.port}"
    signals = tmp / f"signals-n{n}"
    signals.mkdir(parents=True, exist_ok=True)
    agents: list[asyncio.subprocess.Process] = []
    if with_agents:
        agents = [await _start(
            "-m", "telephony.test_agent", f"sip:agent{i}@{front}", "--password", f"pw-{i}", "--play", str(AGENT_SIDE),
            "--record", str(tmp / f"agent{i}-n{n}.wav"), "--wait-call", "90",
            "--ready-file", str(signals / f"agent{i}"))
            for i in range(n)]
        await _wait_files([signals / f"agent{i}" for i in range(n)], READY_PHONES_S)  # registered
        await asyncio.sleep(1.0)  # the ACD reads the registrar every 0.5 s
    # The callers' phones start first and dial together on the go file: the start-up of N Python
    # processes (imports, pjsua2) would otherwise load the cores exactly when the calls begin.
    go = signals / "go"
    track = caller_track(tmp, CALLER_MODE)
    callers = [await _start("-m", "telephony.test_caller", svc.sip_uri, "--dtmf", "0", "--dtmf-first",
                            "--play", str(track), "--hangup-after", str(CALL_S), "--json",
                            "--ready-file", str(signals / f"caller{i}"), "--go-file", str(go),
                            "--go-delay", f"{i * SPREAD_S / n:.3f}")
               for i in range(n)]
    await _wait_files([signals / f"caller{i}" for i in range(n)], READY_PHONES_S)
    # the phones' start-up so far: running ones by psutil, exited ones in the children's rusage
    phones0 = _children_cpu() + _cpu_of([p.pid for p in [*agents, *callers]])
    go.touch()
    results = await asyncio.gather(*(_result(p) for p in callers))
    agent_results = await asyncio.gather(*(_result(p) for p in agents))
    phones = _children_cpu() - phones0  # the phones of this level, from the go (start-up excluded)
    answered = [r for r in results if r.get("answered")]
    to_audio = []
    for a in agent_results:
        for call in a.get("calls", []):
            if call.get("answered") and call.get("recording_path"):
                t = _first_voice_s(call["recording_path"])
                if t is not None:
                    to_audio.append(t)
    return PhonesRun(len(answered), [r["call_id"] for r in answered], to_audio, phones)


async def _sipp(workdir: Path, *args: str, timeout_s: float) -> asyncio.subprocess.Process:
    return await _spawn("sipp", *args, "-i", "127.0.0.1", "-nostdin", "-timeout", f"{int(timeout_s)}s",
                        "-timeout_error", "-trace_err", cwd=workdir, output=asyncio.subprocess.DEVNULL)


async def _sipp_phones(svc: Service, n: int, tmp: Path, *, with_agents: bool) -> PhonesRun:
    """The same calls with sipp as every phone (C, a few ms of CPU per call-second, where a
    pjsua2 Python phone takes ~0.03 core): a short sipp per agent registers it with its password
    (``bridge_register.xml``), one sipp answers for them all (``bridge_agent.xml``: rings,
    answers, plays the agent side); one places the calls (``bridge_caller.xml``: RFC 4733 "0" half a
    second after the answer, then the caller track, BYE after ``CALL_S``). The agents' audio
    is not recorded, so the answer-to-audio time is not measured."""
    from tests.sip.rtp_tools import wav_to_pcap

    front = str(svc.settings.sip.port)
    work = tmp / f"sipp-n{n}"
    (work / "pcap").mkdir(parents=True, exist_ok=True)
    wav_to_pcap(caller_track(tmp, CALLER_MODE), work / "pcap" / "caller.pcap", lead_s=0.5, digits="0")
    wav_to_pcap(AGENT_SIDE, work / "pcap" / "agent.pcap", max_s=CALL_S)
    agents: asyncio.subprocess.Process | None = None
    timeout_s = CALL_S + SPREAD_S + 120
    if with_agents:
        contact_port = free_port()
        agents = await _sipp(work, "-sf", str(SIPP_DIR / "bridge_agent.xml"), "-p", str(contact_port),
                             "-mi", "127.0.0.1", "-mp", str(free_port()), "-m", str(n),
                             "-error_file", "agents_errors.log", timeout_s=timeout_s)
        registers = [await _sipp(work, f"127.0.0.1:{front}", "-sf", str(SIPP_DIR / "bridge_register.xml"),
                                 "-s", f"agent{i}", "-au", f"agent{i}", "-ap", f"pw-{i}",
                                 "-key", "contact", f"127.0.0.1:{contact_port}", "-p", str(free_port()), "-m", "1",
                                 "-error_file", f"register{i}_errors.log", timeout_s=30)
                     for i in range(n)]
        if any([await p.wait() for p in registers]):
            logs = "".join(p.read_text()[-500:] for p in work.glob("register*_errors.log"))
            raise RuntimeError(f"sipp could not register the {n} agents: {logs}")
        await asyncio.sleep(1.5)  # the ACD reads the registrar every 0.5 s
    phones0 = _children_cpu()
    rate = ["-r", str(n), "-rp", str(max(1, int(SPREAD_S * 1000)))] if SPREAD_S else ["-r", str(max(n, 20))]
    callers = await _sipp(work, f"127.0.0.1:{front}", "-sf", str(SIPP_DIR / "bridge_caller.xml"), "-s", "ivr",
                          "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", str(free_port()),
                          "-m", str(n), "-l", str(n), *rate, "-d", str(int(CALL_S * 1000)),
                          "-trace_stat", "-stf", str(work / "stat.csv"), "-fd", "1",
                          "-error_file", "callers_errors.log", timeout_s=timeout_s)
    await callers.wait()
    if agents is not None:  # it ends after its n calls; beyond capacity it waits in vain
        try:
            await asyncio.wait_for(agents.wait(), 10)
        except TimeoutError:
            agents.kill()
            await agents.wait()
    last = sipp_last_stats(work / "stat.csv")
    return PhonesRun(int(last.get("SuccessfulCall(C)", 0) or 0), None, [], _children_cpu() - phones0,
                     sipp_failures(last))


def _bad(r: dict[str, Any]) -> bool:
    return bool(r["failed"] or r["dropped_frames"] or (r["agents"] and r["bridged"] < r["n"]))


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", default="2,4,8,12,16")
    ap.add_argument("--workers", default="auto", help="endpoint workers, or auto (the capacity plan)")
    ap.add_argument("--no-stop", action="store_true", help="run every level, not only until the first failure")
    ap.add_argument("--phones", choices=("pjsua2", "sipp"), default="pjsua2",
                    help="pjsua2: a Python phone process per caller and agent; sipp: one sipp for the "
                         "callers and one for the agents (the load generator takes almost no CPU)")
    ap.add_argument("--phones-nice", type=int, default=0,
                    help="run the test phones at this niceness (e.g. 19: they take only what the service leaves)")
    ap.add_argument("--caller", choices=("conversation", "continuous"), default="conversation",
                    help="conversation: the caller talks as recorded after a 10 s lead; continuous: "
                         "without pauses, over the agent, the whole call (a stress test)")
    ap.add_argument("--spread", type=float, default=0.0,
                    help="place a level's calls evenly over this many seconds (0: all at once; at most 20)")
    args = ap.parse_args()
    global WORKERS, PHONES, PHONES_NICE, CALLER_MODE, SPREAD_S
    PHONES = args.phones
    CALLER_MODE = args.caller
    SPREAD_S = max(0.0, min(args.spread, CALL_S - 10.0))
    WORKERS = 0 if args.workers == "auto" else int(args.workers)
    PHONES_NICE = args.phones_nice
    levels = [int(x) for x in args.levels.split(",")]
    load0 = os.getloadavg()
    rows = []
    for n in levels:
        for with_agents in (False, True):
            with tempfile.TemporaryDirectory() as d:
                tmp = Path(d)
                svc = await start_service(settings_for(tmp, n if with_agents else 0), log_dir=tmp / "logs",
                                          ready_timeout=READY_S)
                try:
                    rows.append(await run_level(svc, n, tmp, with_agents=with_agents))
                finally:
                    await stop_service(svc)
            print(json.dumps(rows[-1]), flush=True)
        if not args.no_stop and _bad(rows[-1]):
            break
    load1 = os.getloadavg()
    print()
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} ({os.cpu_count()} cores); "
          f"test phones: {PHONES}, at niceness {PHONES_NICE}; callers {CALLER_MODE}, placed "
          + (f"over {SPREAD_S:g} s" if SPREAD_S else "all at once"))
    print("| callers | agents | workers | answered | failed | bridged | dropped frames | queue→agent p50/p95 (s) "
          "| answer→audio p50/p95 (s) | utterances / finals | final latency p50/p95 (s) "
          "| worker CPU per call-second | test phones' CPU per call-second | RSS / USS per worker (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {'yes' if r['agents'] else 'none (baseline)'} | {r['workers']} | {r['answered']} "
              f"| {r['failed']} | {r['bridged']} | {r['dropped_frames']} | {r['connect_p50']:.2f} / {r['connect_p95']:.2f} "
              f"| {r['answer_to_audio_p50']:.2f} / {r['answer_to_audio_p95']:.2f} | {r['utterances']} / {r['finals']} "
              f"| {r['final_p50']:.2f} / {r['final_p95']:.2f} | {r['cpu_per_call_s']:.3f} "
              f"| {r['phones_cpu_per_call_s']:.3f} "
              f"| {r['rss_mb']:.0f} / {r['uss_mb']:.0f} |")
    clean = [r["n"] for r in rows if r["agents"] and not _bad(r)]
    print(f"\nmost concurrent bridged calls with 0 failed, 0 dropped frames: {max(clean) if clean else 0}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
