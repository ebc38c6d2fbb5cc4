"""G.711 RTP for sipp: pcap files from WAVs (``play_pcap_audio``), and a paced RTP sender.

sipp 3.6.1 plays a pcap only to the *first* ``m=audio`` of the answer (``play_pcap_video`` goes to
an ``m=video`` port, which a SIPREC answer does not have), so a SIPREC scenario plays the second
stream with ``<exec>`` running this module's sender to the port it read from our answer.

    python -m tests.sip.rtp_tools send FILE.pcap HOST PORT   # the RTP payloads, every 20 ms
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 8000
FRAME = 160
"""Samples per 20 ms packet."""
PT = {"PCMU": 0, "PCMA": 8}


def ulaw(pcm: np.ndarray) -> bytes:
    """G.711 µ-law of 16-bit samples (ITU-T G.711, bias 0x84)."""
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exp = np.floor(np.log2(mag)).astype(np.int32) - 7
    mant = (mag >> (exp + 3)) & 0x0F
    return (~(sign | (exp << 4) | mant) & 0xFF).astype(np.uint8).tobytes()


def alaw(pcm: np.ndarray) -> bytes:
    """G.711 A-law of 16-bit samples."""
    x = pcm.astype(np.int32) >> 3
    sign = np.where(x >= 0, 0x80, 0)
    mag = np.minimum(np.abs(x), 0xFFF)
    exp = np.where(mag < 32, 0, np.floor(np.log2(np.maximum(mag, 1))).astype(np.int32) - 4)
    mant = np.where(exp == 0, mag >> 1, mag >> exp) & 0x0F
    return ((sign | (exp << 4) | mant) ^ 0x55).astype(np.uint8).tobytes()


EVENT_PT = 101
"""RTP payload type of RFC 4733 telephone events (as the scenarios' SDP offers them)."""
EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


def wav_to_pcap(wav: Path, out: Path, *, codec: str = "PCMU", ssrc: int = 0x1234, lead_s: float = 0.0,
                max_s: float | None = None, digits: str = "") -> Path:
    """An Ethernet/IPv4/UDP pcap of 20 ms G.711 RTP packets from a mono 8 kHz WAV (``lead_s``
    of silence first, at most ``max_s`` seconds in all). ``digits``: keys sent as RFC 4733
    events (100 ms each, 60 ms of silence after each) after ``lead_s``, before the WAV's audio."""
    data, rate = sf.read(str(wav), dtype="int16", always_2d=True)
    if rate != RATE:
        raise ValueError(f"{wav}: {rate} Hz, want {RATE}")
    encode = ulaw if codec == "PCMU" else alaw
    pt = PT[codec]
    lead = np.zeros(int(lead_s * RATE), dtype=np.int16)
    gap = np.zeros(3 * FRAME, dtype=np.int16)
    packets: list[tuple[int, int, int, bool, bytes]] = []  # (sent at, RTP timestamp: samples; pt, marker, payload)
    clock = 0

    def audio(pcm: np.ndarray) -> None:
        nonlocal clock
        pcm = np.concatenate([pcm, np.zeros((-len(pcm)) % FRAME, dtype=np.int16)])
        for i in range(len(pcm) // FRAME):
            packets.append((clock, clock, pt, not packets, encode(pcm[i * FRAME:(i + 1) * FRAME])))
            clock += FRAME

    audio(lead)
    for key in digits:
        start, event = clock, EVENTS[key]
        for k in range(5):  # every packet of an event carries its start as timestamp (RFC 4733 2.3.1)
            packets.append((start + k * FRAME, start, EVENT_PT, k == 0, struct.pack("!BBH", event, 10, (k + 1) * FRAME)))
        for _ in range(3):  # the end packet, sent three times (RFC 4733 2.5.1.4)
            packets.append((start + 5 * FRAME, start, EVENT_PT, False, struct.pack("!BBH", event, 0x80 | 10, 5 * FRAME)))
        clock = start + 5 * FRAME
        audio(gap)
    audio(data[:, 0])
    if max_s is not None:
        packets = [p for p in packets if p[0] < max_s * RATE]
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for seq, (at, stamp, ptype, marker, payload) in enumerate(packets):
            rtp = struct.pack("!BBHII", 0x80, ptype | (0x80 if marker else 0), seq & 0xFFFF, stamp, ssrc) + payload
            udp = struct.pack("!HHHH", 40000, 40000, 8 + len(rtp), 0) + rtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                             socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1")) + udp
            frame = b"\x00" * 12 + b"\x08\x00" + ip
            f.write(struct.pack("<IIII", at // RATE, (at % RATE) * (1_000_000 // RATE), len(frame), len(frame)))
            f.write(frame)
    return out


def read_rtp(pcap: Path) -> list[bytes]:
    """The RTP packets of a pcap written by ``wav_to_pcap`` (Ethernet, IPv4, UDP)."""
    raw = pcap.read_bytes()
    pos, out = 24, []
    while pos + 16 <= len(raw):
        incl = struct.unpack_from("<I", raw, pos + 8)[0]
        frame = raw[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        out.append(frame[14 + 20 + 8:])
    return out


def send(pcap: Path, host: str, port: int) -> int:
    """Send the pcap's RTP packets to ``host:port`` every 20 ms (on a steady schedule); stop as
    soon as the port is closed (the call ended: ICMP port unreachable on a connected socket),
    so a sender never outlives its call into another one that reuses the port."""
    packets = read_rtp(pcap)
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        start = time.monotonic()
        for i, pkt in enumerate(packets):
            delay = start + i * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                s.send(pkt)
            except ConnectionRefusedError:
                break
            sent += 1
    return sent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rtp_tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("pcap", type=Path)
    s.add_argument("host")
    s.add_argument("port", type=int)
    args = p.parse_args(argv)
    n = send(args.pcap, args.host, args.port)
    print(f"sent {n} packets", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
