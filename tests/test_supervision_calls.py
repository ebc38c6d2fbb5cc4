"""Issue 12's supervisor part, proven by what each SIP phone hears.

Real on 127.0.0.1: ``callcenter serve`` (Kamailio front with its registrar, one worker, mosquitto,
the console), a caller (``telephony.test_caller``) playing a 440 Hz tone, alice's registered
phone playing 1000 Hz, and sue's registered supervisor phone playing 2200 Hz; each phone records
what it hears. Sue asks from the console (its REST API, with her login) to listen, whisper and
barge, switches back to listen with key 1 on her phone, and leaves; early on her phone holds
and resumes (new media: her links must follow). The worker's recording of
the call has sue in what the caller heard (channel 1) only while she barged, never in the
caller's channel. Per mode window, each
recording's share of power at each tone says who hears whom: distinct tones make the
correlation unambiguous. Failures (a supervisor whose phone is not registered, a
non-supervisor) are checked on the same call; the record and MQTT carry every step.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from callcenter.settings import load_settings
from live.broker import EmbeddedBroker, find_mosquitto
from live.testing import Recorder, free_port
from speech.ports import consecutive_free_ports
from telephony.acd.directory import Directory, make_agent, save_directory
from telephony.kamailio import kamailio_binary
from tests.test_serve_calls import place_call, short_timeout_flow, stored, wait_record

PREFIX = "cc"
TOKEN = "supervision-token"
RATE = 16000
CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ = 440.0, 1000.0, 2200.0
MODE_S = 4.5
"""How long each mode lasts before the next switch."""
HOLD_AT, HOLD_S = 0.5, 1.5
"""Sue's phone holds and resumes early in listen (seconds after answer): the re-INVITEs renew
her call's media, and her one-way links must come back with it."""
LISTEN_S = HOLD_AT + HOLD_S + MODE_S
DTMF_AT = LISTEN_S + 2 * MODE_S + 1.0
"""Seconds after sue answers that she presses 1 (back to listen)."""
MARGIN_S = 0.8
"""Skipped at each edge of a window: switch latency and the phones' jitter buffers."""
HEARS = 0.05
"""Share of a window's power at a tone above which the tone is heard (a bridged tone has ~0.3+)."""
SILENT = 0.005
"""Share below which it is not (leakage of an unrelated tone is < 0.001)."""

pytestmark = [
    pytest.mark.sip, pytest.mark.broker, pytest.mark.slow,
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto binary missing (apt-get install mosquitto)"),
]


def tone_wav(path: Path, hz: float, seconds: float) -> Path:
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(str(path), (0.25 * np.sin(2 * np.pi * hz * t)).astype(np.float32), RATE, subtype="PCM_16")
    return path


def tone_share(x: np.ndarray, rate: int, hz: float) -> float:
    """Fraction of the signal's power that correlates with a sinusoid at ``hz`` (±15 Hz): the
    squared normalized correlation with the best-phase reference."""
    x = x.astype(np.float64)
    x = x - x.mean()
    energy = float(np.dot(x, x))
    if energy <= 0:
        return 0.0
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    band = (freqs > hz - 15) & (freqs < hz + 15)
    return float(spec[band].sum() / spec.sum())


def window(audio: np.ndarray, rate: int, start_epoch: float, a: float, b: float) -> np.ndarray:
    """Samples of a recording that began at ``start_epoch`` between epochs ``a`` and ``b``."""
    i, j = int((a + MARGIN_S - start_epoch) * rate), int((b - MARGIN_S - start_epoch) * rate)
    assert 0 <= i < j <= len(audio), (i, j, len(audio))
    return audio[i:j]


async def login(client: httpx.AsyncClient, agent_id: str, password: str) -> None:
    r = await client.post("/api/agent/login", json={"agent_id": agent_id, "password": password})
    assert r.status_code == 200, r.text


async def wait_until(pred: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = await pred()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def phone(front: str, user: str, password: str, *args: str) -> Any:
    return asyncio.create_subprocess_exec(
        sys.executable, "-m", "telephony.test_agent", f"sip:{user}@{front}", "--password", password, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)


async def phone_result(proc: Any) -> dict[str, Any]:
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    assert lines, err.decode()[-2000:]
    got: dict[str, Any] = json.loads(lines[-1])
    return got


async def test_supervisor_listens_whispers_and_barges_heard_by_each_phone(tmp_path: Path) -> None:
    from callcenter.serve import start_service, stop_service

    data = tmp_path / "data"
    data.mkdir()
    save_directory(Directory(agents=(
        make_agent("alice", "alice-pw", skills=("agents",), rounds=1000),
        make_agent("sue", "sue-pw", supervisor=True, rounds=1000),
        make_agent("tom", "tom-pw", supervisor=True, rounds=1000),  # never registers a phone
    )), data / "agents.yaml")
    caller_wav = tone_wav(tmp_path / "caller.wav", CALLER_HZ, 60)
    agent_wav = tone_wav(tmp_path / "agent.wav", AGENT_HZ, 60)
    sup_wav = tone_wav(tmp_path / "sup.wav", SUPERVISOR_HZ, 60)
    bport, wport = free_port(), free_port()
    settings = load_settings(environ={}, overrides={
        "data_dir": str(data), "sip.port": free_port(), "sip.worker_base_port": consecutive_free_ports(1),
        "sip.workers": 1, "sip.front": "kamailio", "console.port": wport, "console.token": TOKEN,
        "store.api_port": free_port(), "mqtt.host": "127.0.0.1", "mqtt.port": bport, "mqtt.topic_prefix": PREFIX,
        "asr.engine": "none", "ivr.flow": str(short_timeout_flow(tmp_path)), "acd.registrar_poll_s": 0.5,
        "acd.wrap_up_s": 0,
    })
    steps: dict[str, float] = {}
    async with EmbeddedBroker(port=bport, backend="mosquitto"):
        rec = Recorder("127.0.0.1", bport, (f"{PREFIX}/calls/+/events",), client_id=f"sup-{uuid.uuid4().hex[:8]}")
        await rec.start()
        svc = await start_service(settings, ready_timeout=60, log_dir=tmp_path / "logs")
        try:
            front = f"{settings.sip.host}:{settings.sip.port}"
            agent = await phone(front, "alice", "alice-pw", "--play", str(agent_wav), "--record",
                                str(tmp_path / "agent-heard.wav"), "--wait-call", "120")
            sup = await phone(front, "sue", "sue-pw", "--play", str(sup_wav), "--record",
                              str(tmp_path / "sup-heard.wav"), "--wait-call", "120",
                              "--dtmf-at", f"{DTMF_AT}:1", "--hold-after", str(HOLD_AT),
                              "--hold-for", str(HOLD_S))
            base = f"http://127.0.0.1:{wport}"
            async with httpx.AsyncClient(base_url=base, timeout=60) as sue, \
                    httpx.AsyncClient(base_url=base, timeout=60) as tom, \
                    httpx.AsyncClient(base_url=base, timeout=60) as alice:
                await login(sue, "sue", "sue-pw")
                await login(tom, "tom", "tom-pw")
                await login(alice, "alice", "alice-pw")

                async def registered() -> bool:
                    rows = (await sue.get("/api/agents")).json()
                    return {r["agent_id"] for r in rows if r["registered"]} >= {"alice", "sue"}

                await wait_until(registered, 30, "alice's and sue's phones to register")
                caller = asyncio.create_task(place_call(
                    svc.sip_uri, "--dtmf", "0", "--dtmf-first", "--play", str(caller_wav),
                    "--hangup-after", "45", "--record-dir", str(tmp_path / "caller-rec")))

                async def on_call() -> str:
                    rows = (await sue.get("/api/agents")).json()
                    alice_row = next(r for r in rows if r["agent_id"] == "alice")
                    return str(alice_row["call_id"]) if alice_row["state"] == "on_call" else ""

                call_id = await wait_until(on_call, 40, "alice to be on the call")
                # not a supervisor: refused before anything is asked of a worker
                r = await alice.post("/api/supervision", json={"call_id": call_id, "mode": "listen"})
                assert r.status_code == 403, r.text
                # a supervisor whose phone is not registered: a clear error, and an event on the call
                r = await tom.post("/api/supervision", json={"call_id": call_id, "mode": "listen"})
                assert r.status_code == 409 and r.json()["reason"] == "not_registered", r.text
                assert "not registered" in r.json()["detail"]
                # a call no worker holds
                r = await sue.post("/api/supervision", json={"call_id": "no-such-call", "mode": "listen"})
                assert r.status_code == 404 and r.json()["reason"] == "not_live", r.text

                for mode in ("listen", "whisper", "barge"):
                    r = await sue.post("/api/supervision", json={"call_id": call_id, "mode": mode})
                    assert r.status_code == 200, r.text
                    assert r.json()["supervision"] == [
                        {"call_id": call_id, "supervisor_id": "sue", "mode": mode, "since": pytest.approx(
                            r.json()["supervision"][0]["since"])}]
                    steps[mode] = time.time()
                    if mode == "listen":
                        steps["answered"] = steps[mode]
                    await asyncio.sleep(LISTEN_S if mode == "listen" else MODE_S)

                async def back_to_listen() -> bool:
                    now = (await sue.get("/api/supervision", params={"call_id": call_id})).json()
                    return bool(now) and now[0]["mode"] == "listen"

                await wait_until(back_to_listen, 15, "sue's key 1 to switch back to listen")
                steps["dtmf"] = time.time()
                await asyncio.sleep(MODE_S)
                r = await sue.post("/api/supervision", json={"call_id": call_id, "mode": "leave"})
                assert r.status_code == 200 and r.json()["supervision"] == [], r.text
                steps["left"] = time.time()
            result = await caller
            agent_res, sup_res = await phone_result(agent), await phone_result(sup)
            record = await wait_record(svc, result["call_id"])
            detail = stored(svc, result["call_id"])
        finally:
            await stop_service(svc)
        await rec.stop()

    assert result["answered"] and agent_res["calls"][0]["answered"] and sup_res["calls"][0]["answered"], sup_res
    sup_call = sup_res["calls"][0]
    assert sup_call["end_reason"] == "remote"  # the worker hung up on "leave"

    # ---- what each phone heard, mode by mode ----
    sup_audio, sup_rate = sf.read(sup_call["recording_path"], dtype="int16")
    agent_audio, agent_rate = sf.read(agent_res["calls"][0]["recording_path"], dtype="int16")
    caller_rec, caller_rate = sf.read(result["recording_path"], dtype="int16")
    caller_heard = caller_rec[:, 1]  # ch1 what the caller played, ch2 what it heard
    # the worker's recording of the call: ch1 what the caller heard, ch2 the caller
    worker_rec, worker_rate = sf.read(record["recording"], dtype="int16")
    sup_start, agent_start, caller_start = sup_call["answered_at"], agent_res["calls"][0]["answered_at"], \
        result["answered_at"]
    windows = {
        "listen": (sup_start + HOLD_AT + HOLD_S + 0.3, steps["whisper"]),  # after her hold
        "whisper": (steps["whisper"], steps["barge"]),
        "barge": (steps["barge"], sup_start + DTMF_AT),
        "dtmf_listen": (steps["dtmf"], steps["left"]),
    }
    shares: dict[str, dict[str, float]] = {}
    for name, (a, b) in windows.items():
        s = window(sup_audio, sup_rate, sup_start, a, b)
        ag = window(agent_audio, agent_rate, agent_start, a, b)
        c = window(caller_heard, caller_rate, caller_start, a, b)
        w = window(worker_rec, worker_rate, caller_start, a, b)  # starts with the caller's answer
        shares[name] = {
            "sup_hears_caller": tone_share(s, sup_rate, CALLER_HZ),
            "sup_hears_agent": tone_share(s, sup_rate, AGENT_HZ),
            "agent_hears_sup": tone_share(ag, agent_rate, SUPERVISOR_HZ),
            "agent_hears_caller": tone_share(ag, agent_rate, CALLER_HZ),
            "caller_hears_sup": tone_share(c, caller_rate, SUPERVISOR_HZ),
            "caller_hears_agent": tone_share(c, caller_rate, AGENT_HZ),
            "recorded_as_heard_by_caller": tone_share(w[:, 0], worker_rate, SUPERVISOR_HZ),
            "recorded_as_caller": tone_share(w[:, 1], worker_rate, SUPERVISOR_HZ),
        }
    print(json.dumps(shares, indent=1))
    for name, got in shares.items():
        # in every mode the supervisor hears both parties, and they still hear each other
        for key in ("sup_hears_caller", "sup_hears_agent", "agent_hears_caller", "caller_hears_agent"):
            assert got[key] > HEARS, (name, key, shares)
    # the recording: sue is in what the caller heard only while barging, never in the caller's channel
    for name, got in shares.items():
        assert got["recorded_as_caller"] < SILENT, (name, shares)
        assert (got["recorded_as_heard_by_caller"] > HEARS) == (name == "barge"), (name, shares)
        assert name == "barge" or got["recorded_as_heard_by_caller"] < SILENT, (name, shares)
    for name in ("listen", "dtmf_listen"):
        assert shares[name]["agent_hears_sup"] < SILENT and shares[name]["caller_hears_sup"] < SILENT, shares
    assert shares["whisper"]["agent_hears_sup"] > HEARS and shares["whisper"]["caller_hears_sup"] < SILENT, shares
    assert shares["barge"]["agent_hears_sup"] > HEARS and shares["barge"]["caller_hears_sup"] > HEARS, shares

    # ---- events: in the record (with the summary's supervision list) and on MQTT ----
    expected = [("tom", "left", "not_registered", "listen"), ("sue", "listen", "console", ""),
                ("sue", "whisper", "console", ""), ("sue", "barge", "console", ""),
                ("sue", "listen", "dtmf", ""), ("sue", "left", "console", "")]
    assert record["stored"] and detail is not None and detail.summary is not None
    summary = detail.summary.to_dict()
    in_record = [(s["supervisor_id"], s["mode"], s["reason"], s["requested"]) for s in summary["supervision"]]
    assert in_record == expected, summary["supervision"]
    assert all(s["agent_id"] == "alice" for s in summary["supervision"])
    stored_events = [e for e in detail.events if e["type"] == "supervision"]
    assert [(e["supervisor_id"], e["mode"]) for e in stored_events] == [(s, m) for s, m, _, _ in expected]
    # the supervisor's voice is in no party's speech
    assert set(summary["talk_ratio"]) <= {"caller", "agent"}, summary["talk_ratio"]
    feed = [m.json() for m in rec.messages if m.topic == f"{PREFIX}/calls/{result['call_id']}/events"]
    on_mqtt = [(e["supervisor_id"], e["mode"], e["reason"]) for e in feed if e["type"] == "supervision"]
    assert on_mqtt == [(s, m, r) for s, m, r, _ in expected], on_mqtt
