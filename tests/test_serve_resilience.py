"""``serve`` under attack and under a crash, for real: a sipp INVITE flood through the Kamailio
front, and a ``kill -9`` of a worker in the middle of a pjsua2 call.

What must hold: no worker dies of a flood (excess calls get a fast 503 with Retry-After from the
front) and a normal call is answered once it stops; a killed worker is logged, its caller gets a
BYE from the front, its call is stored with ``end_reason=worker_lost``, and a new worker takes
its place so the full capacity (2 workers x 4 calls) is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from callcenter.serve import Service, start_service, stop_service
from telephony.kamailio import kamailio_binary
from tests.conftest import have
from tests.sip.sipp import run_sipp
from tests.sip_tools import free_port
from tests.test_serve_calls import place_call, service_settings, stored, wait_record

pytestmark = [
    pytest.mark.sip,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
    pytest.mark.skipif(not have("sipp"), reason="sipp not installed (apt-get install sip-tester)"),
]

TOKEN = "t0ken-resilience"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("resilience")
    settings = service_settings(tmp, **{"console.enabled": True, "console.port": free_port(),
                                        "console.token": TOKEN, "store.api_enabled": False})
    svc = await start_service(settings, log_dir=tmp / "logs")
    try:
        yield svc
    finally:
        await stop_service(svc)


async def http_health(svc: Service) -> dict[str, Any]:
    url = f"http://127.0.0.1:{svc.settings.console.port}/api/health?token={TOKEN}"
    async with httpx.AsyncClient(timeout=10, follow_redirects=True) as client:
        r = await client.get(url)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def wait_for(check, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {timeout_s} s"
        await asyncio.sleep(0.2)


def responses_503(messages: str) -> list[str]:
    """Each 503 sipp received, as the message text."""
    return [b for b in re.split(r"\n(?=-{5,})", messages) if re.search(r"^SIP/2\.0 503 ", b, re.M)]


# -- 1. a flood ------------------------------------------------------------------------------------


async def test_invite_flood_gets_503_and_no_worker_dies(service: Service, tmp_path: Path) -> None:
    pids = [p.pid for p in service.workers]
    assert (await http_health(service))["status"] == "ok"
    flood = await run_sipp(service.settings.sip.port, tmp_path / "flood", builtin="uac", calls=300,
                           rate=100, duration_ms=2000, timeout_s=60)
    answered = flood.calls_with_status(200)
    refused = responses_503(flood.messages)
    print(f"flood: {len(answered)} answered, {len(refused)} refused with 503")
    assert answered, flood.stdout[-1500:]
    assert len(refused) >= 150  # the front absorbed the excess ...
    assert all(re.search(r"^Retry-After: \d+", b, re.M | re.I) for b in refused)  # ... politely
    # nothing timed out or failed inside (a worker may still decline one cleanly: 486/603)
    assert set(flood.statuses()) <= {100, 180, 183, 200, 486, 503, 603}, sorted(set(flood.statuses()))
    # no worker crashed or was restarted
    assert [p.pid for p in service.workers] == pids
    assert all(p.returncode is None for p in service.workers)
    health = await http_health(service)
    assert health["status"] == "ok" and all(w["restarts"] == 0 for w in health["workers"]), health
    # and a normal call is answered right after (the benchmark measures how soon)
    for attempt in range(20):
        after = await run_sipp(service.settings.sip.port, tmp_path / f"after{attempt}", builtin="uac",
                               calls=1, duration_ms=500, timeout_s=20)
        if after.returncode == 0:
            break
        if attempt == 0:
            assert service.front is not None
            print(await service.front.rpc("dlg.list"), service.worker_stats())
        await asyncio.sleep(1)
    print(f"normal call answered at attempt {attempt + 1}")
    assert after.returncode == 0 and len(after.calls_with_status(200)) == 1, after.errors[-1500:]


# -- 2. a worker killed mid-call --------------------------------------------------------------------


async def test_killed_worker_is_restarted_and_its_call_recorded(
    service: Service, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="callcenter.supervisor")
    await wait_for(lambda: all(s["active_calls"] == 0 for s in service.worker_stats()), 30, "workers idle")
    caller = asyncio.create_task(place_call(service.sip_uri, "--hangup-after", "40"))
    busy = await wait_for(lambda: [s for s in service.worker_stats() if s["active_calls"] >= 1], 30,
                          "a worker took the call")
    index, pid = busy[0]["index"], busy[0]["pid"]
    await asyncio.sleep(3)  # into the welcome prompt: events are spooled
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    res = await caller
    ended_after = time.monotonic() - started
    # the stats file never shows the dead pid as serving
    stats = json.loads((service.settings.data_dir / "workers" / f"worker{index}.json").read_text())
    assert stats["pid"] != pid or stats["state"] == "dead", stats
    assert res["answered"]
    assert res["hangup_by"] == "remote", res  # the front sent the caller a BYE ...
    assert ended_after < 20, ended_after  # ... long before the caller's own 40 s hang-up

    record = await wait_record(service, res["call_id"])
    assert record["end_reason"] == "worker_lost" and record["stored"], record
    assert record["events_recovered"] >= 2
    detail = stored(service, res["call_id"])
    assert detail is not None and detail.summary is not None
    assert detail.summary.end_reason == "worker_lost"
    types = [e["type"] for e in detail.events]
    assert types[0] == "call.started" and "playback.started" in types and types[-1] == "call.ended"
    assert not list((service.settings.data_dir / "active" / f"worker{index}").glob("*.jsonl"))

    died = [r for r in caplog.records if "died" in r.getMessage()]
    assert died and died[0].levelno == logging.ERROR and f"pid {pid}" in died[0].getMessage()

    # restarted on the same port, back in the dispatcher, stats show the new pid serving
    health = await wait_for(lambda: (h := service.health())["status"] == "ok" and h, 90, "health ok again")
    worker = health["workers"][index]
    assert worker["restarts"] == 1 and worker["last_exit"] == -signal.SIGKILL and worker["calls_lost"] == 1
    assert worker["pid"] != pid and service.workers[index].returncode is None
    stats = json.loads((service.settings.data_dir / "workers" / f"worker{index}.json").read_text())
    assert stats["pid"] == worker["pid"] and stats["state"] == "serving"
    assert (await http_health(service))["capacity_calls"] == 8
    # full capacity: 8 calls at once are all answered (4 on each worker)
    run = await run_sipp(service.settings.sip.port, tmp_path / "capacity", builtin="uac", calls=8, limit=8,
                         rate=50, duration_ms=3000, timeout_s=40)
    assert len(run.calls_with_status(200)) == 8, run.errors[-2000:]
    assert 503 not in run.statuses()


# -- 3. an orderly stop during a call ---------------------------------------------------------------


async def test_stop_during_a_call_sends_the_caller_a_bye_through_the_front(service: Service) -> None:
    """Workers hang up at SIGTERM; their BYEs follow the record-route, so the front stays up
    (closed to new calls) until they are done."""
    await wait_for(lambda: all(s["active_calls"] == 0 for s in service.worker_stats()), 30, "workers idle")
    caller = asyncio.create_task(place_call(service.sip_uri, "--hangup-after", "40"))
    await wait_for(lambda: any(s["active_calls"] >= 1 for s in service.worker_stats()), 30, "call taken")
    await asyncio.sleep(2)
    await stop_service(service)
    res = await caller
    assert res["answered"] and res["hangup_by"] == "remote", res
    record = await wait_record(service, res["call_id"], timeout_s=5)
    assert record["stored"] and record["end_reason"] != "worker_lost", record
