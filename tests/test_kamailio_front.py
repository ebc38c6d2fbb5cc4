"""The SIP front for real: Kamailio's dispatcher spreading sipp calls over sipp workers."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from telephony.kamailio import FrontError, KamailioFront, Worker, kamailio_binary, render_config
from tests.conftest import have
from tests.sip_tools import free_port, sipp_counts, sipp_uac, sipp_uas

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
    pytest.mark.skipif(not have("sipp"), reason="sipp not installed (apt-get install sip-tester)"),
]


def test_generated_config_is_accepted_by_kamailio(tmp_path: Path) -> None:
    front = KamailioFront("127.0.0.1", free_port(), [Worker("127.0.0.1", free_port())], tmp_path)
    front.write_config()
    asyncio.run(front.check())
    assert "ds_select_dst" in render_config("127.0.0.1", 5060, tmp_path)


def test_bad_config_is_rejected_with_the_reason(tmp_path: Path) -> None:
    front = KamailioFront("127.0.0.1", free_port(), [Worker("127.0.0.1", free_port())], tmp_path)
    front.write_config()
    front.config_path.write_text(front.config_path.read_text().replace("request_route {", "request_route {{"))
    with pytest.raises(FrontError, match="rejected"):
        asyncio.run(front.check())


async def test_calls_are_spread_over_workers_and_survive_a_dead_one(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    uas = [sipp_uas(p, tmp_path) for p in ports]
    front_port = free_port()
    front = KamailioFront("127.0.0.1", front_port, [Worker("127.0.0.1", p) for p in ports], tmp_path,
                          transports=("udp",), probing=False)
    try:
        await asyncio.sleep(0.5)
        await front.start()
        res = await asyncio.to_thread(sipp_uac, f"127.0.0.1:{front_port}", tmp_path, calls=30, rate=10)
        counts = sipp_counts(tmp_path / "uac.csv")
        assert counts["success"] == 30, res.stdout[-2000:]
        # kill one worker: its share fails over to the others after the branch timeout
        uas[0].send_signal(signal.SIGKILL)
        uas[0].wait()
        (tmp_path / "uac.csv").unlink()
        await asyncio.to_thread(sipp_uac, f"127.0.0.1:{front_port}", tmp_path, calls=9, rate=10)
        counts = sipp_counts(tmp_path / "uac.csv")
        assert counts["success"] == 9
    finally:
        await front.stop()
        for p in uas:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=5)
    per_worker = [sipp_counts(tmp_path / f"uas{p}.csv")["incoming"] for p in ports[1:]]
    # round robin: each live worker took a fair share of the 39 calls
    assert all(n >= 8 for n in per_worker), per_worker
