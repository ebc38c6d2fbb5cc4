"""Shared parts of the live capacity benchmarks (bench_serve, bench_bridge): issue 14's measurement.

- ``EventClock``: subscribes to every call's ``events`` topic on the service's broker and stamps
  each message on arrival; the final-transcript latency of an utterance is from its
  ``speech.ended`` to the ``transcript.final`` that follows for the same call and party (both
  travel the same publisher and broker, so their delays cancel).
- ``pcap_wav``: the audio sipp's ``uac_pcap`` plays (PCMA in ``g711a.pcap``) as a WAV, with its
  speech share, so the recognizer alone can be timed on the very same audio.
- ``recognizer_alone``: CPU-s per audio second of the engine ``serve`` would load, in a process of
  its own (``python -m callcenter.capacity --audio``), and the engine-bound call limit it implies.
- ``worker_memory``: RSS/USS/PSS of each worker.
- ``sipp_last_stats`` / ``sipp_failures``: sipp's last ``-trace_stat`` row, and the kinds of
  failure it counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

PCAP = Path("/usr/share/sip-tester/g711a.pcap")
RATE = 8000
VOICE_DBFS = -40.0


def sipp_last_stats(stat_file: Path) -> dict[str, str]:
    """The last row of sipp's ``-trace_stat`` file (its totals); empty when there is none."""
    if not stat_file.exists():
        return {}
    with stat_file.open() as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    return rows[-1] if rows else {}


def sipp_failures(last: dict[str, str]) -> dict[str, str]:
    """Failed calls by kind (``FailedUnexpectedMessage``...) from a ``sipp_last_stats`` row."""
    return {k[:-3]: v for k, v in last.items()
            if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)" and str(v) not in ("", "0")}


def percentile(values: list[float], q: float) -> float:
    """``q`` in 0..1; NaN for no values."""
    if not values:
        return float("nan")
    return float(np.percentile(values, 100 * q))


def _alaw_table() -> np.ndarray:
    out = np.zeros(256, dtype=np.int16)
    for i in range(256):
        a = i ^ 0x55
        seg = (a & 0x70) >> 4
        t = (a & 0x0F) << 4
        t = t + 8 if seg == 0 else (t + 0x108) << (seg - 1)
        out[i] = t if a & 0x80 else -t
    return out


def pcap_wav(out: Path, pcap: Path = PCAP) -> tuple[Path, float, float]:
    """(wav path, seconds, speech share) of the PCMA RTP payloads in ``pcap`` (Ethernet/IPv4/UDP)."""
    data = pcap.read_bytes()
    off, payload = 24, bytearray()
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        pkt = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        ihl = (pkt[14] & 0x0F) * 4
        rtp = pkt[14 + ihl + 8 :]
        cc = rtp[0] & 0x0F
        payload += rtp[12 + 4 * cc :]
    pcm = _alaw_table()[np.frombuffer(bytes(payload), dtype=np.uint8)]
    sf.write(str(out), pcm, RATE, subtype="PCM_16")
    frame = RATE // 50
    n = len(pcm) // frame
    x = pcm[: n * frame].reshape(n, frame).astype(np.float64)
    dbfs = 20 * np.log10(np.sqrt(np.mean(x**2, axis=1)) / 32768 + 1e-12)
    return out, len(pcm) / RATE, float(np.mean(dbfs > VOICE_DBFS)) if n else 0.0


async def recognizer_alone(asr_json: str, wav: Path, timeout_s: float = 300) -> float:
    """CPU-s per audio second of the configured engine decoding ``wav`` (after a warm-up)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter.capacity", "--asr-json", asr_json, "--audio", str(wav),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(err.decode(errors="replace")[-400:])
    return float(out.decode().strip().splitlines()[-1])


THREADS = {"pjsip": "PJSIP thread (SIP, commands)", "media": "pjmedia I/O thread (RTP in, jitter buffer)",
           "pj-clock": "media clock (decode, bridge, ports, hand-off)",
           "loop": "event loop (frames, VAD, detectors, IVR, events, store)"}


class ThreadMeter:
    """CPU seconds of the workers' threads by name (``telephony.thread_name``; the main thread is
    ``loop``, unnamed ones ``other``), plus ``total`` (the processes, dead threads included).

    Sampled every ``interval`` s while running: the media clock thread only lives while a call
    has audio (pjsua closes the null sound device when idle), so its last sample before it
    ends is what counts."""

    def __init__(self, pids: list[int], interval: float = 0.5) -> None:
        self.pids = pids
        self.interval = interval
        self._base: dict[tuple[int, int], float] = {}
        self._last: dict[tuple[int, int], tuple[str, float]] = {}
        self._total0 = self._total()
        self._sample()
        self._base = {k: v for k, (_, v) in self._last.items()}

    def _total(self) -> float:
        import psutil

        out = 0.0
        for pid in self.pids:
            with contextlib.suppress(psutil.Error):
                t = psutil.Process(pid).cpu_times()
                out += t.user + t.system
        return out

    def _sample(self) -> None:
        import psutil

        for pid in self.pids:
            try:
                threads = psutil.Process(pid).threads()
            except psutil.Error:
                continue
            for th in threads:
                try:
                    name = Path(f"/proc/{pid}/task/{th.id}/comm").read_text().strip()
                except OSError:
                    continue
                name = "loop" if th.id == pid else name if name in THREADS else "other"
                self._last[(pid, th.id)] = (name, th.user_time + th.system_time)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._sample()

    def totals(self) -> dict[str, float]:
        """CPU seconds since this meter was made, by thread name; ``other`` includes what the
        named threads do not account for (threads that came and went between samples)."""
        self._sample()
        out: dict[str, float] = {}
        for key, (name, cpu) in self._last.items():
            out[name] = out.get(name, 0.0) + cpu - self._base.get(key, 0.0)
        out["total"] = self._total() - self._total0
        named = sum(v for k, v in out.items() if k not in ("total", "other"))
        out["other"] = max(0.0, out["total"] - named)
        return out


def worker_memory(pids: list[int]) -> list[dict[str, float]]:
    from callcenter.worker_load import memory_of

    return [memory_of(pid) for pid in pids]


@dataclass
class EventClock:
    """Every call's events as they arrive on the broker, stamped with ``time.monotonic()``."""

    host: str
    port: int
    prefix: str
    seen: list[tuple[float, str, str, str]] = field(default_factory=list)
    """(arrival, call id, type, party)."""
    _task: asyncio.Task[None] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 15)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        import aiomqtt

        from live.publisher import NO_DELAY

        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, socket_options=NO_DELAY) as client:
                    await client.subscribe(f"{self.prefix}/calls/+/events", qos=1)
                    self._ready.set()
                    async for msg in client.messages:
                        now = time.monotonic()
                        try:
                            ev: dict[str, Any] = json.loads(bytes(msg.payload))  # type: ignore[arg-type]
                        except (ValueError, TypeError):
                            continue
                        self.seen.append((now, str(ev.get("call_id", "")), str(ev.get("type", "")),
                                          str(ev.get("party") or "")))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def mark(self) -> int:
        return len(self.seen)

    def window(self, since: int) -> EventStats:
        """Latencies and counts of the events since ``mark()`` returned ``since``."""
        pending: dict[tuple[str, str], list[float]] = {}
        lat: list[float] = []
        ended = finals = 0
        calls = set()
        for t, call, kind, party in self.seen[since:]:
            calls.add(call)
            if kind == "speech.ended":
                ended += 1
                pending.setdefault((call, party), []).append(t)
            elif kind == "transcript.final":
                finals += 1
                q = pending.get((call, party))
                if q:
                    lat.append(t - q.pop(0))
        return EventStats(calls=len(calls), utterances=ended, finals=finals, latencies=lat)


@dataclass(frozen=True)
class EventStats:
    calls: int
    utterances: int
    """``speech.ended`` events (utterances the VAD closed)."""
    finals: int
    latencies: list[float]
    """speech.ended → transcript.final, seconds, per utterance that got a final."""

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.5)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 0.95)
