"""The endpoint against sipp: media and RFC 4733 from pcap, limits, rejects and bad input."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from callcenter.settings import SipSettings
from speech.events import DtmfDigit
from speech.frames import AudioFrame
from telephony import SipEndpoint
from telephony.items import CallFailed, HoldChanged, LegEnded
from telephony.net import free_port
from tests.sip.sipp import have_sipp, refused_offer_scenario, run_sipp

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.sip, pytest.mark.skipif(not have_sipp(), reason="sipp (sip-tester) not installed")]


@pytest.fixture
async def endpoint(tmp_path):
    ep = SipEndpoint(SipSettings(), port=free_port(), record_dir=tmp_path / "rec", name="ivr")
    await ep.start()
    yield ep
    await ep.stop()


async def collect(leg, timeout_s: float = 20.0) -> list:
    items = []
    async with asyncio.timeout(timeout_s):
        while True:
            item = await leg.inbox.get()
            items.append(item)
            if isinstance(item, LegEnded):
                return items


async def accept_all(endpoint, n: int) -> list:
    legs = []
    with contextlib.suppress(TimeoutError):
        for _ in range(n):
            legs.append(await asyncio.wait_for(endpoint.accept(), 8))
    return legs


def options_request(port: int, transport: str, local_port: int, branch: str) -> bytes:
    return (
        f"OPTIONS sip:ivr@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{local_port};branch=z9hG4bK{branch}\r\n"
        f"From: <sip:probe@127.0.0.1>;tag={branch}\r\nTo: <sip:ivr@127.0.0.1:{port}>\r\n"
        f"Call-ID: {branch}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def options_udp(port: int, branch: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(3)
        s.sendto(options_request(port, "UDP", s.getsockname()[1], branch), ("127.0.0.1", port))
        return s.recvfrom(65535)[0].decode(errors="replace")


def options_tcp(port: int, branch: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(options_request(port, "TCP", s.getsockname()[1], branch))
        return s.recv(65535).decode(errors="replace")


async def test_sipp_uac_without_rtp_gets_silence_frames_and_ends_cleanly(endpoint, tmp_path):
    """No RTP from the caller: the bridge still clocks frames (silence) and the call is released."""
    sipp = asyncio.create_task(run_sipp(endpoint.port, tmp_path / "uac", builtin="uac", duration_ms=1500, timeout_s=15))
    leg = await asyncio.wait_for(endpoint.accept(), 10)
    items = await collect(leg)
    run = await sipp
    assert run.returncode == 0, run.errors
    frames = [i for i in items if isinstance(i, AudioFrame)]
    assert len(frames) >= 50  # >= 1 s of frames although the caller sent no RTP
    assert max(np.abs(f.samples()).max() for f in frames) < 100
    assert items[-1].status == 200 and endpoint.active_calls == 0


@pytest.mark.slow
async def test_sipp_pcap_media_and_rfc4733_digit(endpoint, tmp_path):
    sipp = asyncio.create_task(run_sipp(endpoint.port, tmp_path / "pcap", builtin="uac_pcap", timeout_s=25))
    leg = await asyncio.wait_for(endpoint.accept(), 10)
    items = await collect(leg, 25)
    run = await sipp
    assert run.returncode == 0, run.errors
    assert leg.codec.startswith("PCMA")
    frames = [i for i in items if isinstance(i, AudioFrame)]
    rms = np.array([np.sqrt(np.mean(f.floats() ** 2)) for f in frames])
    assert (20 * np.log10(rms + 1e-9) > -40).sum() > 100  # > 2 s of speech-level frames
    digits = [i for i in items if isinstance(i, DtmfDigit)]
    assert [d.digit for d in digits] == ["1"] and digits[0].source == "rfc4733"
    assert digits[0].t > 1.0
    # after the digit the caller sends no RTP for ~1 s: the bridge keeps clocking silent frames
    after = [f for f in frames if f.timestamp > digits[0].t + 0.4]
    assert len(after) >= 20
    assert max(np.abs(f.samples()).max() for f in after[-10:]) < 100
    assert endpoint.active_calls == 0


@pytest.mark.slow
async def test_fifth_concurrent_call_gets_486(endpoint, tmp_path):
    sipp = asyncio.create_task(run_sipp(endpoint.port, tmp_path / "five", builtin="uac", calls=5, limit=5,
                                        rate=20, duration_ms=2500, timeout_s=20))
    legs = await accept_all(endpoint, 5)
    run = await sipp
    assert len(legs) == 4
    assert 486 in run.statuses(), run.errors[-2000:]
    assert len(run.calls_with_status(486)) == 1, run.messages[-3000:]
    for leg in legs:
        await asyncio.wait_for(leg.wait_ended(), 10)
    assert endpoint.active_calls == 0


@pytest.mark.parametrize("scenario", ["offer_gsm_only.xml", "offer_unknown_dynamic.xml"])
async def test_offer_without_common_codec_gets_488(endpoint, tmp_path, scenario):
    run = await run_sipp(endpoint.port, tmp_path / "488", scenario=scenario, timeout_s=10)
    assert run.returncode == 0, run.errors
    assert 488 in run.statuses()
    assert endpoint.active_calls == 0


async def test_bye_for_unknown_dialog_gets_481(endpoint, tmp_path):
    run = await run_sipp(endpoint.port, tmp_path / "481", scenario="bye_unknown_dialog.xml", timeout_s=10)
    assert run.returncode == 0, run.errors
    assert 481 in run.statuses()


async def test_cancel_before_answer_leaks_no_call(endpoint, tmp_path):
    run = await run_sipp(endpoint.port, tmp_path / "cancel", scenario="cancel_while_ringing.xml", timeout_s=10)
    assert run.returncode == 0, run.errors
    assert 487 in run.statuses()
    await asyncio.sleep(0.2)
    assert endpoint.active_calls == 0
    # the cancelled call is skipped: the next accept() returns the next real call
    sipp = asyncio.create_task(run_sipp(endpoint.port, tmp_path / "after", builtin="uac", duration_ms=300, timeout_s=10))
    leg = await asyncio.wait_for(endpoint.accept(), 10)
    assert leg.ended is None
    await collect(leg)
    assert (await sipp).returncode == 0


async def test_garbage_over_udp_and_tcp_does_not_break_the_endpoint(endpoint, tmp_path):
    junk = [b"", b"\x00\xff" * 700, b"INVITE\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n",
            b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 99999\r\n\r\nabc", bytes(range(256)) * 4,
            b"BYE sip:a@b SIP/2.0\r\nVia: nonsense\r\nCall-ID:\r\n\r\n"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for blob in junk:
            s.sendto(blob, ("127.0.0.1", endpoint.port))
    for blob in junk:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", endpoint.port), timeout=2) as s:
            s.sendall(blob)
    await asyncio.sleep(0.3)
    udp = await asyncio.to_thread(options_udp, endpoint.port, "probeudp1")
    tcp = await asyncio.to_thread(options_tcp, endpoint.port, "probetcp1")
    assert udp.startswith("SIP/2.0 200") and tcp.startswith("SIP/2.0 200")
    sipp = asyncio.create_task(run_sipp(endpoint.port, tmp_path / "after", builtin="uac", duration_ms=300, timeout_s=10))
    leg = await asyncio.wait_for(endpoint.accept(), 10)
    await collect(leg)
    assert (await sipp).returncode == 0


async def test_call_over_tcp(endpoint, tmp_path):
    sipp = asyncio.create_task(run_sipp(endpoint.port, tmp_path / "tcp", builtin="uac", transport="t1",
                                        duration_ms=500, timeout_s=10))
    leg = await asyncio.wait_for(endpoint.accept(), 10)
    items = await collect(leg)
    assert (await sipp).returncode == 0
    assert items[-1].status == 200


async def test_outbound_call_to_sipp_uas_with_dtmf_and_hold(endpoint, tmp_path):
    port = free_port()
    uas = asyncio.create_task(run_sipp(port, tmp_path / "uas", scenario="uas_hold_unhold.xml",
                                       timeout_s=15, local_port=port))
    await asyncio.sleep(0.5)
    leg = await endpoint.place_call(f"sip:uas@127.0.0.1:{port}")
    assert leg.codec and endpoint.active_calls == 1
    await leg.send_dtmf("12")
    await leg.hold()
    await asyncio.sleep(0.5)
    await leg.unhold()
    await asyncio.sleep(0.3)
    await leg.hangup()
    run = await uas
    assert run.returncode == 0, run.errors
    holds = [i for i in leg.inbox._queue if isinstance(i, HoldChanged)]  # noqa: SLF001
    assert [h.held for h in holds] == [True, False]
    assert endpoint.active_calls == 0


async def test_outbound_call_rejected_raises_call_failed(endpoint, tmp_path):
    with pytest.raises(CallFailed):
        await endpoint.place_call(f"sip:nobody@127.0.0.1:{free_port()}", answer_timeout_s=1.5)


async def test_remote_hold_unhold_then_blind_transfer(endpoint, tmp_path):
    sipp = asyncio.create_task(run_sipp(endpoint.port, tmp_path / "hold", scenario="uac_hold_refer.xml", timeout_s=15))
    leg = await asyncio.wait_for(endpoint.accept(), 10)
    holds = []
    async with asyncio.timeout(10):
        while len(holds) < 2:
            item = await leg.inbox.get()
            if isinstance(item, HoldChanged):
                holds.append(item)
    assert [(h.held, h.by) for h in holds] == [(True, "remote"), (False, "remote")]
    await leg.transfer("sip:agent@127.0.0.1:5999")
    ended = await asyncio.wait_for(leg.wait_ended(), 10)
    run = await sipp
    assert run.returncode == 0, run.errors[-2000:]
    assert leg.transfer_status == 200 and ended is not None
    assert "Refer-To: <sip:agent@127.0.0.1:5999>" in run.messages or "sip:agent@127.0.0.1:5999" in run.messages
    assert endpoint.active_calls == 0


async def test_stop_hangs_up_live_calls(tmp_path):
    ep = SipEndpoint(SipSettings(), port=free_port(), name="ivr")
    await ep.start()
    sipp = asyncio.create_task(run_sipp(ep.port, tmp_path / "long", builtin="uac", duration_ms=10000, timeout_s=15))
    leg = await asyncio.wait_for(ep.accept(), 10)
    await asyncio.sleep(0.3)
    await ep.stop()
    await ep.stop()  # idempotent
    assert leg.ended is not None and ep.active_calls == 0
    run = await sipp
    assert "BYE sip:" in run.messages  # the caller was hung up on, not left dangling
    with pytest.raises(RuntimeError, match="ended"):
        await leg.send_dtmf("1")


@pytest.mark.parametrize(("payload", "size", "sdp", "expected"), [
    ("97 X-NOSUCH/8000", 5000, True, {488, 513}),  # pjsua's own 488 may come first
    ("97 X-NOSUCH/8000", 12000, True, {488, 513}),
    ("0 PCMU/8000", 6000, True, {513}),  # cut at 4000 bytes: the SDP read is not the one sent
    ("0 PCMU/8000", 0, False, {488}),  # no offer: answering 200 would make one of our own
])
async def test_unreadable_or_oversized_offer_never_gets_200(endpoint, tmp_path, payload, size, sdp, expected):
    scenario = refused_offer_scenario(tmp_path / "offer.xml", payload=payload, size=size, sdp=sdp)
    run = await run_sipp(endpoint.port, tmp_path / "run", scenario=str(scenario), timeout_s=10)
    statuses = set(run.statuses())
    assert 200 not in statuses, run.messages[-2000:]
    assert statuses & expected, run.messages[-2000:]
    assert run.returncode == 0, run.errors[-2000:]
    await asyncio.sleep(0.2)
    assert endpoint.active_calls == 0


@pytest.mark.slow
async def test_invite_flood_is_refused_early_and_the_endpoint_survives(tmp_path):
    """200 INVITEs/s of 2 s calls against one endpoint (4 slots): before, pjlib aborted the
    process (``pj_ioqueue_register_sock2: ... free_list``) within one or two such runs."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.sip.answerer", str(port), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        assert (await asyncio.wait_for(proc.stdout.readline(), 15)).strip() == b"ready"
        for i in range(2):
            flood = await run_sipp(port, tmp_path / f"flood{i}", builtin="uac", calls=600, rate=200,
                                   duration_ms=2000, timeout_s=25)
            assert proc.returncode is None, (await proc.stderr.read()).decode(errors="replace")[-3000:]
            assert {486, 503} & set(flood.statuses())  # the excess was refused, not dropped
            assert 200 in flood.statuses()  # and up to 4 calls at a time were answered
        await asyncio.sleep(0.5)
        after = await run_sipp(port, tmp_path / "after", builtin="uac", duration_ms=500, timeout_s=15)
        assert after.returncode == 0, after.errors[-2000:]
    finally:
        if proc.returncode is None:
            proc.terminate()
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    result = json.loads(out.decode().splitlines()[-1])
    assert result["answered"] >= 5
