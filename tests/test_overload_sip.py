"""A worker under synthetic load, with real SIP calls (pjsua2 test callers in subprocesses).

The real worker (``run_worker``: endpoint, IVR, pipeline, CRM store) runs in this process with a
recognizer whose decodes wait until the test lets them go, so its decode backlog grows on
demand: the worker must refuse new calls (503 with Retry-After), then stop live partials, then
tone prosody, in that order, show it in its stats (what ``/api/health`` serves), keep every
frame of the call in progress, and recover step by step once the recognizer catches up.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from callcenter.settings import load_settings
from callcenter.worker import read_worker_stats, run_worker
from callcenter.worker_load import load_health
from telephony.kamailio import _udp_options_ok
from telephony.net import free_port
from tests.conftest import have
from tests.test_capacity import StallEngine

pytestmark = [pytest.mark.slow, pytest.mark.sip]

HOST = "127.0.0.1"
DEGRADE = ["normal -> refusing", "refusing -> no_partials", "no_partials -> no_prosody"]
RECOVER = ["no_prosody -> no_partials", "no_partials -> refusing", "refusing -> normal"]


async def wait_for(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def caller(port: int, *args: str) -> Any:
    return asyncio.create_subprocess_exec(
        sys.executable, "-m", "telephony.test_caller", f"sip:ivr@{HOST}:{port}", "--json", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def call_result(proc: Any, timeout_s: float = 60.0) -> dict[str, Any]:
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    assert lines, err.decode()[-2000:]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def two_utterances(tmp_path: Path, first: Path, second: Path) -> Path:
    """One WAV: 1 s silence, ``first``, 2 s pause, ``second``, 1 s silence. The second final
    queues behind the first, which never finishes: the backlog grows."""
    a, rate = sf.read(str(first), dtype="int16")
    b, _ = sf.read(str(second), dtype="int16")
    gap = np.zeros(rate, np.int16)
    out = tmp_path / "two_utterances.wav"
    sf.write(str(out), np.concatenate([gap, a, gap, gap, b, gap]), rate, subtype="PCM_16")
    return out


def load_of(data_dir: Path) -> dict[str, Any]:
    stats = read_worker_stats(data_dir)
    return (stats[0].get("load") or {}) if stats else {}


async def test_overloaded_worker_refuses_new_calls_sheds_in_order_and_recovers(tmp_path: Path, tts: Any) -> None:
    if not have("espeak-ng"):
        pytest.skip("espeak-ng renders the caller's speech")
    port = free_port(HOST)
    settings = load_settings(overrides={
        "data_dir": str(tmp_path), "asr.engine": "none", "mqtt.enabled": False, "sip.record": False,
        "overload.interval_s": 0.2, "overload.refuse_behind_s": 1.0, "overload.partials_off_behind_s": 2.0,
        "overload.prosody_off_behind_s": 3.0, "overload.sustain_samples": 1, "overload.recover_hold_s": 1.0,
        "overload.report_every_s": 0.5,
    }, environ={})
    engine = StallEngine()
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, port=port, index=0, stop=stop, prepare=lambda _: engine))
    speech = two_utterances(tmp_path, tts("I would like to check the balance of my account, please."),
                            tts("And when is my next bill due?"))
    first = None
    try:
        await wait_for(lambda: worker.done() or _udp_options_ok(HOST, port), 60, "the worker to answer OPTIONS")
        assert not worker.done()
        # A caller speaks: the recognizer takes the utterance and does not come back.
        first = await caller(port, "--play", str(speech), "--hangup-after", "90")
        await wait_for(lambda: load_of(tmp_path).get("state") == "no_prosody", 90, "the worker to shed prosody")
        load = load_of(tmp_path)
        assert load["history"][:3] == DEGRADE, load
        assert not load["admitting"] and not load["partials"] and not load["prosody"]
        assert load["behind_s"] >= 3.0

        # A new call meanwhile: refused with 503 (the front would send it to another worker).
        refused = await call_result(await caller(port, "--hangup-after", "2"))
        assert (refused["answered"], refused["status"]) == (False, 503), refused
        await wait_for(lambda: read_worker_stats(tmp_path)[0].get("refused", {}).get("503"), 30, "the 503 counted")

        # What /api/health shows of this worker.
        svc = SimpleNamespace(worker_stats=lambda: read_worker_stats(tmp_path), capacity=None, worker_ports=[port],
                              workers=[SimpleNamespace(pid=os.getpid(), returncode=None)])
        health = load_health(svc)  # type: ignore[arg-type]
        shown = health["load"][0]
        assert (shown["state"], shown["admitting"], shown["prosody"]) == ("no_prosody", False, False), shown
        assert shown["refused"].get("503", 0) >= 1 and shown["rss_mb"] > 0 and health["workers_admitting"] == 0
        assert shown["active_calls"] == 1

        # The recognizer catches up: one level back per calm hold, new calls answered again.
        engine.release.set()
        await wait_for(lambda: load_of(tmp_path).get("state") == "normal", 90, "the worker to recover")
        assert load_of(tmp_path)["history"][-3:] == RECOVER
        again = await call_result(await caller(port, "--hangup-after", "2"))
        assert again["answered"] and again["status"] == 200, again
        # where the recognizer's time went: the finals are counted, and the seconds the stalled
        # decode held the pool (the first partial re-decode of the turn, or its final)

        def decode_shown() -> dict[str, Any]:
            shown: dict[str, Any] = load_health(svc)["load"][0]["decode"]  # type: ignore[arg-type]
            return shown

        await wait_for(lambda: decode_shown().get("final_decodes", 0) >= 1, 30, "the final's decode in health")
        spent = decode_shown()
        assert spent["final_busy_s"] + spent["partial_busy_s"] >= 1.0, spent
    finally:
        engine.release.set()
        stop.set()
        await asyncio.wait_for(worker, 90)  # its endpoint hangs up the first call
    assert first is not None
    first_result = await call_result(first)
    assert first_result["answered"] and first_result["hangup_by"] == "remote", first_result
    stats = read_worker_stats(tmp_path)[0]
    # the call in progress through all of it kept every frame
    assert stats["frames_dropped"] == 0 and stats["calls_failed"] == 0 and stats["calls_total"] == 2, stats
