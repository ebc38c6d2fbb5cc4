"""``serve`` with ``sip.workers = 0``: the worker count and the calls each worker admits come
from the capacity plan, and the console's ``/api/health`` shows the plan and each worker's load
and memory. (No recognizer here, so the plan rests on the per-call floor.)"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from callcenter.serve import start_service, stop_service
from telephony.kamailio import kamailio_binary
from tests.sip.sipp import run_sipp
from tests.sip_tools import free_port
from tests.test_serve_calls import service_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.sip,
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
]

TOKEN = "capacity-health-token"


async def test_auto_workers_follow_the_plan_and_health_shows_it(tmp_path) -> None:
    settings = service_settings(tmp_path, **{
        "sip.workers": 0, "asr.engine": "none", "capacity.cores": 2, "capacity.max_workers": 2, "capacity.floor_cpu_per_call": 0.04,
        "console.enabled": True, "console.port": free_port(), "console.token": TOKEN, "store.api_enabled": False,
    })
    svc = await start_service(settings, log_dir=tmp_path / "logs")
    try:
        assert svc.capacity is not None and len(svc.workers) == 2 and svc.front is not None
        url = f"http://127.0.0.1:{settings.console.port}/api/health?token={TOKEN}"
        async with httpx.AsyncClient(timeout=10, follow_redirects=True) as client:
            r = await client.get(url)
        assert r.status_code == 200, r.text
        health: dict[str, Any] = r.json()
    finally:
        await stop_service(svc)
    plan = health["capacity"]
    # 2 cores x 0.8 / 0.04 core per call = 40 calls = 10 workers, capped at 2
    assert plan == {"cores": 2, "asr_cpu_per_audio_s": 0.0, "cost_source": "no recognizer", "core_per_call": 0.04,
                    "calls": 40, "slots_per_worker": 4, "workers": 2, "capped": True,
                    "calls_per_worker": 4, "floor_cpu_per_call": 0.04, "floor_source": "configured"}, plan
    assert health["capacity_calls"] == 8
    assert [w["index"] for w in health["load"]] == [0, 1] and health["workers_admitting"] == 2
    for worker in health["load"]:
        assert worker["state"] == "normal" and worker["admitting"] and worker["prosody"], worker
        assert 0 < worker["uss_mb"] <= worker["rss_mb"], worker  # memory of each worker, measured


async def test_calls_beyond_the_plan_get_503_at_the_front(tmp_path) -> None:
    """A plan of 5 calls in 2 workers admits 3 per worker: of 8 real calls placed at once 6 are
    answered and the other 2 get 503 with Retry-After, rather than a worker taking all 4 of its
    slots and every call's analysis slowing down."""
    settings = service_settings(tmp_path, **{
        "sip.workers": 0, "asr.engine": "none", "capacity.cores": 2, "capacity.floor_cpu_per_call": 0.3,
        "console.enabled": True, "console.port": free_port(), "console.token": TOKEN, "store.api_enabled": False,
    })
    svc = await start_service(settings, log_dir=tmp_path / "logs")
    try:
        assert svc.capacity is not None and (svc.capacity.calls, svc.capacity.workers) == (5, 2)
        assert svc.calls_per_worker == 3 and len(svc.workers) == 2
        run = await run_sipp(settings.sip.port, tmp_path / "sipp", builtin="uac", calls=8, limit=8, rate=50,
                             duration_ms=4000, timeout_s=40)
        url = f"http://127.0.0.1:{settings.console.port}/api/health?token={TOKEN}"
        async with httpx.AsyncClient(timeout=10, follow_redirects=True) as client:
            health = (await client.get(url)).json()
    finally:
        await stop_service(svc)
    answered = run.calls_with_status(200)
    refused = [b for b in re.split(r"\n(?=-{5,})", run.messages) if re.search(r"^SIP/2\.0 503 ", b, re.M)]
    assert len(answered) == 6, run.stdout[-1500:]
    refused_calls = {m.group(1) for b in refused if (m := re.search(r"^Call-ID: *(\S+)", b, re.M | re.I))}
    assert len(refused_calls) == 2 and all(re.search(r"^Retry-After: \d+", b, re.M | re.I) for b in refused), refused
    assert health["capacity"]["calls_per_worker"] == 3 and health["capacity_calls"] == 6
