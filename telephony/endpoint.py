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
from telephony.items import CallFailed, EndpointError, EndpointFull
from telephony.leg import DEFAULT_INBOX_FRAMES, CallLeg
from telephony.pjthread import POLL_MS, PjThread
from telephony.settings import SipSettings

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
    ) -> None:
        """``registration``: REGISTER the account with digest credentials (an agent's phone)."""
        self.settings = settings
        self.registration = registration
        self.port = settings.port if port is None else port
        self.record_dir = Path(record_dir) if record_dir is not None and settings.record else None
        self.name = name
        self.max_calls = min(max_calls, MAX_CALLS)
        self.max_incoming = self.max_calls if max_incoming is None else min(max_incoming, self.max_calls)
        """Incoming calls taken at once; the other slots are kept for the calls we place (a
        B2BUA's agent legs)."""
        self.inbox_frames = inbox_frames
        self.uri = f"sip:{name}@{settings.host}:{self.port}"
        self._pj = PjThread(self, name=f"pjsip-{name}")
        self._stopping = False
        self._incoming: asyncio.Queue[CallLeg] | None = None
        self._legs: dict[int, CallLeg] = {}
        self._keys = itertools.count(1)
        self.refused: dict[int, int] = {}
        """Incoming calls this endpoint refused, by status (486, 503, 488, 513)."""
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
            await self._call_op(leg.key, Answer(200))
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
        elif self._budget.exhausted(now):
            refusal = OVERLOADED
        else:
            refusal = check_invite(whole_msg, call.getInfo().remOfferer)
        if refusal is not None:
            self._refuse(call, refusal, now)
            return
        key = next(self._keys)
        leg = self._new_leg(key, call, Party.CALLER)
        leg.agent_identity = _agent_identity(whole_msg)
        Answer(180).apply(call)
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
            rec = self.record_dir / f"{self.name}-{key}-{safe}.wav"
        leg = CallLeg(
            key=key, call_id=info.callIdString, remote_uri=info.remoteUri, local_uri=info.localUri,
            party=party, sample_rate=SAMPLE_RATE, call_op=self._call_op, loop=self._pj.loop,
            recording_path=rec, max_frames=self.inbox_frames,
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

    def _rebridge(self, call: PjCall) -> None:
        """After a call's media was (re)created, connect it again to the calls it is bridged to."""
        for key in list(call.bridged):
            other = self._calls.get(key)
            if other is None:
                call.bridged.discard(key)
            else:
                _transmit(call, other, True)

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
                self._pj.post(call.leg._on_confirmed, codec_of(call, info))
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
