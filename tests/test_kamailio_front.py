"""The SIP front for real: Kamailio's dispatcher spreading sipp calls over sipp workers."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import pytest

from telephony.kamailio import (
    FrontError,
    FrontLimits,
    KamailioFront,
    Worker,
    kamailio_binary,
    render_config,
)
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


# -- admission control -----------------------------------------------------------------------------


def _invite(size: int, transport: str, front_port: int, local_port: int) -> bytes:
    """An INVITE of about ``size`` bytes (an SDP padded with attributes, offering an unknown codec)."""
    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio 40000 RTP/AVP 99\r\na=rtpmap:99 FOO/8000\r\n")
    sdp += "".join(f"a=x-pad:{'y' * 80}\r\n" for _ in range(max(0, size - 600) // 90))
    return (f"INVITE sip:ivr@127.0.0.1:{front_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport.upper()} 127.0.0.1:{local_port};branch=z9hG4bK-big{size}{transport}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:big@127.0.0.1>;tag=b{size}\r\nTo: <sip:ivr@127.0.0.1:{front_port}>\r\n"
            f"Call-ID: big-{size}-{transport}@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:big@127.0.0.1:{local_port}>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}").encode()


def _first_line(size: int, transport: str, front_port: int) -> str:
    if transport == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(3)
            s.sendto(_invite(size, "udp", front_port, s.getsockname()[1]), ("127.0.0.1", front_port))
            return s.recv(65535).split(b"\r\n")[0].decode()
    with socket.create_connection(("127.0.0.1", front_port), timeout=3) as s:
        s.sendall(_invite(size, "tcp", front_port, s.getsockname()[1]))
        return s.recv(65535).split(b"\r\n")[0].decode()


async def test_oversized_requests_get_513_over_udp_and_tcp(tmp_path: Path) -> None:
    worker_port = free_port()
    uas = sipp_uas(worker_port, tmp_path)
    front_port = free_port()
    front = KamailioFront("127.0.0.1", front_port, [Worker("127.0.0.1", worker_port)], tmp_path, probing=False)
    try:
        await front.start()
        for size, transport in ((5000, "udp"), (12000, "udp"), (16000, "tcp"), (65000, "tcp")):
            line = await asyncio.to_thread(_first_line, size, transport, front_port)
            assert line == "SIP/2.0 513 Message Too Large", (size, transport, line)
    finally:
        await front.stop()
        uas.terminate()
        uas.wait(timeout=5)
    # none of them reached the worker
    assert sipp_counts(tmp_path / f"uas{worker_port}.csv")["incoming"] == 0


async def test_calls_beyond_worker_capacity_get_503_with_retry_after(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(2)]
    uas = [sipp_uas(p, tmp_path) for p in ports]
    front_port = free_port()
    front = KamailioFront("127.0.0.1", front_port, [Worker("127.0.0.1", p) for p in ports], tmp_path,
                          transports=("udp",), probing=False, limits=FrontLimits(max_calls_per_worker=3))
    try:
        await asyncio.sleep(0.5)
        await front.start()
        # 10 calls of 3 s at once: 2 workers x 3 are answered, the other 4 refused at once
        res = await asyncio.to_thread(sipp_uac, f"127.0.0.1:{front_port}", tmp_path, calls=10, rate=50,
                                      extra=["-d", "3000", "-l", "10", "-trace_err", "-error_file",
                                             str(tmp_path / "err.log")])
        counts = sipp_counts(tmp_path / "uac.csv")
        errors = (tmp_path / "err.log").read_text()
        assert counts["success"] == 6 and counts["failed"] == 4, res.stdout[-1500:]
        refused = [b for b in errors.split("received 'SIP/2.0 ")[1:] if b.startswith("503")]
        assert len(refused) == 4 and all("Retry-After: 2" in b for b in refused), errors[-1500:]
        # the dialogs ended with their BYEs: the capacity is free again
        assert "ongoing: 0" in await front.rpc("dlg.stats_active")
        (tmp_path / "uac.csv").unlink()
        await asyncio.to_thread(sipp_uac, f"127.0.0.1:{front_port}", tmp_path, calls=6, rate=50,
                                extra=["-d", "1000", "-l", "6"])
        assert sipp_counts(tmp_path / "uac.csv")["success"] == 6
    finally:
        await front.stop()
        for p in uas:
            p.terminate()
            p.wait(timeout=5)
    per_worker = [sipp_counts(tmp_path / f"uas{p}.csv")["incoming"] for p in ports]
    assert per_worker == [6, 6], per_worker  # 3 + 3 on each, nothing beyond its limit
