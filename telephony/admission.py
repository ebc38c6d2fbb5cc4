"""Whether this endpoint takes an incoming call, decided before any pjlib resource runs out.

Two limits of the pjsua2 wheel matter under a flood (measured with sipp on 127.0.0.1):

* **ioqueue keys.** pjsip's I/O queue holds 64 sockets. Every INVITE that gets a call slot
  makes a media transport (an RTP and an RTCP socket) *before* the application sees the call,
  and a closed socket's key only returns to the free list 500 ms later
  (``PJ_IOQUEUE_KEY_FREE_DELAY``). Calls that start and end faster than that (refused here,
  cancelled by the caller) use up the queue, and the next INVITE aborts the process in
  ``pj_ioqueue_register_sock2``. ``MediaBudget`` counts transports alive or closed within
  ``KEY_FREE_S`` and refuses early (503 with Retry-After), holding refused calls for
  ``REFUSE_HOLD_S`` so their slots are busy and pjsua answers the rest with a stateless 486
  that costs no socket.
* **Message size.** pjsip reads SIP messages of at most ``MAX_PKT_LEN`` (4000) bytes; a larger
  INVITE may arrive with its SDP cut off or ignored, and pjsua would then answer 200 with an
  offer of its own. ``check_invite`` refuses such INVITEs (513 when too large or cut short,
  488 when no SDP offer could be read), so an offer with no common codec never gets a 200.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from telephony.pjlib import MAX_PKT_LEN

KEY_FREE_S = 1.0
"""How long a media transport's two ioqueue keys stay taken after it closed (500 ms + margin)."""
IOQUEUE_KEYS = 64
"""PJ_IOQUEUE_MAX_HANDLES of the wheel."""
RESERVED_KEYS = 16
"""Kept for SIP listeners and TCP connections."""
KEYS_PER_CALL = 2
MAX_TRANSPORTS = (IOQUEUE_KEYS - RESERVED_KEYS) // KEYS_PER_CALL
"""Media transports alive or recently closed that the queue can hold (24)."""
PRESSURE_TRANSPORTS = MAX_TRANSPORTS // 2
"""From here on, calls we refuse keep their slot for ``REFUSE_HOLD_S`` before the response."""
REFUSE_HOLD_S = 0.6
RETRY_AFTER_S = 2
"""Retry-After (s) on a 503 from this endpoint."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """The final response an incoming call gets instead of being taken."""

    status: int
    reason: str
    retry_after: int | None = None

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("Retry-After", str(self.retry_after)),) if self.retry_after is not None else ()


BUSY = Refusal(486, "Busy Here")
OVERLOADED = Refusal(503, "Service Unavailable", RETRY_AFTER_S)
TOO_LARGE = Refusal(513, "Message Too Large")
NO_OFFER = Refusal(488, "Not Acceptable Here")

_CONTENT_LENGTH = re.compile(r"^(?:Content-Length|l)[ \t]*:[ \t]*(\d+)", re.I | re.M)


def check_invite(whole_msg: str, remote_offered: bool) -> Refusal | None:
    """Refuse an INVITE pjsip did not read whole, or one without a readable SDP offer."""
    raw = whole_msg.encode("utf-8", "surrogateescape")
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    match = _CONTENT_LENGTH.search(head.decode("latin-1"))
    declared = int(match.group(1)) if match else len(body)
    if len(raw) >= MAX_PKT_LEN or declared > len(body):
        return TOO_LARGE
    if not remote_offered:
        return NO_OFFER  # no SDP, or one pjsip could not parse: answering would offer our own
    return None


class MediaBudget:
    """Media transports alive now or closed less than ``KEY_FREE_S`` ago (PJSIP thread only)."""

    def __init__(self, limit: int = MAX_TRANSPORTS, pressure: int = PRESSURE_TRANSPORTS) -> None:
        self.limit = limit
        self.pressure_at = pressure
        self.live = 0
        self._closed: deque[float] = deque()
        self.refused = 0
        """Calls refused for the budget since start."""

    def opened(self) -> None:
        self.live += 1

    def closed(self, now: float) -> None:
        self.live = max(0, self.live - 1)
        self._closed.append(now)

    def in_use(self, now: float) -> int:
        while self._closed and now - self._closed[0] >= KEY_FREE_S:
            self._closed.popleft()
        return self.live + len(self._closed)

    def exhausted(self, now: float) -> bool:
        """True when taking one more call could leave pjsip no socket for the next INVITE."""
        return self.in_use(now) >= self.limit

    def pressure(self, now: float) -> bool:
        return self.in_use(now) >= self.pressure_at
