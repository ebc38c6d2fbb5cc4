"""Typed operations on one call, sent from the event loop and applied on the PJSIP thread.

Each operation is a small frozen dataclass with an ``apply`` that runs the pjsua2 calls; the
event loop never touches a pjsua2 object, and the type checker sees every operation and its
arguments (no operation names dispatched by string).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

import pjsua2 as pj

DTMF_DURATION_MS = 100
"""Length of each RFC 4733 digit we send (plus ~60 ms of end packets and gap)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer an incoming call with ``status`` (180 ringing, 200 OK, or a refusal)."""

    status: int = 200
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    """Extra header fields of the response (``Retry-After`` on a 503)."""
    audio_count: int = 0
    """Audio streams to answer with (a SIPREC offer has one per forked stream); 0: pjsua's 1."""
    ended_ok: ClassVar[bool] = False

    def apply(self, call: pj.Call) -> None:
        prm = pj.CallOpParam(True) if self.audio_count else pj.CallOpParam()
        if self.audio_count:
            prm.opt.audioCount = self.audio_count
            prm.opt.videoCount = 0
        prm.statusCode = self.status
        if self.reason:
            prm.reason = self.reason
        _add_headers(prm, self.headers)
        call.answer(prm)


@dataclass(frozen=True, slots=True)
class Hangup:
    """End the call: BYE once answered, 603 Decline (or ``status``) while it rings here."""

    status: int = 0
    """Response code for a call not yet answered (0: 603 for incoming, CANCEL for outgoing)."""
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    ended_ok: ClassVar[bool] = True
    """Hanging up a call that already ended is not an error."""

    def apply(self, call: pj.Call) -> None:
        prm = pj.CallOpParam()
        info = call.getInfo()
        if info.state < pj.PJSIP_INV_STATE_CONNECTING and info.role == pj.PJSIP_ROLE_UAS:
            prm.statusCode = self.status or 603
            if self.reason:
                prm.reason = self.reason
            _add_headers(prm, self.headers)
        call.hangup(prm)


@dataclass(frozen=True, slots=True)
class SendDtmf:
    """Send ``digits`` as RFC 4733 telephone events."""

    digits: str
    ended_ok: ClassVar[bool] = False

    def apply(self, call: pj.Call) -> None:
        prm = pj.CallSendDtmfParam()
        prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
        prm.digits = self.digits
        prm.duration = DTMF_DURATION_MS
        call.sendDtmf(prm)


@dataclass(frozen=True, slots=True)
class Transfer:
    """Blind transfer with REFER to ``uri``."""

    uri: str
    ended_ok: ClassVar[bool] = False

    def apply(self, call: pj.Call) -> None:
        call.xfer(self.uri, pj.CallOpParam())


@dataclass(frozen=True, slots=True)
class Hold:
    """Put the far end on hold (re-INVITE with sendonly)."""

    ended_ok: ClassVar[bool] = False

    def apply(self, call: pj.Call) -> None:
        call.setHold(pj.CallOpParam())


@dataclass(frozen=True, slots=True)
class Unhold:
    """Resume a held call (re-INVITE with sendrecv)."""

    ended_ok: ClassVar[bool] = False

    def apply(self, call: pj.Call) -> None:
        prm = pj.CallOpParam(True)  # default call setting keeps audioCount=1 (else m=audio 0)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        call.reinvite(prm)


CallCommand = Answer | Hangup | SendDtmf | Transfer | Hold | Unhold
"""Every operation a ``CallLeg`` can ask of its endpoint."""

CallOp = Callable[[int, CallCommand], Awaitable[None]]
"""Runs one command on the call with this key, on the PJSIP thread."""


def _add_headers(prm: pj.CallOpParam, headers: tuple[tuple[str, str], ...]) -> None:
    for name, value in headers:
        hdr = pj.SipHeader()
        hdr.hName = name
        hdr.hValue = value
        prm.txOption.headers.append(hdr)
