"""The pjsua2 SIP endpoint: one thread owns the library, the event loop sees ids and queues.

``PjThread`` (telephony/pjthread.py) runs the library on its own thread; ``pjlib`` creates it,
``calls`` holds the pjsua2 call objects, ``call_media`` wires their audio to pooled ports,
``call_ops`` are the typed operations a ``CallLeg`` sends, ``admission`` decides which INVITEs
are taken. Every pjsua2 object (account, calls,
ports) lives and dies on the PJSIP thread; Python keeps a reference to each so SWIG does not
free one under the library, and drops them there before ``libDestroy``. The wheel serves at most
4 calls per process; beyond that pjsua answers 486 itself, statelessly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pjsua2 as pj

from speech.frames import PIPELINE_RATE, Party
from telephony import pjlib
from telephony.admission import BUSY, OVERLOADED, REFUSE_HOLD_S, MediaBudget, Refusal, check_invite
from telephony.call_media import PortPool, codec_of
from telephony.call_ops import Answer, CallCommand, Hangup
from telephony.calls import CallRegistry, PjAccount, PjCall
from telephony.items import CallFailed, EndpointError, EndpointFull, MetadataChanged
from telephony.leg import DEFAULT_INBOX_FRAMES, CallLeg
from telephony.pjthread import POLL_MS, PjThread
from telephony.settings import SipSettings
from telephony.siprec import (
    MAX_STREAMS,
    RecordingOffer,
    SiprecError,
    SiprecRules,
    is_recording_invite,
    label_answer,
    parse_message,
    parse_sdp,
)

log = logging.getLogger(__name__)

MAX_CALLS = 4
"""Calls per process: PJSUA_MAX_CALLS in the pjsua2-python wheel."""
SHUTDOWN_GRACE_S = 2.0
"""How long ``stop`` lets hung-up calls finish their BYE transactions."""
ANSWER_TIMEOUT_S = 10.0
"""How long ``accept`` waits for the ACK of its 200 OK."""
SAMPLE_RATE = PIPELINE_RATE
"""Conference-bridge and port rate: calls are resampled from their codec to this."""


class _Library(pj.Endpoint):
    """pjsua2's Endpoint, told about INVITEs pjsua refused by itself (they used a transport)."""

    def __init__(self, budget: MediaBudget) -> None:
        super().__init__()
        self._budget = budget

    def onRejectedIncomingCall(self, prm: pj.OnRejectedIncomingCallParam) -> None:  # noqa: N802
        try:
            if prm.statusCode != 486:  # 486 "too many calls" is sent before any media exists
                self._budget.opened()
                self._budget.closed(time.monotonic())
        except Exception:  # noqa: BLE001
            log.exception("rejected-call handler failed")


_AGENT_HEADER = re.compile(r"^X-CC-Agent:[ \t]*([A-Za-z0-9._-]{1,32})[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


def _agent_identity(whole_msg: str) -> str:
    """The agent the front authenticated (``X-CC-Agent``, set only by the front), or ""."""
    head = whole_msg.split("\r\n\r\n", 1)[0]
    m = _AGENT_HEADER.search(head)
    return m.group(1) if m else ""


def _transmit(a: PjCall, b: PjCall, on: bool) -> None:
    """Audio of ``a`` into ``b`` and back (or stop it); a call without media yet is skipped
    (``_rebridge`` connects it when its media starts)."""
    if a.audio is None or b.audio is None:
        return
    for src, dst in ((a.audio, b.audio), (b.audio, a.audio)):
        try:
            if on:
                src.startTransmit(dst)
            else:
                src.stopTransmit(dst)
        except pj.Error:
            log.debug("conference connect failed", exc_info=True)


def _transmit_one(src: PjCall, dst: PjCall, on: bool) -> None:
    """Audio of ``src`` into ``dst`` only (a one-way conference link); skipped without media.
    A recording session's forked streams all go (a supervisor hears both parties of it)."""
    streams = getattr(src, "stream_ports", None)
    sources = [audio for _port, audio in streams.values()] if streams else [src.audio]
    if dst.audio is None:
        return
    for audio in sources:
        if audio is None:
            continue
        try:
            if on:
                audio.startTransmit(dst.audio)
            else:
                audio.stopTransmit(dst.audio)
        except pj.Error:
            log.debug("conference connect failed", exc_info=True)


class SipEndpoint:
    """A SIP user agent on ``settings.host``: answers and places calls, at most 4 at a time."""

    def __init__(
        self,
        settings: SipSettings,
        *,
        port: int | None = None,
        record_dir: Path | None = None,
        name: str = "ep",
        max_calls: int = MAX_CALLS,
        inbox_frames: int = DEFAULT_INBOX_FRAMES,
        registration: pjlib.Registration | None = None,
        max_incoming: int | None = None,
        siprec: SiprecRules | None = SiprecRules(),  # noqa: B008 - frozen, never mutated
        max_streams: int = MAX_STREAMS,
    ) -> None:
        """``registration``: REGISTER the account with digest credentials (an agent's phone).
        ``siprec``: accept SIPREC recording sessions, with this rule for who is the agent
        (None: refuse them, 488)."""
        self.settings = settings
        self.registration = registration
        self.port = settings.port if port is None else port
        self.record_dir = Path(record_dir) if record_dir is not None and settings.record else None
        self.recording_key = settings.recording.key() if self.record_dir is not None else None
        """Recordings are encrypted at rest with it (``<name>.wav.enc``); None: plain WAV."""
        self.name = name
        self.max_calls = min(max_calls, MAX_CALLS)
        self.max_incoming = self.max_calls if max_incoming is None else min(max_incoming, self.max_calls)
        """Incoming calls taken at once; the other slots are kept for the calls we place (a
        B2BUA's agent legs)."""
        self.inbox_frames = inbox_frames
        self.siprec = siprec
        self.max_streams = max_streams
        self.uri = f"sip:{name}@{settings.host}:{self.port}"
        self._pj = PjThread(self, name=f"pjsip-{name}")
        self._stopping = False
        self._incoming: asyncio.Queue[CallLeg] | None = None
        self._legs: dict[int, CallLeg] = {}
        self._keys = itertools.count(1)
        self.refused: dict[int, int] = {}
        """Incoming calls this endpoint refused, by status (486, 503, 488, 513)."""
        self.admitting = True
        """False while the process is overloaded (``callcenter.overload``): new calls get 503
        with Retry-After, calls in progress go on. Set from the loop, read on the PJSIP thread."""
        # PJSIP-thread state
        self._ep: pj.Endpoint | None = None
        self._acc: PjAccount | None = None
        self._calls = CallRegistry()
        self._budget = MediaBudget()
        self._media = PortPool(name, SAMPLE_RATE)

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Create the library and listen on UDP and TCP ``host:port``."""
        if self._pj.started:
            return
        self._incoming = asyncio.Queue()
        await self._pj.start(f"{self.settings.host}:{self.port}")

    async def stop(self) -> None:
        """Hang up live calls, let their BYEs finish, destroy the library. Idempotent."""
        if not self._pj.started or self._pj.stopped:
            return
        await self._pj.finish(self._shutdown)
        for leg in list(self._legs.values()):
            leg._on_ended("endpoint stopped", 0)
        self._legs.clear()

    async def __aenter__(self) -> SipEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def active_calls(self) -> int:
        """Calls not yet ended (ringing, answered or on hold)."""
        return sum(1 for leg in self._legs.values() if leg.ended is None)

    # ---- calls -------------------------------------------------------------------------------
    async def incoming_calls(self, stop: asyncio.Event) -> AsyncIterator[CallLeg]:
        """Each answered call (as ``accept`` returns it) until ``stop`` is set."""
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                accept = asyncio.create_task(self.accept())
                done, _ = await asyncio.wait({accept, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if accept not in done:
                    accept.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await accept
                    return
                yield accept.result()
        finally:
            stopper.cancel()

    async def accept(self) -> CallLeg:
        """Answer the next incoming call (200 OK) and return it once the ACK arrived."""
        while True:
            leg = await self.ringing()
            if await self.answer(leg):
                return leg

    async def ringing(self) -> CallLeg:
        """The next incoming call, ringing (180 sent), not answered: ``answer`` it, or let it
        ring until the caller gives up (a phone nobody picks up)."""
        assert self._incoming is not None, "start() first"
        while True:
            leg = await self._incoming.get()
            if leg.ended is None:
                return leg  # else cancelled while ringing

    async def answer(self, leg: CallLeg) -> bool:
        """200 OK to a ringing call; True once its ACK arrived, False if the caller gave up."""
        try:
            await self._call_op(leg.key, Answer(200, audio_count=_audio_count(leg)))
        except EndpointError:
            if self._pj.stopped:
                raise
            return False  # the caller gave up between ringing and our answer
        try:
            return await asyncio.wait_for(asyncio.shield(leg._confirmed), ANSWER_TIMEOUT_S)
        except TimeoutError:
            await self._call_op(leg.key, Hangup())
            return False

    async def registration_status(self) -> pjlib.RegStatus:
        """Where the account's REGISTER stands (see ``registration``)."""
        assert self.registration is not None, "no registration configured"
        return await self._pj.submit(self._reg_status)

    async def wait_registered(self, timeout_s: float = 10.0) -> pjlib.RegStatus:
        """Wait for the registrar's verdict: the status once registered (200) or refused
        (401, 403...), or the last one seen after ``timeout_s`` (``active`` False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            st = await self.registration_status()
            if st.active or st.status >= 300 or loop.time() >= deadline:
                return st
            await asyncio.sleep(0.05)

    def _reg_status(self) -> pjlib.RegStatus:
        assert self._acc is not None
        return pjlib.registration_status(self._acc)

    async def place_call(self, uri: str, *, answer_timeout_s: float = 30.0, record: bool = True,
                         on_placed: Callable[[CallLeg], None] | None = None) -> CallLeg:
        """Call ``uri``; returns once the call is confirmed, else raises ``CallFailed``.
        ``record=False``: no recording of its own (a bridged agent leg is recorded in the
        caller's file). ``on_placed`` sees the leg while it rings (to hang it up early)."""
        key = next(self._keys)
        leg = await self._pj.submit(lambda: self._make_call(key, uri, record))
        if on_placed is not None:
            on_placed(leg)
        try:
            ok = await asyncio.wait_for(asyncio.shield(leg._confirmed), answer_timeout_s)
        except TimeoutError:
            await self._call_op(key, Hangup())
            await asyncio.wait_for(leg.wait_ended(), SHUTDOWN_GRACE_S * 2)
            raise CallFailed(408, "no answer") from None
        if not ok:
            ended = leg.ended
            raise CallFailed(ended.status if ended else 0, ended.reason if ended else "failed")
        return leg

    async def bridge(self, a: CallLeg, b: CallLeg) -> None:
        """Connect two calls' audio both ways on the conference bridge: the B2BUA's media path
        (each call's port still hears its own party, for analysis and recording)."""
        await self._pj.submit(lambda: self._set_bridge(a.key, b.key, True))
        a._link(b)
        b._link(a)

    async def unbridge(self, a: CallLeg, b: CallLeg) -> None:
        """Stop the audio between two calls (hold); each keeps its own port."""
        a._unlink(b)
        b._unlink(a)
        await self._pj.submit(lambda: self._set_bridge(a.key, b.key, False))

    async def connect(self, src: CallLeg, dst: CallLeg, on: bool = True) -> None:
        """One-way: ``src``'s far end is heard by ``dst``'s far end (or no longer, ``on`` False).
        Kept across media changes like ``bridge``; ``dst``'s own port never hears it (what a
        party says stays that party's audio). Supervision builds listen, whisper and barge from
        these (``telephony.supervision``). ``dst``'s recording gets ``src`` in its first channel
        (what ``dst``'s party heard), as a bridged partner's audio."""
        if on:
            await self._pj.submit(lambda: self._set_link(src.key, dst.key, True))
            src._link(dst)
        else:
            src._unlink(dst)
            await self._pj.submit(lambda: self._set_link(src.key, dst.key, False))

    async def media_profiles(self, leg: CallLeg) -> list[str]:
        """The transport profile of each of ``leg``'s live audio streams: ``RTP/SAVP`` when
        SRTP was negotiated (SDES keys in the SDP), ``RTP/AVP`` in the clear."""
        return await self._pj.submit(lambda: self._media_profiles(leg.key))

    def _media_profiles(self, key: int) -> list[str]:
        call = self._calls.get(key)
        if call is None:
            raise EndpointError("call has ended")
        out = []
        info = call.getInfo()  # kept: the media vector lives in it
        for m in info.media:
            if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status != pj.PJSUA_CALL_MEDIA_NONE:
                proto = call.getStreamInfo(m.index).proto
                out.append("RTP/SAVP" if proto & pj.PJMEDIA_TP_PROFILE_SRTP else "RTP/AVP")
        return out

    @property
    def free_slots(self) -> int:
        """Calls this endpoint may still place or take (``max_calls`` minus live ones)."""
        return max(0, self.max_calls - self.active_calls)

    async def transfer_replaces(self, leg: CallLeg, other: CallLeg) -> None:
        """Attended transfer: REFER ``leg``'s far end to ``other``'s far end with ``Replaces``
        (the consultation call ``other`` is taken over; RFC 3891)."""
        await self._pj.submit(lambda: self._xfer_replaces(leg.key, other.key))

    def _xfer_replaces(self, ka: int, kb: int) -> None:
        ca, cb = self._calls.get(ka), self._calls.get(kb)
        if ca is None or cb is None:
            raise EndpointError("call has ended")
        ca.xferReplaces(cb, pj.CallOpParam())

    async def _call_op(self, key: int, command: CallCommand) -> None:
        await self._pj.submit(lambda: self._apply(key, command))

    def _apply(self, key: int, command: CallCommand) -> None:
        call = self._calls.get(key)
        if call is None:
            if command.ended_ok:
                return
            raise EndpointError("call has ended")
        command.apply(call)

    # ---- PjOwner: the PJSIP thread ----------------------------------------------------------
    def init_lib(self) -> None:
        cfg = pjlib.LibConfig(self.settings, self.port, self.name, self.max_calls, SAMPLE_RATE)
        pjlib.quiet_pjlib()  # before pjsua2 creates anything that logs
        self._ep = _Library(self._budget)
        pjlib.create_library(cfg, self._ep)
        acc = PjAccount(self)
        pjlib.create_account(acc, cfg, self.uri, self.registration)
        self._acc = acc

    def poll(self, timeout_ms: int) -> None:
        assert self._ep is not None
        self._ep.libHandleEvents(timeout_ms)

    def after_poll(self) -> None:
        if self._calls.refusing:
            now = time.monotonic()
            for call in [c for c in self._calls.refusing if c.refuse_at is not None and c.refuse_at <= now]:
                self._send_refusal(call)
        self._calls.collect()

    def destroy_lib(self) -> None:
        ep = self._ep
        for call in list(self._calls.live.values()):
            self._release_call(call, "endpoint stopped", 0)
        if ep is not None:
            self._media.close(ep)
        self._calls.drop_all()
        if self._acc is not None:
            try:
                self._acc.shutdown()
            except Exception:  # noqa: BLE001
                log.debug("account shutdown failed", exc_info=True)
            self._acc = None
        if ep is not None:
            pjlib.destroy_library(ep)
            self._ep = None

    def _shutdown(self) -> None:
        ep = self._ep
        assert ep is not None
        self._stopping = True
        ep.hangupAllCalls()
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        while self._calls.slots_used and time.monotonic() < deadline:
            ep.libHandleEvents(POLL_MS)
        self._calls.collect()
        self._pj.halt()

    # ---- pjsua callbacks (PJSIP thread) -------------------------------------------------------
    def on_incoming(self, call_index: int, whole_msg: str) -> None:
        assert self._acc is not None
        call = PjCall(self, self._acc, call_index)
        self._budget.opened()  # pjsua made this call's media transport before telling us
        now = time.monotonic()
        refusal: Refusal | None
        incoming = sum(1 for c in self._calls.live.values() if c.leg is not None and c.leg.party is Party.CALLER)
        if self._stopping or self._calls.slots_used >= self.max_calls or incoming >= self.max_incoming:
            refusal = BUSY
        elif self._budget.exhausted(now) or not self.admitting:
            refusal = OVERLOADED
        else:
            refusal = check_invite(whole_msg, call.getInfo().remOfferer)
        offer: RecordingOffer | None = None
        if refusal is None and is_recording_invite(whole_msg):
            offer, refusal = self._siprec_offer(whole_msg)
        if refusal is not None:
            self._refuse(call, refusal, now)
            return
        key = next(self._keys)
        leg = self._new_leg(key, call, Party.CALLER)
        leg.agent_identity = _agent_identity(whole_msg)
        if offer is not None:
            self._siprec_open(call, leg, offer)
        Answer(180, audio_count=call.audio_count if offer is not None else 0).apply(call)
        assert self._incoming is not None
        self._pj.post(self._incoming.put_nowait, leg)

    def _refuse(self, call: PjCall, refusal: Refusal, now: float) -> None:
        """Refuse on the next loop, or under pressure after ``REFUSE_HOLD_S``: the held slot
        keeps pjsua answering further INVITEs statelessly, which costs no socket."""
        call.refusal = refusal
        call.refuse_at = now + REFUSE_HOLD_S if self._budget.pressure(now) else now
        self._calls.refusing.append(call)
        self._pj.post(self._count_refusal, refusal.status)
        # Sent from ``after_poll``, never inside pjsua's incoming-call callback: refusing an
        # offer-less INVITE there aborts in pjsip_rx_data_free_cloned.

    def _send_refusal(self, call: PjCall) -> None:
        refusal = call.refusal
        call.refuse_at = None
        if refusal is None or call.released:
            return
        try:
            Answer(refusal.status, refusal.reason, refusal.headers).apply(call)
        except pj.Error:  # the caller cancelled meanwhile
            self._release_call(call, "refused", refusal.status)

    def _count_refusal(self, status: int) -> None:
        self.refused[status] = self.refused.get(status, 0) + 1

    def _new_leg(self, key: int, call: PjCall, party: Party, *, record: bool = True) -> CallLeg:
        info = call.getInfo()
        rec = None
        if self.record_dir is not None and record:
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", info.callIdString)[:64]
            rec = self.record_dir / f"{self.name}-{key}-{safe}.wav{'.enc' if self.recording_key else ''}"
        leg = CallLeg(
            key=key, call_id=info.callIdString, remote_uri=info.remoteUri, local_uri=info.localUri,
            party=party, sample_rate=SAMPLE_RATE, call_op=self._call_op, loop=self._pj.loop,
            recording_path=rec, max_frames=self.inbox_frames, recording_key=self.recording_key,
        )
        call.leg = leg
        self._calls.add(key, call)
        self._pj.post(self._register_leg, leg)
        return leg

    def _register_leg(self, leg: CallLeg) -> None:
        if leg.ended is None or leg.key in self._legs:
            self._legs[leg.key] = leg
        leg._open_recording()

    def _set_bridge(self, ka: int, kb: int, on: bool) -> None:
        ca, cb = self._calls.get(ka), self._calls.get(kb)
        if ca is None or cb is None:
            if on:
                raise EndpointError("call has ended")
            return
        if on:
            ca.bridged.add(kb)
            cb.bridged.add(ka)
            _transmit(ca, cb, True)
        else:
            ca.bridged.discard(kb)
            cb.bridged.discard(ka)
            _transmit(ca, cb, False)

    def _set_link(self, ks: int, kd: int, on: bool) -> None:
        src, dst = self._calls.get(ks), self._calls.get(kd)
        if src is None or dst is None:
            if on:
                raise EndpointError("call has ended")
            return
        if on:
            src.sends_to.add(kd)
            dst.hears_from.add(ks)
        else:
            src.sends_to.discard(kd)
            dst.hears_from.discard(ks)
        _transmit_one(src, dst, on)

    def _rebridge(self, call: PjCall) -> None:
        """After a call's media was (re)created, connect it again to the calls it is bridged to
        and to its one-way links (``connect``)."""
        for key in list(call.bridged):
            other = self._calls.get(key)
            if other is None:
                call.bridged.discard(key)
            else:
                _transmit(call, other, True)
        for keys, outgoing in ((call.sends_to, True), (call.hears_from, False)):
            for key in list(keys):
                other = self._calls.get(key)
                if other is None:
                    keys.discard(key)
                elif outgoing:
                    _transmit_one(call, other, True)
                else:
                    _transmit_one(other, call, True)

    def _make_call(self, key: int, uri: str, record: bool = True) -> CallLeg:
        assert self._acc is not None
        if self._calls.slots_used >= self.max_calls:
            raise EndpointFull(486, "too many calls on this endpoint")
        if self._budget.exhausted(time.monotonic()):
            raise CallFailed(503, "endpoint overloaded")
        call = PjCall(self, self._acc)
        prm = pj.CallOpParam(True)
        prm.opt.audioCount = 1
        prm.opt.videoCount = 0
        try:
            call.makeCall(uri, prm)
        except pj.Error as exc:
            self._calls.release(call)
            raise CallFailed(0, f"{exc.title}: {exc.reason}") from None
        self._budget.opened()
        return self._new_leg(key, call, Party.AGENT, record=record)

    def on_call_state(self, call: PjCall) -> None:
        if call.leg is None and call.transfer_of is not None:
            self._adopt_transfer(call)
        info = call.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            if call.leg is not None:
                codec = _stream_codecs(call, info) if call.recording_session else codec_of(call, info)
                self._pj.post(call.leg._on_confirmed, codec)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._release_call(call, info.lastReason, info.lastStatusCode)

    def _release_call(self, call: PjCall, reason: str, status: int) -> None:
        if call.released:
            return
        call.released = True
        self._budget.closed(time.monotonic())
        for key in call.bridged:
            other = self._calls.get(key)
            if other is not None:
                other.bridged.discard(call.leg.key if call.leg is not None else -1)
        call.bridged.clear()
        own = call.leg.key if call.leg is not None else -1
        for key in call.sends_to | call.hears_from:
            other = self._calls.get(key)
            if other is not None:
                other.sends_to.discard(own)
                other.hears_from.discard(own)
        call.sends_to.clear()
        call.hears_from.clear()
        leg = call.leg
        if leg is not None:
            leg.bridge.close()
            self._pj.post(leg._on_ended, reason, status)
        self._media.disconnect(call)
        self._calls.release(call)
        call.leg = None

    def on_media_state(self, call: PjCall) -> None:
        info = call.getInfo()
        leg = call.leg
        if leg is None:
            return
        if call.recording_session:
            self._siprec_media_state(call, info, leg)
            return
        for m in info.media:
            if m.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            status = m.status
            if status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD, pj.PJSUA_CALL_MEDIA_LOCAL_HOLD):
                self._media.connect(call, call.getAudioMedia(m.index), leg.bridge)
                self._rebridge(call)
                self._pj.post(leg._on_codec, codec_of(call, info))
            if status != call.media_status:
                if status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD:
                    self._pj.post(leg._on_hold, True, "remote")
                elif status == pj.PJSUA_CALL_MEDIA_LOCAL_HOLD:
                    self._pj.post(leg._on_hold, True, "local")
                elif status == pj.PJSUA_CALL_MEDIA_ACTIVE and call.media_status is not None:
                    by = "local" if call.media_status == pj.PJSUA_CALL_MEDIA_LOCAL_HOLD else "remote"
                    self._pj.post(leg._on_hold, False, by)
                call.media_status = status
            break

    def on_transfer_status(self, call: PjCall, status: int, final: bool) -> None:
        """A blind transfer reported progress; once the target answered, our leg is done."""
        if not final:
            return
        if call.leg is not None:
            self._pj.post(call.leg._on_transfer, status)
        if 200 <= status < 300 and not call.released:
            call.hangup(pj.CallOpParam())

    def on_transfer_request(self, call: PjCall, prm: pj.OnCallTransferRequestParam) -> None:
        """The far end sent REFER (an agent's phone transferring the caller): we place the call
        to the target ourselves (pjsua does, into our ``PjCall``) so the service stays in the
        media path; the leg's owner is told with ``TransferRequested`` once it exists."""
        leg = call.leg
        if leg is None or leg.party is not Party.AGENT:
            prm.statusCode = 603  # callers cannot send the service's call elsewhere
            return
        if self._stopping or self._calls.slots_used >= self.max_calls:
            prm.statusCode = 480
            return
        assert self._acc is not None
        new = PjCall(self, self._acc)
        new.transfer_of = (next(self._keys), leg, str(prm.dstUri))
        self._calls.pending.append(new)  # keep the Python object alive until pjsua uses it
        prm.newCall = new
        prm.statusCode = 202

    def _adopt_transfer(self, call: PjCall) -> None:
        assert call.transfer_of is not None
        key, referrer, uri = call.transfer_of
        call.transfer_of = None
        if call in self._calls.pending:
            self._calls.pending.remove(call)
        self._budget.opened()
        new_leg = self._new_leg(key, call, Party.AGENT, record=False)
        self._pj.post(referrer._on_transfer_requested, uri, new_leg)

    def on_call_replaced(self, call: PjCall, prm: pj.OnCallReplacedParam) -> None:
        """An INVITE with Replaces took ``call``'s place (pjsua answered it): the conversation
        goes on in a new leg, which the old leg's owner gets as ``CallReplaced``."""
        assert self._acc is not None
        new = PjCall(self, self._acc, prm.newCallId)
        prm.newCall = new
        self._budget.opened()
        old = call.leg
        new_leg = self._new_leg(next(self._keys), new, old.party if old is not None else Party.AGENT, record=False)
        if old is not None:
            self._pj.post(old._on_replaced, new_leg)

    def on_dtmf(self, call: PjCall, digit: str, source: str, duration: float) -> None:
        if call.leg is not None:
            self._pj.post(call.leg._on_dtmf, digit, source, duration)

    # ---- SIPREC recording sessions (RFC 7866; PJSIP thread) ----------------------------------
    def _siprec_offer(self, whole_msg: str) -> tuple[RecordingOffer | None, Refusal | None]:
        """The parsed recording offer, or the refusal a bad or unwanted one gets."""
        if self.siprec is None:
            return None, Refusal(488, "Recording Sessions Not Accepted")
        try:
            offer = parse_message(whole_msg)
        except SiprecError as exc:
            # the text only: a log record holding the exception would keep this frame's PjCall
            # (via its traceback) alive past libDestroy, whose destructor then asserts
            log.warning("refused a SIPREC INVITE: %s", str(exc))
            return None, Refusal(exc.status, exc.reason)
        if len(offer.streams) > self.max_streams:
            return None, Refusal(488, f"Too Many Recorded Streams (max {self.max_streams})")
        return offer, None

    def _siprec_open(self, call: PjCall, leg: CallLeg, offer: RecordingOffer) -> None:
        """Make ``leg`` a recording session: a party and a hand-off per offered stream."""
        assert self.siprec is not None
        call.recording_session = True
        call.audio_count = len(offer.streams)
        roles = self.siprec.roles(offer)
        leg.siprec = offer
        leg.stream_roles = roles
        leg._open_streams({r.index: r.party for r in roles})

    def _siprec_media_state(self, call: PjCall, info: pj.CallInfo, leg: CallLeg) -> None:
        """Each stream's audio into its own port; never a port into the call (the SRS sends
        nothing). A sendonly offer is pjsua's REMOTE_HOLD: for a recording session that is the
        normal state, not a hold (the session reads holds from the SDP and metadata)."""
        for m in info.media:
            if m.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            bridge = leg.stream_bridges.get(m.index)
            if bridge is None:
                continue
            if m.status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD, pj.PJSUA_CALL_MEDIA_LOCAL_HOLD):
                self._media.connect_stream(call, m.index, call.getAudioMedia(m.index), bridge)
        self._rebridge(call)  # a re-INVITE renewed the streams: supervisors listening keep hearing them
        self._pj.post(leg._on_codec, _stream_codecs(call, info))

    def on_sdp_created(self, call: PjCall, prm: pj.OnCallSdpCreatedParam) -> None:
        """Answer a labelled offer with the same labels, stream by stream (RFC 7866 § 7.1.1;
        pjsua 2.15 drops them). pjsua re-parses ``wholeSdp`` after this callback."""
        remote = prm.remSdp.wholeSdp
        if not remote or "a=label:" not in remote:
            return
        try:
            labels = [s.label for s in parse_sdp(remote)]
        except SiprecError:
            return
        prm.sdp.wholeSdp = label_answer(prm.sdp.wholeSdp, labels)

    def on_rx_reinvite(self, call: PjCall, whole_msg: str) -> None:
        self._siprec_update(call, whole_msg)

    def on_rx_update(self, call: PjCall, whole_msg: str) -> None:
        self._siprec_update(call, whole_msg)

    def _siprec_update(self, call: PjCall, whole_msg: str) -> None:
        """A re-INVITE or UPDATE of a recording session: new metadata or stream directions go
        to the leg as ``MetadataChanged`` (a body we cannot read is logged and ignored: the
        session goes on as it was)."""
        leg = call.leg
        if leg is None or not call.recording_session or self.siprec is None:
            return
        if "\r\n\r\n" not in whole_msg or not whole_msg.split("\r\n\r\n", 1)[1].strip():
            return  # no body (a session refresh)
        try:
            offer = parse_message(whole_msg)
        except SiprecError as exc:
            log.warning("ignored a SIPREC update: %s", str(exc))
            return
        if offer.metadata is None and isinstance(leg.siprec, RecordingOffer):
            offer = RecordingOffer(offer.streams, leg.siprec.metadata, offer.sdp)
        roles = self.siprec.roles(offer)
        item = MetadataChanged(offer=offer, roles=roles)
        self._pj.post(leg._on_metadata, item, {r.index: r.party for r in roles})


def _stream_codecs(call: PjCall, info: pj.CallInfo) -> str:
    """The codecs of a recording session's streams (``PCMU/8000,PCMA/8000``), each once."""
    codecs = []
    for m in info.media:
        if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status != pj.PJSUA_CALL_MEDIA_NONE:
            try:
                si = call.getStreamInfo(m.index)
                codecs.append(f"{si.codecName}/{si.codecClockRate}")
            except Exception:  # noqa: BLE001 - a stream without media yet
                pass
    return ",".join(dict.fromkeys(codecs))


def _audio_count(leg: CallLeg) -> int:
    """Audio streams to answer ``leg`` with: one per offered stream of a recording session."""
    offer = leg.siprec
    return len(offer.streams) if isinstance(offer, RecordingOffer) else 0
