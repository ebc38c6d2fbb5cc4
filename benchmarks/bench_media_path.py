"""Where a live call's CPU goes on the telephony side, per call-second (issue 14, part 3).

Each step of a worker's per-frame path, timed in isolation on real objects (a pjsua2
``ByteVector`` as the media port sees it, the real ``CallLeg``, ``StereoRecorder``, ``LoopFeed``)
for as many 20 ms frames as one call sends in ``SECONDS`` seconds, in process CPU time. The
figure is CPU-s per call-second: 50 frames each way per second of call. Old and new forms of the
hand-off and the recorder are timed side by side:

- ``onFrameReceived`` copy: the frame's bytes out of the SWIG vector (ctypes);
- ``onFrameRequested`` during a prompt: our 20 ms chunk into ``frame.buf``: copied into one reused
  vector (now) vs a new ``ByteVector`` per frame (before);
- hand-off to the event loop: ``call_soon_threadsafe`` per frame (before) vs ``LoopFeed`` (one
  wake-up per batch), posted from a thread ticking 20 ms like the conference clock, with
  ``CALLS`` calls per worker, including the loop's side;
- the leg's tick on the loop: partner mix, recording, ``AudioFrame``, inbox;
- recording: per-frame numpy arrays (before) vs bytes joined once a second (now), incl. the write.

    .venv/bin/python benchmarks/bench_media_path.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pjsua2 as pj  # noqa: E402

from speech.frames import Party  # noqa: E402
from telephony.leg import CallLeg  # noqa: E402
from telephony.loop_feed import LoopFeed  # noqa: E402
from telephony.media_port import TxBuffer, vector_bytes  # noqa: E402
from telephony.recorder import StereoRecorder  # noqa: E402
from telephony.wav_writer import IncrementalWav  # noqa: E402

RATE = 16000
FRAME = RATE // 50 * 2
SECONDS = 60
FRAMES = SECONDS * 50
CALLS = 4


def cpu(fn: Callable[[], object]) -> float:
    """Process CPU seconds of ``fn()``, per call-second."""
    t0 = time.process_time()
    fn()
    return (time.process_time() - t0) / SECONDS


def pcm(seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(-3000, 3000, FRAME // 2, dtype=np.int16).astype("<i2").tobytes()


def rx_copy() -> float:
    vec = pj.ByteVector(pcm())

    def run() -> None:
        for _ in range(FRAMES):
            vector_bytes(vec, FRAME)

    return cpu(run)


def tx_vector(reused: bool) -> float:
    chunk = pcm()
    buf = TxBuffer(FRAME)
    frame = pj.MediaFrame()

    def run() -> None:
        for _ in range(FRAMES):
            frame.buf = buf.load(chunk) if reused else pj.ByteVector(chunk)

    return cpu(run)


def handoff(batched: bool) -> float:
    """CALLS calls' frames from a 20 ms-ticking thread to the loop; CPU per call-second."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        feed = LoopFeed(loop)
        got = 0
        done = asyncio.Event()
        frame = pcm()
        total = FRAMES * CALLS // 10  # 6 s of ticks: the CPU is per frame, the clock only paces

        def on_tick(heard: bytes, played: bytes | None) -> None:
            nonlocal got
            got += 1
            if got == total:
                done.set()

        def clock() -> None:
            nxt = time.monotonic()
            for _ in range(total // CALLS):
                for _c in range(CALLS):
                    if batched:
                        feed.post(on_tick, frame, None)
                    else:
                        loop.call_soon_threadsafe(on_tick, frame, None)
                nxt += 0.02
                time.sleep(max(0.0, nxt - time.monotonic()))

        t0 = time.process_time()
        th = threading.Thread(target=clock)
        th.start()
        await done.wait()
        th.join()
        return (time.process_time() - t0) / (total / 50)

    return asyncio.run(main())


def leg_tick(playing: bool, recording: bool, tmp: Path) -> float:
    async def main() -> float:
        loop = asyncio.get_running_loop()

        async def op(*_: object) -> None:
            return None

        leg = CallLeg(key=1, call_id="c", remote_uri="sip:a@b", local_uri="sip:c@d", party=Party.CALLER,
                      sample_rate=RATE, call_op=op, loop=loop,
                      recording_path=tmp / "leg.wav" if recording else None, max_frames=FRAMES + 10)
        leg._open_recording()
        heard, played = pcm(1), pcm(2) if playing else None
        t0 = time.process_time()
        for _ in range(FRAMES):
            leg._on_tick(heard, played)
            if leg.inbox.qsize() > 100:
                while not leg.inbox.empty():
                    leg.inbox.get_nowait()
        out = (time.process_time() - t0) / SECONDS
        leg._on_ended("test", 200)
        return out

    return asyncio.run(main())


def recorder(old: bool, tmp: Path) -> float:
    heard, played = pcm(1), pcm(2)
    if not old:
        rec = StereoRecorder(tmp / "new.wav", sample_rate=RATE)

        def run_new() -> None:
            for _ in range(FRAMES):
                rec.add(played, heard)
            rec.close()

        return cpu(run_new)
    wav = IncrementalWav(tmp / "old.wav", sample_rate=RATE, channels=2)
    tx: list[np.ndarray] = []
    rx: list[np.ndarray] = []

    def run_old() -> None:  # the recorder before: arrays per frame, column_stack per second
        for _ in range(FRAMES):
            rx.append(np.frombuffer(heard, dtype="<i2"))
            tx.append(np.frombuffer(played, dtype="<i2"))
            if len(rx) >= 50:
                wav.write(np.column_stack((np.concatenate(tx), np.concatenate(rx))))
                tx.clear()
                rx.clear()
        wav.close()

    return cpu(run_old)


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = [
            ("onFrameReceived: copy out of the SWIG vector", rx_copy(), None),
            ("onFrameRequested while a prompt plays: chunk into frame.buf (reused vector / new ByteVector)",
             tx_vector(True), tx_vector(False)),
            (f"hand-off to the loop, {CALLS} calls per worker (incl. the loop's side)",
             handoff(batched=True), handoff(batched=False)),
            ("recording (add + write once a second)", recorder(False, tmp), recorder(True, tmp)),
            ("leg tick on the loop: no prompt, not recorded", leg_tick(False, False, tmp), None),
            ("leg tick on the loop: prompt playing, recorded", leg_tick(True, True, tmp), None),
        ]
    print(f"telephony per-frame path, {RATE} Hz 20 ms frames, CPU-s per call-second ({SECONDS} s of frames)")
    print()
    print("| step | now | before |")
    print("|---|---|---|")
    for name, now, before in rows:
        print(f"| {name} | {now:.5f} | {'-' if before is None else f'{before:.5f}'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
