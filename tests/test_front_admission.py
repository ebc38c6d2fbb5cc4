"""``serve`` keeps the real Kamailio dispatcher off a worker that refuses new calls, and puts it
back when the worker admits again; OPTIONS probing must not undo it meanwhile. The worker is a
UDP responder answering the front's pings; its load is what its stats file would say."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from callcenter.remote_watch import dispatcher_states
from callcenter.settings import load_settings
from callcenter.supervisor import WorkerHealth
from callcenter.worker_load import FrontAdmission
from telephony.kamailio import KamailioFront, Worker, kamailio_binary
from tests.sip_tools import free_port
from tests.test_roles import OptionsResponder

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
]

HOST = "127.0.0.1"


async def flags_become(front: KamailioFront, uri: str, want: str, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        flags = dispatcher_states(await front.rpc("dispatcher.list")).get(uri, "")
        if flags.startswith(want):
            return flags
        assert time.monotonic() < deadline, f"{uri} flags {flags!r}, wanted {want}*"
        await asyncio.sleep(0.2)


async def test_overloaded_worker_leaves_dispatch_and_comes_back(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    port = free_port()
    transport, _ = await loop.create_datagram_endpoint(OptionsResponder, local_addr=(HOST, port))
    worker = Worker(HOST, port)
    front = KamailioFront(HOST, free_port(), [worker], tmp_path / "kamailio", transports=("udp",))
    stats: list[dict[str, Any]] = [{"index": 0, "pid": 4242, "load": {"admitting": True}}]
    health = WorkerHealth(0, port, 4242)
    svc = SimpleNamespace(front=front, settings=load_settings(overrides={"data_dir": str(tmp_path)}, environ={}),
                          worker_stats=lambda: stats, supervisor=SimpleNamespace(workers=[health]))
    admission = FrontAdmission(svc)  # type: ignore[arg-type]
    await front.start()
    try:
        await flags_become(front, worker.uri, "AP")
        await admission.sync()
        assert admission.out == set()  # admitting: nothing to do

        stats[0]["load"] = {"admitting": False}  # the worker's governor closed admission
        await admission.sync()
        assert admission.out == {0}
        await flags_become(front, worker.uri, "D")
        await asyncio.sleep(3)  # three probe rounds: a disabled destination stays disabled
        await flags_become(front, worker.uri, "D", timeout_s=0)

        stats[0]["load"] = {"admitting": True}
        await admission.sync()
        assert admission.out == set()
        await flags_become(front, worker.uri, "A")

        # A worker the supervisor holds as dead is the supervisor's business, not admission's.
        stats[0]["load"] = {"admitting": False}
        health.state = "dead"
        await admission.sync()
        assert admission.out == set()
        await flags_become(front, worker.uri, "A", timeout_s=0)
    finally:
        transport.close()
        await front.stop()
