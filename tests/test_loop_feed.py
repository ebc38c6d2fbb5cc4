"""The SIP threads' hand-off to the event loop (``telephony.loop_feed``) and the block-written
stereo recorder: every item arrives, in order, with one loop wake-up per batch."""

from __future__ import annotations

import asyncio
import threading
import wave
from pathlib import Path

import numpy as np

from telephony.loop_feed import LoopFeed, feed_for
from telephony.recorder import FLUSH_FRAMES, StereoRecorder


def test_feed_keeps_order_across_threads_and_batches_wakeups() -> None:
    async def run() -> tuple[list[tuple[str, int]], LoopFeed]:
        loop = asyncio.get_running_loop()
        feed = feed_for(loop)
        assert feed_for(loop) is feed  # one FIFO per loop, shared by every poster
        got: list[tuple[str, int]] = []
        done = {"clock": asyncio.Event(), "sip": asyncio.Event()}

        def producer(name: str) -> None:
            for i in range(2000):
                feed.post(got.append, (name, i))
            feed.post(done[name].set)

        threads = [threading.Thread(target=producer, args=(n,)) for n in ("clock", "sip")]
        for t in threads:
            t.start()
        for t in threads:
            await asyncio.to_thread(t.join)
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in done.values())), 10)
        return got, feed

    got, feed = asyncio.run(run())
    for name in ("clock", "sip"):
        assert [i for n, i in got if n == name] == list(range(2000))  # each thread's order kept
    assert feed.wakeups < 4002  # batched: not one call_soon_threadsafe per item


def test_feed_survives_a_failing_callback() -> None:
    async def run() -> list[int]:
        feed = feed_for(asyncio.get_running_loop())
        got: list[int] = []
        feed.post(lambda: 1 / 0)
        feed.post(got.append, 7)
        await asyncio.sleep(0.05)
        return got

    assert asyncio.run(run()) == [7]


def test_recorder_interleaves_blocks_and_pads_short_playback(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    rec = StereoRecorder(path, sample_rate=8000)
    n = 160
    frames = FLUSH_FRAMES + 7  # one block written by add, the rest on close
    for i in range(frames):
        heard = np.full(n, i, dtype="<i2").tobytes()
        played = None if i % 3 == 0 else np.arange(80, dtype="<i2").tobytes()  # half a frame
        rec.add(played, heard)
    rec.close()
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 2 and w.getnframes() == frames * n
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert (data[:, 1].reshape(frames, n) == np.arange(frames)[:, None]).all()
    tx = data[:, 0].reshape(frames, n)
    assert (tx[0] == 0).all()  # nothing played
    assert (tx[1] == np.tile(np.arange(80), 2)).all()  # a short chunk repeats, as np.resize did
