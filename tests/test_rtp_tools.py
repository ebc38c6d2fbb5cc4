"""The pcap writer the sipp scenarios play: G.711 audio, and RFC 4733 keys before it."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.sip.rtp_tools import EVENT_PT, FRAME, read_rtp, wav_to_pcap


def _header(pkt: bytes) -> tuple[int, bool, int, int]:
    b0, b1, seq, stamp, _ssrc = struct.unpack("!BBHII", pkt[:12])
    assert b0 == 0x80
    return b1 & 0x7F, bool(b1 & 0x80), seq, stamp


def _pcap_times(pcap: Path) -> list[float]:
    raw, pos, out = pcap.read_bytes(), 24, []
    while pos + 16 <= len(raw):
        sec, usec, incl = struct.unpack_from("<III", raw, pos)
        out.append(sec + usec / 1e6)
        pos += 16 + incl
    return out


def test_keys_go_as_rfc4733_events_before_the_audio(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    sf.write(str(wav), (np.sin(np.arange(8000) / 5) * 8000).astype(np.int16), 8000, subtype="PCM_16")
    pcap = wav_to_pcap(wav, tmp_path / "a.pcap", lead_s=0.5, digits="0#")
    packets = [_header(p) + (p[12:],) for p in read_rtp(pcap)]
    times = _pcap_times(pcap)
    assert [seq for _pt, _m, seq, _s, _p in packets] == list(range(len(packets)))
    events = [(i, p) for i, p in enumerate(packets) if p[0] == EVENT_PT]
    assert len(events) == 16  # 5 + 3 end packets per key
    for key, group in ((0, events[:8]), (11, events[8:])):
        stamps = {p[3] for _i, p in group}
        assert len(stamps) == 1  # one event, one timestamp
        payloads = [struct.unpack("!BBH", p[4]) for _i, p in group]
        assert all(ev == key for ev, _flags, _dur in payloads)
        assert [bool(flags & 0x80) for _ev, flags, _dur in payloads] == [False] * 5 + [True] * 3
        assert [dur for _ev, _flags, dur in payloads] == [160, 320, 480, 640, 800, 800, 800, 800]
        assert group[0][1][1] and not any(p[1] for _i, p in group[1:])  # marker on the first only
    first = events[0][0]
    assert first == 25 and times[first] == 0.5  # after the 0.5 s lead (25 packets)
    audio = [p for p in packets if p[0] == 0]
    assert len(audio) == 25 + 2 * 3 + 8000 // FRAME  # lead, a gap after each key, the WAV
    stamps = [p[3] for p in packets if p[0] == 0]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert times == sorted(times) and abs(times[-1] - (stamps[-1] / 8000)) < 1e-6  # paced by RTP time


def test_no_keys_plays_the_wav_as_before(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    sf.write(str(wav), np.zeros(1600, dtype=np.int16), 8000, subtype="PCM_16")
    packets = [_header(p) for p in read_rtp(wav_to_pcap(wav, tmp_path / "a.pcap", codec="PCMA"))]
    assert [(pt, m, seq, stamp) for pt, m, seq, stamp in packets] == [
        (8, i == 0, i, i * FRAME) for i in range(10)]
