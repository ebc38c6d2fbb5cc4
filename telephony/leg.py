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
from collections.abc import Callable
from pathlib import Path

import numpy as np

from speech.events import DtmfDigit
from speech.frames import FRAME_MS, AudioFrame, Party, pcm_dbfs
from telephony.call_ops import CallCommand, CallOp, Hangup, Hold, SendDtmf, Transfer, Unhold
from telephony.items import CallReplaced, HoldChanged, LegEnded, MetadataChanged, TransferRequested
from telephony.media_port import MediaBridge
from telephony.prompts import chunk_pcm, load_pcm
from telephony.recorder import StereoRecorder

log = logging.getLogger(__name__)

DEFAULT_INBOX_FRAMES = 500
"""Audio frames the inbox holds before dropping (10 s at 20 ms)."""

PARTNER_BACKLOG = 5
"""Frames of a bridged partner's audio kept for mixing into our recording (100 ms of drift)."""

REC_BACKLOG = 5
"""A recording session's frames of one stream kept waiting for the other stream's frame of the
same tick (the recording pairs them); beyond this the other channel gets silence."""

InboxItem = AudioFrame | DtmfDigit | HoldChanged | TransferRequested | CallReplaced | MetadataChanged | LegEnded
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
        recording_key: bytes | None = None,
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
        self._recording_key = recording_key
        self._recording_muted = False
        self.ended: LegEnded | None = None
        self.held = False
        self.agent_identity = ""
        """For a call from an agent's phone: their id, as the front authenticated it."""
        self.siprec: object | None = None
        """For a SIPREC recording session: its parsed offer (``telephony.siprec.RecordingOffer``);
        its streams' frames arrive in ``inbox`` with each stream's party on this call's clock."""
        self.stream_roles: tuple[object, ...] = ()
        """Recording session: who speaks on each stream (``telephony.siprec.StreamRole``s)."""
        self.stream_parties: dict[int, Party] = {}
        """Recording session: the party speaking on each offered stream (by media index)."""
        self.stream_bridges: dict[int, MediaBridge] = {}
        self._stream_frames: dict[int, int] = {}
        self._rec_wait: dict[Party, deque[bytes]] = {}
        self._last_dbfs: dict[Party, float] = {}
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
        """Legs whose party hears ours through the conference bridge (bridged, or a one-way
        link such as a supervisor barging in)."""
        self._partner_audio: dict[int, deque[bytes]] = {}
        """What the legs we hear said (by leg key), heard on their ports: it reaches our party
        through the conference bridge, so it goes into our recording's first channel and is the
        echo reference of our party's audio."""

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
            self._recorder = StereoRecorder(self.recording_path, sample_rate=self.sample_rate,
                                            key=self._recording_key)
            self._recorder.mute(self._recording_muted)

    def mute_recording(self, on: bool) -> None:
        """Record silence on both channels (secure IVR input: keyed card numbers) until called
        with False; the recorder keeps a short tail silenced for the last key's tone."""
        self._recording_muted = on
        if self._recorder is not None:
            self._recorder.mute(on)

    def _link(self, other: CallLeg) -> None:
        """``other``'s party hears ours from now on (our audio goes into its recording)."""
        if other not in self._partners:
            self._partners.append(other)

    def _unlink(self, other: CallLeg) -> None:
        """``other``'s party no longer hears ours."""
        if other in self._partners:
            self._partners.remove(other)
        other._partner_audio.pop(self.key, None)

    def _on_tick(self, heard: bytes, played: bytes | None) -> None:
        if self.ended is not None:
            return
        for partner in self._partners:
            if partner.ended is None:
                backlog = partner._partner_audio.get(self.key)
                if backlog is None:
                    backlog = partner._partner_audio[self.key] = deque(maxlen=PARTNER_BACKLOG)
                backlog.append(heard)
        for backlog in self._partner_audio.values():  # one frame of each party we hear
            if backlog:
                played = _mix(played, backlog.popleft())
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

    # ---- recording session (SIPREC): one bridge per forked stream, one call clock ----------
    def _open_streams(self, parties: dict[int, Party]) -> None:
        """Make each stream's hand-off (on the PJSIP thread, before its media starts)."""
        self.stream_parties = dict(parties)
        for index in parties:
            if index not in self.stream_bridges:
                self.stream_bridges[index] = MediaBridge(self._loop, self._stream_tick_handler(index),
                                                         self.bridge.frame_bytes)

    def _stream_tick_handler(self, index: int) -> Callable[[bytes, bytes | None], None]:
        def on_tick(heard: bytes, _played: bytes | None) -> None:
            self._on_stream_tick(index, heard)

        return on_tick

    def _on_stream_tick(self, index: int, heard: bytes) -> None:
        """One stream's 20 ms: a frame of its party, timed by that stream's own frame count from
        when it started (all ports tick on the one conference clock, so streams stay aligned)."""
        if self.ended is not None:
            return
        n = self._stream_frames.setdefault(index, self.frames_received)
        self._stream_frames[index] = n + 1
        if n + 1 > self.frames_received:
            self.frames_received = n + 1
        party = self.stream_parties.get(index, Party.CALLER)
        self._record_stream(party, heard)
        level = pcm_dbfs(heard)
        other = Party.CALLER if party is Party.AGENT else Party.AGENT
        far_end = self._last_dbfs.get(other)
        self._last_dbfs[party] = level
        if self.inbox.qsize() >= self._max_frames:
            self.frames_dropped += 1
            return
        self.inbox.put_nowait(AudioFrame(heard, self.sample_rate, n * FRAME_MS / 1000, party,
                                         far_end_dbfs=far_end))

    def _record_stream(self, party: Party, pcm: bytes) -> None:
        """Channel 1 the agent, channel 2 the caller (as a bridged call: what the caller heard,
        and the caller); a tick is written once every party with a stream has its frame."""
        if self._recorder is None:
            return
        parties = set(self.stream_parties.values())
        self._rec_wait.setdefault(party, deque()).append(pcm)
        while True:
            ready = all(self._rec_wait.get(p) for p in parties)
            backlog = any(len(q) > REC_BACKLOG for q in self._rec_wait.values())
            if not ready and not backlog:
                return
            agent = self._rec_wait.get(Party.AGENT)
            caller = self._rec_wait.get(Party.CALLER)
            a = agent.popleft() if agent else None
            c = caller.popleft() if caller else bytes(len(pcm))
            self._recorder.add(a, c)
            if not ready:
                return

    def _on_metadata(self, item: MetadataChanged, parties: dict[int, Party]) -> None:
        if self.ended is None:
            self.stream_parties.update(parties)
            self.stream_roles = item.roles
            self.siprec = item.offer
            self.inbox.put_nowait(MetadataChanged(offer=item.offer, roles=item.roles, t=self.call_time))

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
        for b in self.stream_bridges.values():
            b.close()
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
