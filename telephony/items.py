"""Control items a call leg puts in its inbox beside audio frames and DTMF digits.

Audio frames may be dropped when the inbox is full; these never are.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LegEnded:
    """The call is over; nothing follows this item in the inbox."""

    reason: str
    """SIP reason phrase of the last status (``Normal call clearing``, ``Busy Here``...)."""
    status: int
    """Last SIP status code of the dialog (200 for a normal hang-up after answer)."""
    t: float = 0.0
    """Call time (s) when it ended."""


@dataclass(frozen=True, slots=True)
class HoldChanged:
    """The media direction changed by a re-INVITE (``by`` is ``remote`` or ``local``)."""

    held: bool
    by: str
    t: float = 0.0


@dataclass(frozen=True, slots=True)
class TransferRequested:
    """The far end asked (REFER) to hand the call on to ``uri``; ``leg`` is the new outgoing
    call this endpoint placed to the target (None if it could not), which the owner of the
    call bridges in place of the referring party."""

    uri: str
    leg: object | None
    t: float = 0.0


@dataclass(frozen=True, slots=True)
class CallReplaced:
    """An INVITE with ``Replaces`` took this call's place (the far end's attended transfer):
    the conversation goes on in ``leg``; this leg ends next."""

    leg: object
    t: float = 0.0


@dataclass(frozen=True, slots=True)
class MetadataChanged:
    """A recording session's re-INVITE (or UPDATE) carried new SIPREC metadata or SDP: ``offer``
    is the parsed body (``telephony.siprec.RecordingOffer``), ``roles`` who speaks on each
    stream now (``StreamRole``s). The owner turns it into a transfer or a hold."""

    offer: object
    roles: tuple[object, ...]
    t: float = 0.0


class CallFailed(Exception):
    """An outbound call was not answered; ``status`` is the final SIP status code."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"call failed: {status} {reason}")
        self.status = status
        self.reason = reason


class EndpointFull(CallFailed):
    """Our own endpoint has no call slot left for an outgoing call (not the far end's answer)."""


class EndpointError(RuntimeError):
    """The SIP endpoint could not start or a command failed on the PJSIP thread."""
