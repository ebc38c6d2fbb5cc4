"""Issue 12: "for SIPREC calls listen only", proven by what the supervisor's phone hears.

Real on 127.0.0.1: ``callcenter serve`` (Kamailio front with its registrar, one worker, mosquitto,
the console); sipp as the PBX's recording client forks a call with a 440 Hz tone on the caller
stream and 1000 Hz on the agent stream (alice), then a re-INVITE that renews the streams and puts
bob on the agent stream (a transfer); sue's registered supervisor phone records what it hears.
Sue picks the call in the supervisor view (``/api/agents``: alice's live call), listens through
the REST API, asks to whisper (refused: ``listen_only``) and leaves. Her recording has both tones
before and after the re-INVITE (her links follow the renewed streams); the stored record has
every ``SupervisionChanged``; alice, ready before, is ``on_call`` (``siprec``) in the ACD while
she is on the recorded call, and ready again after the transfer.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

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
from tests.sip.sipp import have_sipp, run_sipp
from tests.sip.siprec import BOB, SiprecCall, Update, write_scenario
from tests.test_serve_calls import short_timeout_flow, stored, wait_record
from tests.test_siprec_e2e import sip_call_id
from tests.test_supervision_calls import HEARS, login, phone, phone_result, tone_share, wait_until

PREFIX = "cc"
CALLER_HZ, AGENT_HZ = 440.0, 1000.0
TRANSFER_AT_MS = 7_000
"""The re-INVITE that puts bob on the agent stream, after the ACK."""
HOLD_MS, RESUME_MS = 1_000, 1_500
"""Then a re-INVITE with every stream ``inactive`` (a hold), and one back to ``sendonly``:
pjsua stops the streams and makes new ones (new conference ports) on resume."""
END_MS = 7_000
"""From the resume to BYE."""
LISTEN_AFTER_S = 5.5
"""How long sue listens after the transfer (and through the hold) before leaving."""
MARGIN_S = 0.8
"""Skipped at each edge of a window: link changes and the phone's jitter buffer."""

pytestmark = [
    pytest.mark.sip, pytest.mark.broker, pytest.mark.slow,
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto binary missing (apt-get install mosquitto)"),
    pytest.mark.skipif(not have_sipp(), reason="sipp (sip-tester) not installed"),
]


def tone_wav8k(path: Path, hz: float, seconds: float) -> Path:
    t = np.arange(int(seconds * 8000)) / 8000
    sf.write(str(path), (0.25 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 8000, subtype="PCM_16")
    return path


async def test_supervisor_listens_to_siprec_call_only(tmp_path: Path) -> None:
    from callcenter.serve import start_service, stop_service
    from tests.sip.rtp_tools import wav_to_pcap

    data = tmp_path / "data"
    data.mkdir()
    save_directory(Directory(agents=(
        make_agent("alice", "alice-pw", skills=("agents",), rounds=1000),
        make_agent("bob", "bob-pw", skills=("agents",), rounds=1000),
        make_agent("sue", "sue-pw", supervisor=True, rounds=1000),
    )), data / "agents.yaml")
    bport, wport = free_port(), free_port()
    settings = load_settings(environ={}, overrides={
        "data_dir": str(data), "sip.port": free_port(), "sip.worker_base_port": consecutive_free_ports(1),
        "sip.workers": 1, "sip.front": "kamailio", "console.port": wport, "console.token": "siprec-sup-token",
        "store.api_port": free_port(), "mqtt.host": "127.0.0.1", "mqtt.port": bport, "mqtt.topic_prefix": PREFIX,
        "asr.engine": "none", "ivr.flow": str(short_timeout_flow(tmp_path)), "acd.registrar_poll_s": 0.5,
    })
    run = tmp_path / "sipp"
    run.mkdir()
    seconds = (TRANSFER_AT_MS + HOLD_MS + RESUME_MS + END_MS) / 1000 + 2
    wav_to_pcap(tone_wav8k(tmp_path / "caller.wav", CALLER_HZ, seconds), run / "caller.pcap", codec="PCMU")
    wav_to_pcap(tone_wav8k(tmp_path / "agent.wav", AGENT_HZ, seconds), run / "agent.pcap", codec="PCMU")
    scenario = write_scenario(run / "siprec.xml", SiprecCall(updates=(
        Update(TRANSFER_AT_MS, agent=BOB), Update(HOLD_MS, direction="inactive"), Update(RESUME_MS)), end_ms=END_MS))
    async with EmbeddedBroker(port=bport, backend="mosquitto"):
        rec = Recorder("127.0.0.1", bport, (f"{PREFIX}/calls/+/events",), client_id=f"srs-{uuid.uuid4().hex[:8]}")
        await rec.start()
        svc = await start_service(settings, ready_timeout=60, log_dir=tmp_path / "logs")
        try:
            front = f"{settings.sip.host}:{settings.sip.port}"
            sup = await phone(front, "sue", "sue-pw", "--record", str(tmp_path / "sup-heard.wav"),
                              "--wait-call", "90")
            base = f"http://127.0.0.1:{wport}"
            async with httpx.AsyncClient(base_url=base, timeout=60) as sue, \
                    httpx.AsyncClient(base_url=base, timeout=60) as alice:
                await login(sue, "sue", "sue-pw")
                await login(alice, "alice", "alice-pw")
                r = await alice.post("/api/agent/state", json={"state": "ready"})
                assert r.status_code == 200, r.text

                async def row(agent_id: str) -> dict[str, object]:
                    rows = (await sue.get("/api/agents")).json()
                    return dict(next(r for r in rows if r["agent_id"] == agent_id))

                async def sue_registered() -> bool:
                    return bool((await row("sue"))["registered"])

                await wait_until(sue_registered, 30, "sue's phone to register")
                sipp = asyncio.create_task(run_sipp(settings.sip.port, run, extra=["-sf", str(scenario)],
                                                    timeout_s=seconds + 30))

                async def alice_on_siprec() -> dict[str, object] | None:
                    got = await row("alice")
                    return got if got["live_call_id"] and got["state"] == "on_call" else None

                # the supervisor view shows alice on the recorded call; sue picks it there
                alice_row = await wait_until(alice_on_siprec, 20, "alice's recorded call in the supervisor view")
                call_id = str(alice_row["live_call_id"])
                assert alice_row["reason"] == "siprec" and alice_row["call_id"] == call_id, alice_row
                r = await sue.post("/api/supervision", json={"call_id": call_id, "mode": "listen"})
                assert r.status_code == 200 and r.json()["supervision"][0]["mode"] == "listen", r.text

                async def transferred() -> dict[str, object] | None:  # alice is off it, bob on it
                    bob_now = await row("bob")
                    done = (await row("alice"))["state"] == "ready" and bob_now["live_call_id"] == call_id
                    return bob_now if done else None

                bob_row = await wait_until(transferred, TRANSFER_AT_MS / 1000 + 15, "the transfer to bob")
                r = await sue.post("/api/supervision", json={"call_id": call_id, "mode": "whisper"})
                assert r.status_code == 409 and r.json()["reason"] == "listen_only", r.text
                assert r.json()["supervision"][0]["mode"] == "listen", r.text  # still listening
                r = await sue.post("/api/supervision", json={"call_id": call_id, "mode": "barge"})
                assert r.status_code == 409 and r.json()["reason"] == "listen_only", r.text
                await asyncio.sleep(LISTEN_AFTER_S)
                r = await sue.post("/api/supervision", json={"call_id": call_id, "mode": "leave"})
                assert r.status_code == 200 and r.json()["supervision"] == [], r.text
            result = await sipp
            sup_res = await phone_result(sup)
            record = await wait_record(svc, sip_call_id(result.messages), timeout_s=60)
            detail = stored(svc, call_id)
        finally:
            await stop_service(svc)
        await rec.stop()

    assert result.returncode == 0, (result.errors[-3000:], result.messages[-3000:])
    assert sip_call_id(result.messages) == call_id
    assert bob_row["state"] == "logged_out", bob_row  # not ready before: the ACD state is left alone
    sup_call = sup_res["calls"][0]
    assert sup_call["answered"] and sup_call["end_reason"] == "remote", sup_res  # hung up on "leave"

    # ---- events in the stored record ----
    assert record["stored"] and detail is not None and detail.summary is not None
    sup_events = [e for e in detail.events if e["type"] == "supervision"]
    got = [(e["supervisor_id"], e["mode"], e["reason"], e.get("requested") or "", e["agent_id"]) for e in sup_events]
    assert got == [("sue", "listen", "console", "", "alice"), ("sue", "listen", "listen_only", "whisper", "bob"),
                   ("sue", "listen", "listen_only", "barge", "bob"), ("sue", "left", "console", "", "bob")], got
    summary = detail.summary.to_dict()
    assert [(s["mode"], s["reason"]) for s in summary["supervision"]] == [(m, r) for _, m, r, _, _ in got]
    acd = [(e["agent_id"], e["state"], e["reason"]) for e in detail.events if e["type"] == "agent.state"]
    assert acd == [("alice", "on_call", "siprec"), ("alice", "ready", "")], acd
    feed = [m.json() for m in rec.messages if m.topic == f"{PREFIX}/calls/{call_id}/events"]
    assert [(e["mode"], e["reason"]) for e in feed if e["type"] == "supervision"] == [(m, r) for _, m, r, _, _ in got]

    # ---- what sue heard: both streams, before the re-INVITEs and after the resume renewed them ----
    t = {k: next(e["t"] for e in detail.events if pred(e)) for k, pred in {
        "listen": lambda e: e["type"] == "supervision" and e["mode"] == "listen",
        "transfer": lambda e: e["type"] == "party.joined" and e.get("agent_id") == "bob",
        "resumed": lambda e: e["type"] == "hold.ended",
        "left": lambda e: e["type"] == "supervision" and e["mode"] == "left",
    }.items()}
    audio, rate = sf.read(sup_call["recording_path"], dtype="int16")
    # sue's recording starts as she answers, just before her listen event: call time - t_listen
    shares = {}
    for name, (a, b) in {"before": (0.0, t["transfer"] - t["listen"]),
                         "after_resume": (t["resumed"] - t["listen"], t["left"] - t["listen"])}.items():
        i, j = int((a + MARGIN_S) * rate), int((b - MARGIN_S) * rate)
        assert j - i > rate, (name, a, b, t)
        w = audio[i:j]
        shares[name] = {"caller": tone_share(w, rate, CALLER_HZ), "agent": tone_share(w, rate, AGENT_HZ)}
    print(json.dumps({"times": t, "shares": shares}, indent=1))
    for name, got_share in shares.items():
        assert got_share["caller"] > HEARS and got_share["agent"] > HEARS, (name, shares)
