"""One call as the event loop sees it: ids, an inbox and commands that run on the PJSIP thread.

A ``CallLeg`` holds no pjsua2 object. Audio and control items arrive in ``inbox`` in call-time
order; audio frames are dropped (and counted) when the inbox holds ``max_frames`` items, control
items (DTMF, hold, the final ``LegEnded``) never are.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from pathlib import Path

import numpy as np

from speech.events import DtmfDigit
from speech.frames import FRAME_MS, AudioFrame, Party, pcm_dbfs
from telephony.call_ops import CallCommand, CallOp, Hangup, Hold, SendDtmf, Transfer, Unhold
from telephony.items import CallReplaced, HoldChanged, LegEnded, TransferRequested
from telephony.media_port import MediaBridge
from telephony.prompts import chunk_pcm, load_pcm
from telephony.recorder import StereoRecorder

log = logging.getLogger(__name__)

DEFAULT_INBOX_FRAMES = 500
"""Audio frames the inbox holds before dropping (10 s at 20 ms)."""

PARTNER_BACKLOG = 5
"""Frames of a bridged partner's audio kept for mixing into our recording (100 ms of drift)."""

InboxItem = AudioFrame | DtmfDigit | HoldChanged | TransferRequested | CallReplaced | LegEnded
"""What ``CallLeg.inbox`` yields, in call-time order; ``LegEnded`` comes last."""


class CallLeg:
    """A live (or ended) call on a ``SipEndpoint``."""

    def __init__(
        self,
        *,
        key: int,
        call_id: str,
        remote_uri: str,
        local_uri: str,
        party: Party,
        sample_rate: int,
        call_op: CallOp,
        loop: asyncio.AbstractEventLoop,
        recording_path: Path | None = None,
        max_frames: int = DEFAULT_INBOX_FRAMES,
    ) -> None:
        self.key = key
        self.call_id = call_id
        self.remote_uri = remote_uri
        self.local_uri = local_uri
        self.codec = ""
        self.party = party
        self.sample_rate = sample_rate
        self.inbox: asyncio.Queue[InboxItem] = asyncio.Queue()
        self.frames_received = 0
        self.frames_dropped = 0
        self.recording_path = recording_path
        self.ended: LegEnded | None = None
        self.held = False
        self.agent_identity = ""
        """For a call from an agent's phone: their id, as the front authenticated it."""
        self.transfer_status: int | None = None
        """Final status the transfer target gave (REFER's NOTIFY); None until then."""
        self._max_frames = max_frames
        self._call_op = call_op
        self._loop = loop
        self._recorder: StereoRecorder | None = None
        self._confirmed: asyncio.Future[bool] = loop.create_future()
        self._ended_event = asyncio.Event()
        self.bridge = MediaBridge(loop, self._on_tick, sample_rate * FRAME_MS // 1000 * 2)
        self._partners: list[CallLeg] = []
        self._partner_audio: deque[bytes] = deque(maxlen=PARTNER_BACKLOG)
        """What bridged partners said, heard on their ports: it reaches our party through the
        conference bridge, so it goes into our recording's first channel and is the echo
        reference of our party's audio."""

    # ---- public API ------------------------------------------------------------------------
    @property
    def call_time(self) -> float:
        """Seconds of call audio so far (frame count × 20 ms)."""
        return self.frames_received * FRAME_MS / 1000

    async def play(self, wav: Path) -> bool:
        """Play a WAV into the call; True when it played to the end, False if stopped."""
        if self.ended is not None:
            return False
        pcm = await asyncio.to_thread(load_pcm, Path(wav), self.sample_rate)
        chunks = chunk_pcm(pcm, self.bridge.frame_bytes // 2)
        return await self.play_chunks(chunks)

    async def play_chunks(self, chunks: list[bytes]) -> bool:
        """Play 20 ms PCM chunks at the bridge rate (generated audio, mixed tones)."""
        if self.ended is not None or not chunks:
            return self.ended is None
        done: asyncio.Future[bool] = self._loop.create_future()

        def finish(ok: bool) -> None:
            if not done.done():
                done.set_result(ok)

        self.bridge.start_playback(chunks, finish)
        return await done

    def stop_playback(self) -> None:
        """Barge-in: stop what is playing now; its ``play`` returns False."""
        self.bridge.stop_playback()

    @property
    def playing(self) -> bool:
        return self.bridge.playing

    async def send_dtmf(self, digits: str) -> None:
        """Send digits as RFC 4733 telephone events."""
        await self._command(SendDtmf(digits))

    async def hangup(self) -> None:
        """End the call (BYE, or CANCEL/decline before answer); returns once it has ended."""
        if self.ended is None:
            await self._command(Hangup())
        await self.wait_ended()

    async def transfer(self, uri: str) -> None:
        """Blind transfer with SIP REFER; returns once sent. When the far end reports the target
        answered (NOTIFY 2xx) ``transfer_status`` is set and this leg hangs up."""
        await self._command(Transfer(uri))

    async def hold(self) -> None:
        await self._command(Hold())

    async def unhold(self) -> None:
        await self._command(Unhold())

    async def wait_ended(self) -> LegEnded:
        """Wait for the end of the call (wrap in ``asyncio.wait_for`` to bound it)."""
        await self._ended_event.wait()
        assert self.ended is not None
        return self.ended

    # ---- endpoint side (event loop) ---------------------------------------------------------
    async def _command(self, command: CallCommand) -> None:
        if self.ended is not None:
            raise RuntimeError("call has ended")
        await self._call_op(self.key, command)

    def _open_recording(self) -> None:
        if self.recording_path is not None and self._recorder is None:
            self._recorder = StereoRecorder(self.recording_path, sample_rate=self.sample_rate)

    def _link(self, other: CallLeg) -> None:
        if other not in self._partners:
            self._partners.append(other)

    def _unlink(self, other: CallLeg) -> None:
        if other in self._partners:
            self._partners.remove(other)
        self._partner_audio.clear()

    def _on_tick(self, heard: bytes, played: bytes | None) -> None:
        if self.ended is not None:
            return
        for partner in self._partners:
            if partner.ended is None:
                partner._partner_audio.append(heard)
        if self._partner_audio:
            played = _mix(played, self._partner_audio.popleft())
        if self._recorder is not None:
            self._recorder.add(played, heard)
        t = self.call_time
        self.frames_received += 1
        if self.inbox.qsize() >= self._max_frames:
            self.frames_dropped += 1
            return
        # What we played this tick may come back in ``heard`` as echo: the VAD's echo gate needs
        # its level (None: nothing played).
        far_end = pcm_dbfs(played) if played else None
        self.inbox.put_nowait(AudioFrame(heard, self.sample_rate, t, self.party, far_end_dbfs=far_end))

    def _on_dtmf(self, digit: str, source: str, duration: float) -> None:
        if self.ended is None:
            self.inbox.put_nowait(
                DtmfDigit(call_id=self.call_id, t=self.call_time, party=self.party,
                          digit=digit, source=source, duration=duration)
            )

    def _on_hold(self, held: bool, by: str) -> None:
        if self.ended is None and held != self.held:
            self.held = held
            self.inbox.put_nowait(HoldChanged(held=held, by=by, t=self.call_time))

    def _on_confirmed(self, codec: str) -> None:
        if codec:
            self.codec = codec
        if not self._confirmed.done():
            self._confirmed.set_result(True)

    def _on_transfer_requested(self, uri: str, leg: CallLeg | None) -> None:
        if self.ended is None:
            self.inbox.put_nowait(TransferRequested(uri=uri, leg=leg, t=self.call_time))

    def _on_replaced(self, leg: CallLeg) -> None:
        if self.ended is None:
            self.inbox.put_nowait(CallReplaced(leg=leg, t=self.call_time))

    def _on_transfer(self, status: int) -> None:
        self.transfer_status = status

    def _on_codec(self, codec: str) -> None:
        self.codec = codec

    def _on_ended(self, reason: str, status: int) -> None:
        if self.ended is not None:
            return
        self.bridge.close()
        if self._recorder is not None:
            self._recorder.close()
        self.ended = LegEnded(reason=reason, status=status, t=self.call_time)
        if not self._confirmed.done():
            self._confirmed.set_result(False)
        self.inbox.put_nowait(self.ended)
        self._ended_event.set()


def _mix(a: bytes | None, b: bytes) -> bytes:
    """Sum of two 16-bit PCM frames, clipped (``a`` may be None: nothing played)."""
    if not a:
        return b
    x = np.frombuffer(a, dtype="<i2").astype(np.int32)
    y = np.frombuffer(b, dtype="<i2").astype(np.int32)
    n = min(len(x), len(y))
    return bytes(np.clip(x[:n] + y[:n], -32768, 32767).astype("<i2").tobytes())


_URI_USER = re.compile(r"sips?:([^@;>]+)@")


def uri_user(uri: str) -> str:
    """The user part of a SIP URI (``sip:bob@host`` → ``bob``), or "" when it has none."""
    m = _URI_USER.search(uri)
    return m.group(1) if m else ""
