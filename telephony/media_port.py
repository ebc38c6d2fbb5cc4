"""The per-call media port: caller audio out of the conference bridge, our playback into it.

pjsua2 calls ``onFrameRequested``/``onFrameReceived`` on its clock thread 50 times a second per
call. They only copy bytes and hand off: the audio buffer is read through ctypes (std::vector's
begin/end pointers, ~5 µs) instead of ``bytes(frame.buf)`` (~1 ms element by element), and the
result crosses to the event loop through the loop's ``LoopFeed`` (one wake-up per batch of
frames, in order with the SIP thread's other callbacks).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
from collections import deque
from collections.abc import Callable

import pjsua2 as pj

from telephony.loop_feed import feed_for
from telephony.thread_name import name_current_thread

log = logging.getLogger(__name__)

TickHandler = Callable[[bytes, "bytes | None"], None]
"""Receives (heard, played) for one bridge tick, on the event loop."""
DoneHandler = Callable[[bool], None]
"""Receives True when a playback ran to its end, False when it was stopped."""


def _vector_span(vec: pj.ByteVector) -> tuple[int, int]:
    """(begin, end) addresses of a SWIG ``std::vector<unsigned char>``'s storage (0 when empty)."""
    addr = int(vec.this)
    begin = ctypes.c_void_p.from_address(addr).value or 0
    end = ctypes.c_void_p.from_address(addr + ctypes.sizeof(ctypes.c_void_p)).value or 0
    return begin, end


def vector_bytes(vec: pj.ByteVector, size: int) -> bytes:
    """Copy a SWIG ``std::vector<unsigned char>`` through its begin/end pointers."""
    begin, end = _vector_span(vec)
    if not begin or not end:
        return b""
    return ctypes.string_at(begin, min(end - begin, size))


class TxBuffer:
    """One reused ``ByteVector`` a port's outgoing frames are copied into (``memmove``, ~1 µs)
    instead of a new ``ByteVector(pcm)`` per frame (SWIG fills that byte by byte, ~20 µs).
    Assigning it to ``frame.buf`` copies it into the frame, so reuse on the next tick is safe."""

    def __init__(self, frame_bytes: int) -> None:
        self.vec = pj.ByteVector(bytes(frame_bytes))
        self._size = frame_bytes
        self._begin = _vector_span(self.vec)[0]

    def load(self, pcm: bytes) -> pj.ByteVector:
        n = min(len(pcm), self._size)
        ctypes.memmove(self._begin, pcm, n)
        if n < self._size:
            ctypes.memset(self._begin + n, 0, self._size - n)
        return self.vec


class MediaBridge:
    """Thread-safe hand-off for one call between the clock thread and the event loop.

    Holds no pjsua2 object, so the asyncio side may keep it: it queues playback chunks and
    receives ticks.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_tick: TickHandler, frame_bytes: int
    ) -> None:
        self._loop = loop
        self._feed = feed_for(loop)
        self._on_tick = on_tick
        self.frame_bytes = frame_bytes
        self._lock = threading.Lock()
        self._chunks: deque[bytes] = deque()
        self._done: DoneHandler | None = None
        self._last_tx: bytes | None = None
        self.closed = False

    # event-loop side
    def start_playback(self, chunks: list[bytes], done: DoneHandler) -> None:
        """Replace any playback in progress (which then reports False) with ``chunks``."""
        with self._lock:
            old = self._done
            if self.closed:
                old, done_now = None, done
            else:
                done_now = None
                self._chunks = deque(chunks)
                self._done = done
        if old is not None:
            old(False)
        if done_now is not None:
            done_now(False)

    def stop_playback(self) -> None:
        with self._lock:
            self._chunks.clear()
            done, self._done = self._done, None
        if done is not None:
            self._post(done, False)

    @property
    def playing(self) -> bool:
        return self._done is not None

    def close(self) -> None:
        """No more ticks are forwarded; a playback in progress reports False. Idempotent."""
        self.closed = True
        self.stop_playback()

    # clock-thread side
    def next_tx(self) -> bytes | None:
        finished = None
        with self._lock:
            chunk = self._chunks.popleft() if self._chunks else None
            if chunk is not None and not self._chunks and self._done is not None:
                finished, self._done = self._done, None
        if finished is not None:
            self._post(finished, True)
        self._last_tx = chunk
        return chunk

    def rx(self, pcm: bytes) -> None:
        tx, self._last_tx = self._last_tx, None
        if not self.closed:
            self._feed.post(self._on_tick, pcm, tx)

    def _post(self, fn: Callable[..., object], *args: object) -> None:
        self._feed.post(fn, *args)


_clock_thread = 0
"""Ident of the media clock thread last named (``telephony.thread_name``, for per-thread CPU)."""


class CallPort(pj.AudioMediaPort):
    """A conference-bridge port wired both ways to whichever call holds it.

    Ports are pooled per endpoint and live until the conference clock is stopped: freeing a
    port from Python while the clock thread may call it re-enters an object under deallocation
    (seen as ``'CallPort' object has no attribute '_bridge'`` and a segfault when several calls
    ended together under decoding load). Between calls ``bridge`` is None and the port plays
    and swallows silence.
    """

    def __init__(self, frame_bytes: int) -> None:
        super().__init__()
        self.frame_bytes = frame_bytes
        self.bridge: MediaBridge | None = None
        self._silence_bytes = bytes(frame_bytes)
        self._silence = pj.ByteVector(self._silence_bytes)
        self._tx = TxBuffer(frame_bytes)
        self._errors = 0

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:  # noqa: N802 - pjsua2 API
        global _clock_thread
        if threading.get_ident() != _clock_thread:  # pjmedia's clock thread (a new one after
            _clock_thread = threading.get_ident()  # the idle sound device reopens): name it
            name_current_thread("pj-clock")
        try:
            bridge = self.bridge
            pcm = bridge.next_tx() if bridge is not None else None
            frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
            frame.buf = self._tx.load(pcm) if pcm is not None else self._silence
            frame.size = self.frame_bytes
        except Exception:  # noqa: BLE001 - a traceback here would keep the port alive
            self._note_error()

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802 - pjsua2 API
        try:
            bridge = self.bridge
            if bridge is None:
                return
            if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
                pcm = vector_bytes(frame.buf, frame.size)
                if len(pcm) != self.frame_bytes:
                    pcm = (pcm + self._silence_bytes)[: self.frame_bytes]
            else:
                pcm = self._silence_bytes
            bridge.rx(pcm)
        except Exception:  # noqa: BLE001
            self._note_error()

    def _note_error(self) -> None:
        self._errors += 1
        if self._errors == 1:
            log.warning("media port callback failed", exc_info=True)


def make_port(name: str, sample_rate: int, frame_ms: int) -> CallPort:
    """Create and register a 16-bit mono port (call on the PJSIP thread)."""
    fmt = pj.MediaFormatAudio()
    fmt.init(pj.PJMEDIA_FORMAT_L16, sample_rate, 1, frame_ms * 1000, 16)
    port = CallPort(sample_rate * frame_ms // 1000 * 2)
    port.createPort(name, fmt)
    return port
