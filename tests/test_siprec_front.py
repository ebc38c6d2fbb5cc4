"""The front and SIPREC: ``siprec`` leaves Require on the way to a worker, ``+sip.srs`` joins the answer's
Contact, and a realistic recording INVITE fits under the front's size limit.

The "worker" is a UDP socket in the test that records what the front relays and answers 200, so
the test sees exactly the bytes a worker would get.
"""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import pytest

from telephony.kamailio import FrontLimits, KamailioFront, Worker, kamailio_binary
from tests.sip.siprec import BOUNDARY, CALLER, SiprecCall, metadata_xml
from tests.sip_tools import free_port

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
]

DATA = Path(__file__).resolve().parent / "data" / "siprec"


def invite(front_port: int, local_port: int, require: str | None, *, siprec: bool = True, n: int = 1) -> bytes:
    """A recording-session INVITE like a PBX's (``siprec=False``: a plain call)."""
    sdp = ("v=0\r\no=SRC 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio 40000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\nm=audio 40002 RTP/AVP 0\r\na=label:2\r\na=sendonly\r\n")
    if siprec:
        from tests.sip.siprec import ALICE

        xml = metadata_xml(CALLER, ALICE, 2)
        body = (f"--{BOUNDARY}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--{BOUNDARY}\r\n"
                f"Content-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n"
                f"{xml}\r\n--{BOUNDARY}--\r\n")
        ctype, contact = f"multipart/mixed;boundary={BOUNDARY}", f"<sip:src@127.0.0.1:{local_port}>;+sip.src"
    else:
        body, ctype, contact = sdp, "application/sdp", f"<sip:src@127.0.0.1:{local_port}>"
    head = (f"INVITE sip:rec@127.0.0.1:{front_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};rport;branch=z9hG4bK-siprec-{n}\r\n"
            f"From: <sip:src@127.0.0.1>;tag=src{n}\r\nTo: <sip:rec@127.0.0.1>\r\n"
            f"Call-ID: siprec-front-{n}@127.0.0.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: {contact}\r\n"
            + (f"Require: {require}\r\n" if require is not None else "")
            + f"Content-Type: {ctype}\r\nContent-Length: {len(body.encode())}\r\n\r\n")
    return (head + body).encode()


def answer(req: str, port: int) -> bytes:
    """200 OK from the fake worker: the request's Via, Record-Route, From, To (+tag), Call-ID, CSeq."""
    head = req.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    keep = [h for h in head if re.match(r"(Via|Record-Route|From|Call-ID|CSeq):", h, re.I)]
    to = next(h for h in head if h.lower().startswith("to:"))
    return ("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + f"\r\n{to};tag=w1\r\n"
            f"Contact: <sip:worker@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n").encode()


async def exchange(front_port: int, worker: socket.socket, msg: bytes, local: socket.socket) -> tuple[str, str]:
    """Send ``msg`` to the front; the request the worker got, and the final answer we got."""
    local.sendto(msg, ("127.0.0.1", front_port))
    loop = asyncio.get_running_loop()
    req = ""
    while not req.startswith("INVITE"):
        req = (await asyncio.wait_for(loop.sock_recv(worker, 65535), 5)).decode()
    worker.sendto(answer(req, worker.getsockname()[1]), ("127.0.0.1", front_port))
    resp = ""
    while not resp.startswith("SIP/2.0 2"):
        resp = (await asyncio.wait_for(loop.sock_recv(local, 65535), 5)).decode()
    return req, resp


def header(msg: str, name: str) -> list[str]:
    return re.findall(rf"^{name}:[ \t]*(.*?)\r?$", msg.split("\r\n\r\n", 1)[0], re.M | re.I)


async def test_front_strips_siprec_from_require_and_marks_the_srs_contact(tmp_path: Path) -> None:
    worker, local = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (worker, local):
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
    front_port = free_port()
    front = KamailioFront("127.0.0.1", front_port, [Worker("127.0.0.1", worker.getsockname()[1])], tmp_path,
                          transports=("udp",), probing=False)
    lport = local.getsockname()[1]
    try:
        await front.start()
        cases = [("siprec", [], True), ("timer, siprec", ["timer"], True), ("siprec,100rel", ["100rel"], True),
                 (None, [], False)]
        for n, (require, left, is_rs) in enumerate(cases, start=1):
            req, resp = await exchange(front_port, worker, invite(front_port, lport, require, siprec=is_rs, n=n),
                                       local)
            assert [h.strip() for h in header(req, "Require")] == left, (require, header(req, "Require"))
            assert "siprec" not in "".join(header(req, "Require")).lower()
            contact = header(resp, "Contact")
            assert len(contact) == 1
            assert contact[0].endswith(";+sip.srs") == (require is not None), contact
            assert "multipart/mixed" in req or not is_rs  # the body goes through untouched
    finally:
        await front.stop()
        worker.close()
        local.close()


def test_a_realistic_recording_invite_fits_the_front_limit() -> None:
    """Two participants with names and all stream associations, as sipp sends it (~1.8 KB), and
    the RFC 7866 example (~2.4 KB), stay under ``max_message_bytes`` with the front's Via and
    Record-Route added (~200 bytes); the limit leaves room for about four participants."""
    limit = FrontLimits().max_message_bytes
    two = invite(5060, 5061, "siprec")
    rfc = (DATA / "rfc7866_invite.txt").read_bytes().replace(b"\n", b"\r\n")
    assert len(two) + 200 < limit and len(rfc) + 200 < limit, (len(two), len(rfc), limit)
    call = SiprecCall()
    assert call.codecs == ("PCMU", "PCMU")
    print(f"SIPREC INVITE sizes: two-participant {len(two)} B, RFC 7866 example {len(rfc)} B, limit {limit} B")
