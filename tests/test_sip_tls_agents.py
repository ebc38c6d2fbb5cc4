"""Agents' phones over TLS with SRTP: registration at the front over TLS, the bridged call's agent
leg (worker -> front -> phone over TLS) with SRTP, and a clear-text registration refused.

The service runs with ``sip.srtp = mandatory``: pjsua's ``optional`` offers RTP/AVP with
a=crypto, which a phone with SRTP mandatory refuses (488); ``mandatory`` offers RTP/SAVP.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest
import pytest_asyncio

from callcenter.certs import CertPaths, ensure_certs
from callcenter.serve import Service, start_service, stop_service
from callcenter.settings import load_settings
from speech.events import AgentStatus
from speech.ports import consecutive_free_ports
from telephony.acd.directory import Directory, make_agent, save_directory
from tests.sip_tools import free_port, needs_kamailio_tls
from tests.test_acd_calls import wait_state
from tests.test_serve_calls import place_call, short_timeout_flow, wait_record

pytestmark = [
    pytest.mark.sip,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    needs_kamailio_tls,
]

PASSWORD = "alice-pw-1"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return ensure_certs(tmp_path_factory.mktemp("certs"), ["127.0.0.1", "localhost"])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(tmp_path_factory: pytest.TempPathFactory, certs: CertPaths):
    tmp = tmp_path_factory.mktemp("tls-acd")
    data = tmp / "data"
    data.mkdir()
    save_directory(Directory(agents=(make_agent("alice", PASSWORD, skills=("agents",), rounds=1000),)),
                   data / "agents.yaml")
    settings = load_settings(overrides={
        "data_dir": str(data), "sip.port": free_port(), "sip.worker_base_port": consecutive_free_ports(2),
        "sip.workers": 2, "sip.front": "kamailio", "mqtt.enabled": False, "console.enabled": False,
        "asr.engine": "whisper", "ivr.flow": str(short_timeout_flow(tmp)),
        "acd.wrap_up_s": 2.0, "acd.registrar_poll_s": 0.5,
        "sip.tls_port": free_port(), "sip.tls_cert": str(certs.cert), "sip.tls_key": str(certs.key),
        "sip.require_tls": True, "sip.srtp": "mandatory",
    }, environ={})
    service = await start_service(settings, log_dir=tmp / "logs")
    try:
        yield service
    finally:
        await stop_service(service)


async def run_agent(svc: Service, *args: str, timeout_s: float = 90.0) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "telephony.test_agent", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    assert lines, f"test agent printed no result: {err.decode()[-1500:]}"
    return dict(json.loads(lines[-1]))


def tls_args(svc: Service, certs: CertPaths) -> list[str]:
    return [f"sip:alice@127.0.0.1:{svc.settings.sip.tls_port}", "--password", PASSWORD, "--tls",
            "--ca", str(certs.ca_cert), "--cert", str(certs.cert), "--key", str(certs.key),
            "--srtp", "mandatory"]


async def test_clear_text_registration_is_refused(svc: Service) -> None:
    res = await run_agent(svc, f"sip:alice@127.0.0.1:{svc.settings.sip.port}", "--password", PASSWORD,
                          "--register-timeout", "5", "--wait-call", "1")
    assert not res["registered"] and res["status"] == 403, res


async def test_agent_over_tls_takes_a_call_with_srtp_on_both_legs(svc: Service, certs: CertPaths) -> None:
    agent = asyncio.create_task(run_agent(svc, *tls_args(svc, certs), "--hangup-after", "6"))
    await wait_state(svc, "alice", AgentStatus.READY)
    caller = await place_call(f"sip:ivr@127.0.0.1:{svc.settings.sip.tls_port};transport=tls", "--tls",
                              "--ca", str(certs.ca_cert), "--srtp", "mandatory", "--dtmf", "0",
                              "--dtmf-first", "--hangup-after", "40")
    res = await agent
    assert caller["answered"] and caller["media"] == ["RTP/SAVP"], caller
    assert res["registered"], res
    calls = [c for c in res["calls"] if c["answered"]]
    assert len(calls) == 1 and calls[0]["media"] == ["RTP/SAVP"], res
    assert calls[0]["frames_heard"] > 100, calls  # the agent heard the caller's side, decrypted
    record = await wait_record(svc, caller["call_id"])
    assert record["ivr"]["outcome"] == "queue", record["ivr"]
