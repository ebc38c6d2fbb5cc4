"""The whole service with real SIP: Kamailio front, 2 endpoint workers, IVR, pipeline, CRM store.

Callers are separate processes (one pjsua2 endpoint per process): ``python -m
telephony.test_caller`` for scripted calls (RFC 4733 keys, espeak-ng speech over PCMU) and sipp
for load and broken media. One service runs for the module; the IVR scenarios run at the same
time to keep the file within a few minutes.

The flow is the shipped contact-center flow with its shipped prompts, with shorter menu timeouts
and one retry (``defaults`` in a copy of the YAML) so a silent caller reaches the fallback in
~45 s of call time instead of ~70 s.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio
import soundfile as sf
import yaml

from callcenter.serve import Service, start_service, stop_service
from callcenter.settings import load_settings
from callcenter.worker import call_record_path
from ivr.flow import SAMPLE_FLOW, MenuNode, load_flow
from ivr.matching import match_speech
from speech.ports import consecutive_free_ports
from summaries.store import CrmStore
from telephony.kamailio import kamailio_binary
from tests.conftest import have
from tests.sip.sipp import run_sipp
from tests.sip_tools import free_port

pytestmark = [
    pytest.mark.sip,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
    pytest.mark.skipif(not have("sipp"), reason="sipp not installed (apt-get install sip-tester)"),
]

MENU_TIMEOUT_S = 3
WELCOME_S = sf.info(str(SAMPLE_FLOW.parent.parent / "prompts" / "welcome.wav")).duration
MENU_S = sf.info(str(SAMPLE_FLOW.parent.parent / "prompts" / "main_menu.wav")).duration
SPEAK_AT_S = WELCOME_S + MENU_S + 1.2
"""Call time the caller starts speaking: just after the menu prompt ended."""
CALLER_TIMEOUT_S = 120
RECORD_WAIT_S = 30


# -- helpers ---------------------------------------------------------------------------------------


def short_timeout_flow(tmp: Path) -> Path:
    """The sample flow with short timeouts, prompts from the shipped folder."""
    data = yaml.safe_load(SAMPLE_FLOW.read_text())
    data["defaults"] = {"timeout_s": MENU_TIMEOUT_S, "retries": 1}
    data["prompts_dir"] = str((SAMPLE_FLOW.parent / data["prompts_dir"]).resolve())
    path = tmp / "flow.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def service_settings(tmp: Path, **extra: Any):
    overrides = {
        "data_dir": str(tmp / "data"),
        "sip.port": free_port(),
        "sip.worker_base_port": consecutive_free_ports(2),
        "sip.workers": 2,
        "sip.front": "kamailio",
        "mqtt.enabled": False,
        "console.enabled": False,
        "asr.engine": "whisper",  # the default engine, explicit so an environment cannot change it
        "ivr.flow": str(short_timeout_flow(tmp)),
    }
    overrides.update(extra)
    return load_settings(overrides=overrides, environ={})


async def place_call(uri: str, *args: str, timeout_s: float = CALLER_TIMEOUT_S) -> dict[str, Any]:
    """Run one scripted caller process; its JSON result."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "telephony.test_caller", uri, *args, "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"test caller did not finish within {timeout_s} s") from None
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    assert lines, f"test caller printed no result: {err.decode()[-1500:]}"
    return json.loads(lines[-1])


async def wait_record(svc: Service, call_id: str, timeout_s: float = RECORD_WAIT_S) -> dict[str, Any]:
    """The worker's record of an ended call (written after the CRM write)."""
    path = call_record_path(svc.settings.data_dir, call_id)
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"no call record for {call_id} within {timeout_s} s"
        await asyncio.sleep(0.2)
    return json.loads(path.read_text())


async def wait_idle(svc: Service, timeout_s: float = 20) -> list[dict[str, Any]]:
    """Worker stats once no worker holds a call or a session (fails on a leak)."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = svc.worker_stats()
        if len(stats) == 2 and all(s["active_calls"] == 0 and s["endpoint_calls"] == 0 for s in stats):
            return stats
        assert time.monotonic() < deadline, f"calls leaked: {stats}"
        await asyncio.sleep(0.2)


def stored(svc: Service, call_id: str, timeout_s: float = 20.0):
    """The call in the CRM store; waits for it a while: on a loaded machine the worker's durable
    writer may have spooled the write (the store busy) and deliver it a moment later."""
    store = CrmStore(svc.settings.store_url)
    store.start()
    try:
        deadline = time.monotonic() + timeout_s
        while (call := store.get_call(call_id)) is None and time.monotonic() < deadline:
            time.sleep(0.25)
        return call
    finally:
        store.stop()


def menu_choice(text: str) -> str | None:
    """The main menu's choice ``text`` selects, by the IVR's own matcher."""
    menu = load_flow(SAMPLE_FLOW).nodes["main_menu"]
    assert isinstance(menu, MenuNode)
    match = match_speech(text, menu.choices)
    return None if match is None else match.choice.name


def ivr_steps(detail, action: str | None = None) -> list[dict[str, Any]]:
    return [e for e in detail.events if e["type"] == "ivr.step" and (action is None or e["action"] == action)]


def assert_two_channel_recording(record: dict[str, Any], min_s: float) -> None:
    assert record["recording"], record
    info = sf.info(record["recording"])
    assert info.channels == 2
    assert info.duration >= min_s


# -- fixtures --------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("serve")
    svc = await start_service(service_settings(tmp), log_dir=tmp / "logs")
    try:
        yield svc
    finally:
        await stop_service(svc)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ivr_calls(service: Service, tts) -> dict[str, Any]:
    """The IVR scenarios, placed at the same time: keys, speech (3 voices), silence."""
    speech = [
        tts("technical support", voice=voice, speed=speed, pad_before=SPEAK_AT_S, pad_after=0.5)
        for voice, speed in (("en-us", 150), ("en-us", 130), ("en-us+m3", 140))
    ]
    uri = service.sip_uri
    silent_s = WELCOME_S + MENU_S + MENU_TIMEOUT_S + 17 + MENU_TIMEOUT_S + 3.1 + 3
    jobs = {
        "billing": place_call(uri, "--dtmf", "1", "--dtmf", "123456#", "--dtmf-delay", "2",
                              "--hangup-after", "13"),
        "silent": place_call(uri, "--hangup-after", f"{silent_s:.0f}"),
        **{f"speech{i}": place_call(uri, "--play", str(w), "--hangup-after", f"{SPEAK_AT_S + 9:.0f}")
           for i, w in enumerate(speech)},
    }
    results = dict(zip(jobs, await asyncio.gather(*jobs.values()), strict=True))
    out: dict[str, Any] = {}
    for name, res in results.items():
        assert res["answered"], (name, res)
        out[name] = {"caller": res, "record": await wait_record(service, res["call_id"])}
    return out


# -- 1. the IVR, end to end ---------------------------------------------------------------------------


async def test_key_press_reaches_billing_and_the_call_is_stored(service: Service, ivr_calls) -> None:
    call = ivr_calls["billing"]
    ivr = call["record"]["ivr"]
    assert ivr["outcome"] == "queue" and ivr["queue"] == "billing"
    assert ivr["path"] == ["welcome", "main_menu", "billing_account", "billing_queue"]
    assert ivr["collected"] == {"account_number": "123456"}

    detail = stored(service, call["caller"]["call_id"])
    assert detail is not None and detail.summary is not None
    assert detail.summary.ivr_path[:3] == ("welcome", "main_menu", "billing_account")
    choice = ivr_steps(detail, "choice")[0]
    assert choice["detail"]["by"] == "dtmf" and choice["detail"]["choice"] == "billing"
    assert ivr_steps(detail, "route")[0]["detail"] == {"queue": "billing"}
    digits = "".join(e["digit"] for e in detail.events if e["type"] == "dtmf")
    assert digits == "1123456#"
    assert {e["source"] for e in detail.events if e["type"] == "dtmf"} == {"rfc4733"}
    assert detail.events[-1]["type"] == "call.ended"
    assert_two_channel_recording(call["record"], min_s=10)
    assert call["record"]["frames_dropped"] == 0


async def test_spoken_choice_routes_to_tech_support(service: Service, ivr_calls) -> None:
    speech = {k: v for k, v in ivr_calls.items() if k.startswith("speech")}
    hits = 0
    for name, call in speech.items():
        detail = stored(service, call["caller"]["call_id"])
        assert detail is not None
        finals = [e for e in detail.events if e["type"] == "transcript.final" and e["party"] == "caller"]
        choices = ivr_steps(detail, "choice")
        by_speech = [c for c in choices if c["detail"]["by"] == "speech"]
        # The matcher rejects what is not a menu phrase: a hit must be the phrase spoken, never another.
        assert all(c["detail"]["choice"] == "technical support" for c in by_speech), (name, choices)
        if call["record"]["ivr"]["queue"] == "tech_support" and by_speech:
            hits += 1
            # The caller's transcript holds what the menu routed on (the matcher also takes a
            # choice's content words, so "technical" alone is a hit: the text need not be whole).
            assert any(menu_choice(f["text"]) == "technical support" for f in finals), finals
            assert any(menu_choice(u.text) == "technical support" and u.party == "caller"
                       for u in detail.transcript)
        assert_two_channel_recording(call["record"], min_s=SPEAK_AT_S)
    print(f"spoken 'technical support' routed by speech: {hits}/{len(speech)}")
    # whisper through PCMU: 3/3 in every run measured (pocketsphinx's grammar got 1-3 of 3)
    assert hits >= len(speech) - 1, f"only {hits} of {len(speech)} espeak voices recognized through PCMU"


async def test_silent_call_is_reprompted_then_falls_back_to_agents(service: Service, ivr_calls) -> None:
    call = ivr_calls["silent"]
    ivr = call["record"]["ivr"]
    assert ivr["outcome"] == "queue" and ivr["queue"] == "agents"
    assert ivr["path"] == ["welcome", "main_menu", "agents_hold", "agents_queue"]
    detail = stored(service, call["caller"]["call_id"])
    assert detail is not None
    menu = [e["action"] for e in ivr_steps(detail) if e["node"] == "main_menu"]
    assert menu == ["enter", "timeout", "retry", "timeout", "fallback"]
    prompts = [e["name"] for e in detail.events if e["type"] == "playback.started"]
    assert prompts[:3] == ["welcome", "main_menu", "main_menu_reprompt"]
    assert not [e for e in detail.events if e["type"] == "transcript.final" and e["party"] == "caller"]
    assert_two_channel_recording(call["record"], min_s=40)


# -- 2. bad input ----------------------------------------------------------------------------------


async def test_caller_hanging_up_mid_prompt_is_still_recorded(service: Service) -> None:
    res = await place_call(service.sip_uri, "--hangup-after", "2")
    assert res["answered"] and res["hangup_by"] == "local"
    record = await wait_record(service, res["call_id"])
    assert record["ivr"]["outcome"] == "caller_hangup"
    # hung up 2 s into the 6 s welcome (a loaded machine may let the caller process lag a little)
    assert record["ivr"]["path"][0] == "welcome" and len(record["ivr"]["path"]) <= 2
    detail = stored(service, res["call_id"])
    assert detail is not None and detail.summary is not None
    assert detail.summary.end_reason == "hangup"
    assert 1 <= detail.call.duration < WELCOME_S + MENU_S
    assert ivr_steps(detail)[-1]["action"] == "hangup" and ivr_steps(detail)[-1]["detail"] == {"by": "caller"}
    started = [e["name"] for e in detail.events if e["type"] == "playback.started"]
    ended = [e["name"] for e in detail.events if e["type"] == "playback.ended"]
    assert started and started == ended  # the cut prompt is closed on record, not left open
    assert_two_channel_recording(record, min_s=2)
    await wait_idle(service)


def _media_then_silence_scenario(hold_ms: int) -> str:
    """sipp's uac_pcap with the RTP stopping after the recording and the call held ``hold_ms``."""
    import subprocess

    xml = subprocess.run(["sipp", "-sd", "uac_pcap"], capture_output=True, text=True).stdout  # exits 99
    start = xml.index('<pause milliseconds="8000"/>')
    end = xml.index("<send", start)
    return xml[:start] + f'<pause milliseconds="{hold_ms}"/>\n  ' + xml[end:]


async def test_rtp_that_stops_does_not_end_or_break_the_call(service: Service, tmp_path: Path) -> None:
    scenario = tmp_path / "media_then_silence.xml"
    scenario.write_text(_media_then_silence_scenario(14000))
    run = await run_sipp(service.settings.sip.port, tmp_path, calls=1, timeout_s=40,
                         extra=["-sf", str(scenario)])
    assert run.returncode == 0, run.stdout[-1500:] + run.errors[-1500:]
    call_ids = run.calls_with_status(200)
    assert len(call_ids) == 1
    record = await wait_record(service, call_ids.pop())
    assert record["end_reason"] == "hangup"  # ended by the caller's BYE, not by a media timeout
    assert record["ivr"]["outcome"] == "caller_hangup"
    # RTP stopped at ~7 s; the call stayed up and the clock kept running until the BYE at ~14 s
    # (ticks still queued for the loop when the BYE lands are not counted: allow for a lag)
    assert record["frames_received"] * 0.02 >= 10
    info = sf.info(record["recording"])
    assert info.channels == 2 and info.duration >= 10
    stats = await wait_idle(service)
    assert all(s["calls_failed"] == 0 for s in stats), stats


# -- 3. load through the one dialed address --------------------------------------------------------


async def test_six_calls_at_once_through_the_front_are_all_answered(service: Service, tmp_path: Path) -> None:
    await wait_idle(service)
    before = sum(s["calls_total"] for s in service.worker_stats())
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, sum(s["active_calls"] for s in service.worker_stats()))
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    try:
        run = await run_sipp(service.settings.sip.port, tmp_path, builtin="uac_pcap", calls=6, limit=6,
                             rate=20, timeout_s=45)
    finally:
        watcher.cancel()
    assert run.returncode == 0, run.stdout[-1500:] + run.errors[-1500:]
    assert len(run.calls_with_status(200)) == 6
    assert 486 not in run.statuses() and 503 not in run.statuses()
    assert peak >= 5, f"calls were not concurrent (peak {peak})"
    per_worker = [s["calls_total"] for s in service.worker_stats()]
    assert sum(per_worker) - before == 6
    assert max(per_worker) - min(per_worker) <= 1  # round robin


async def test_workers_survive_six_calls_ending_together(service: Service) -> None:
    stats = await wait_idle(service, timeout_s=30)
    assert all(p.returncode is None for p in service.workers)
    assert all(s["frames_dropped"] == 0 for s in stats), stats


# -- 4. shutdown -----------------------------------------------------------------------------------


async def test_stop_service_leaves_no_process_and_frees_the_ports(tmp_path: Path) -> None:
    import httpx

    console_port, api_port = free_port(), free_port()
    settings = service_settings(
        tmp_path, **{"mqtt.enabled": True, "mqtt.embedded_port": free_port(), "console.enabled": True,
                     "console.port": console_port, "console.token": "t0ken-serve-calls", "store.api_port": api_port},
    )
    svc = await start_service(settings, log_dir=tmp_path / "logs")
    try:
        pids = svc.pids()
        assert len(pids) == 3  # 2 workers + kamailio
        kamailio = psutil.Process(svc.front.proc.pid)  # type: ignore[union-attr]
        pids += [c.pid for c in kamailio.children(recursive=True)]
        assert svc.broker is not None and svc.broker.running  # type: ignore[attr-defined]
        broker_proc = getattr(svc.broker, "_proc", None)
        if broker_proc is not None:  # mosquitto (amqtt runs inside this process)
            pids.append(broker_proc.pid)
        async with httpx.AsyncClient(follow_redirects=True, timeout=10) as client:
            r = await client.get(f"http://127.0.0.1:{console_port}/api/history?token=t0ken-serve-calls")
        assert r.status_code == 200
        res = await place_call(svc.sip_uri, "--hangup-after", "2")
        assert res["answered"]
        # the CRM REST API runs beside the console and serves the call's record
        await wait_record(svc, res["call_id"])
        async with httpx.AsyncClient(timeout=10) as client:
            unauthorized = await client.get(f"http://127.0.0.1:{api_port}/api/calls")
            one = await client.get(f"http://127.0.0.1:{api_port}/api/calls/{res['call_id']}",
                                   headers={"Authorization": "Bearer t0ken-serve-calls"})
        assert unauthorized.status_code == 401
        assert one.status_code == 200 and one.json()["call_id"] == res["call_id"]
    finally:
        await stop_service(svc)
    await stop_service(svc)  # idempotent
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == [], alive
    assert not svc.workers and svc.front is None and svc.broker is None and svc.console is None
    for port in (settings.sip.port, settings.sip.worker_base_port, settings.sip.worker_base_port + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))  # raises if anything still listens
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        assert s.connect_ex(("127.0.0.1", console_port)) != 0
    # the call placed before the stop was recorded by its worker
    assert call_record_path(settings.data_dir, res["call_id"]).exists()
