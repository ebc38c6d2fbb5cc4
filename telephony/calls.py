"""The pjsua2 call objects of one endpoint and the registry that owns them (PJSIP thread only).

pjsua2's ``Call`` destructor clears the user data of the call *slot* it last had and hangs up
whatever call is active there. Slots are reused at once (pjsua allocates them round-robin among
4), so freeing a ended call's object after a new INVITE took its slot silently kills the new
call, whose end then never reaches us (seen in floods: the registry filled with dead calls,
every later INVITE was refused after pjsua had made its media transport, and the I/O queue ran
dry). ``CallRegistry`` therefore frees a released object only while its slot is free, and before
``libDestroy`` (after it, the destructor asserts ``call_id < max_calls``).
"""

from __future__ import annotations

import logging
from typing import Protocol

import pjsua2 as pj

from telephony.admission import Refusal
from telephony.leg import CallLeg

log = logging.getLogger(__name__)

UNKNOWN_DTMF_MS = 0xFFFF_FFFF
"""pjsua's duration for a digit reported before its end."""


class CallEvents(Protocol):
    """What the endpoint does with pjsua callbacks (all on the PJSIP thread)."""

    def on_incoming(self, call_index: int, whole_msg: str) -> None: ...
    def on_call_state(self, call: PjCall) -> None: ...
    def on_media_state(self, call: PjCall) -> None: ...
    def on_transfer_status(self, call: PjCall, status: int, final: bool) -> None: ...
    def on_dtmf(self, call: PjCall, digit: str, source: str, duration: float) -> None: ...
    def on_transfer_request(self, call: PjCall, prm: pj.OnCallTransferRequestParam) -> None: ...
    def on_call_replaced(self, call: PjCall, prm: pj.OnCallReplacedParam) -> None: ...
    def on_sdp_created(self, call: PjCall, prm: pj.OnCallSdpCreatedParam) -> None: ...
    def on_rx_reinvite(self, call: PjCall, whole_msg: str) -> None: ...
    def on_rx_update(self, call: PjCall, whole_msg: str) -> None: ...


class PjAccount(pj.Account):
    def __init__(self, events: CallEvents) -> None:
        super().__init__()
        self._events = events

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802 - pjsua2 API
        try:
            self._events.on_incoming(prm.callId, prm.rdata.wholeMsg)
        except Exception:  # noqa: BLE001 - never let a traceback escape into PJSIP
            log.exception("incoming call handler failed")


class PjCall(pj.Call):
    """pjsua2 call bound to one CallLeg (or to none while it is refused)."""

    def __init__(self, events: CallEvents, acc: pj.Account, call_index: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_index)
        self.events = events
        self.leg: CallLeg | None = None
        self.port: pj.AudioMediaPort | None = None
        self.audio: pj.AudioMedia | None = None
        self.media_status: int | None = None
        self.released = False
        self.refusal: Refusal | None = None
        self.refuse_at: float | None = None
        """When a refused call gets its final response (monotonic s); None if not refused."""
        self.transfer_of: tuple[int, CallLeg, str] | None = None
        """For a call pjsua places on a REFER: (new leg key, the referring leg, target URI)."""
        self.bridged: set[int] = set()
        """Keys of the calls whose audio this call's audio goes to and comes from (B2BUA)."""
        self.stream_ports: dict[int, tuple[pj.AudioMediaPort, pj.AudioMedia]] = {}
        """A SIPREC recording session: each forked stream's port and audio, by media index."""
        self.audio_count = 1
        """Audio streams this call is answered with (a recording session: one per stream)."""
        self.recording_session = False
        """A SIPREC recording session (RFC 7866): recvonly streams, metadata updates."""
        self.sends_to: set[int] = set()
        """Keys of the calls this call's audio goes to one way (a supervisor listening)."""
        self.hears_from: set[int] = set()
        """Keys of the calls whose audio comes into this call one way (the reverse of
        ``sends_to``), so either side's new media can be connected again."""

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802
        try:
            self.events.on_call_state(self)
        except Exception:  # noqa: BLE001
            log.exception("call state handler failed")

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        try:
            self.events.on_media_state(self)
        except Exception:  # noqa: BLE001
            log.exception("media state handler failed")

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:  # noqa: N802
        try:
            self.events.on_transfer_status(self, prm.statusCode, prm.finalNotify)
            prm.cont = not prm.finalNotify
        except Exception:  # noqa: BLE001
            log.exception("transfer status handler failed")

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:  # noqa: N802
        try:
            self.events.on_transfer_request(self, prm)
        except Exception:  # noqa: BLE001
            prm.statusCode = 500
            log.exception("transfer request handler failed")

    def onCallReplaced(self, prm: pj.OnCallReplacedParam) -> None:  # noqa: N802
        try:
            self.events.on_call_replaced(self, prm)
        except Exception:  # noqa: BLE001
            log.exception("call replaced handler failed")

    def onCallSdpCreated(self, prm: pj.OnCallSdpCreatedParam) -> None:  # noqa: N802
        try:
            self.events.on_sdp_created(self, prm)
        except Exception:  # noqa: BLE001
            log.exception("SDP created handler failed")

    def onCallRxReinvite(self, prm: pj.OnCallRxReinviteParam) -> None:  # noqa: N802
        try:
            if self.audio_count > 1:
                prm.opt.audioCount = self.audio_count
            self.events.on_rx_reinvite(self, prm.rdata.wholeMsg)
        except Exception:  # noqa: BLE001
            log.exception("re-INVITE handler failed")

    def onCallRxOffer(self, prm: pj.OnCallRxOfferParam) -> None:  # noqa: N802
        try:
            if self.audio_count > 1:
                prm.opt.audioCount = self.audio_count
        except Exception:  # noqa: BLE001
            log.exception("offer handler failed")

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:  # noqa: N802
        try:
            if self.recording_session and prm.e.type == pj.PJSIP_EVENT_TSX_STATE:
                body = prm.e.body.tsxState
                if body.type == pj.PJSIP_EVENT_RX_MSG and body.tsx.method == "UPDATE" and body.tsx.role == pj.PJSIP_ROLE_UAS:
                    self.events.on_rx_update(self, body.src.rdata.wholeMsg)
        except Exception:  # noqa: BLE001
            log.exception("transaction handler failed")

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:  # noqa: N802
        try:
            source = "sip_info" if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc4733"
            # duration is 0xFFFFFFFF (unknown) when the digit is reported at its start
            duration = prm.duration / 1000.0 if prm.duration < UNKNOWN_DTMF_MS else 0.0
            self.events.on_dtmf(self, str(prm.digit), source, duration)
        except Exception:  # noqa: BLE001
            log.exception("DTMF handler failed")


class CallRegistry:
    """Live calls by leg key, refused calls waiting for their response, released objects."""

    def __init__(self) -> None:
        self.live: dict[int, PjCall] = {}
        self.refusing: list[PjCall] = []
        self.pending: list[PjCall] = []
        """Calls handed to pjsua (REFER targets) before they have a leg."""
        self._released: list[PjCall] = []

    @property
    def slots_used(self) -> int:
        """Call slots our calls hold (live and refused-but-not-answered)."""
        return len(self.live) + len(self.refusing)

    def add(self, key: int, call: PjCall) -> None:
        self.live[key] = call

    def get(self, key: int) -> PjCall | None:
        return self.live.get(key)

    def release(self, call: PjCall) -> None:
        """Forget ``call``; its object is freed by ``collect`` once its slot is free."""
        if call.leg is not None:
            self.live.pop(call.leg.key, None)
        if call in self.refusing:
            self.refusing.remove(call)
        self._released.append(call)

    def collect(self) -> None:
        """Free released objects whose slot no call holds (so their destructor touches nothing)."""
        if not self._released:
            return
        keep = []
        for call in self._released:
            try:
                busy = call.isActive()
            except Exception:  # noqa: BLE001
                busy = True
            if busy:
                keep.append(call)
        self._released = keep

    def drop_all(self) -> None:
        """Before ``libDestroy``: free what is safe, leak the rest (its destructor would assert)."""
        self.collect()
        for call in self._released:
            call.__disown__()  # the C++ object is never deleted: the process is stopping
        self._released.clear()
        self.pending.clear()
        self.refusing.clear()
        self.live.clear()
