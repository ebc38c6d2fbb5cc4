"""What the IVR needs from a live call, and what it hands back when the caller leaves it.

Kept apart from the session so the composition root can implement :class:`IvrMedia` over
pjsua2 (and tests over a fake) without reading the state machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from speech.events import Event


class IvrMedia(Protocol):
    """What the IVR needs from a live call; the lead's wiring implements it over pjsua2."""

    async def play(self, prompt: Path, *, name: str) -> bool:
        """Play a WAV into the call. True: it finished; False: stopped (barge-in or hang-up)."""
        ...

    def stop_playback(self) -> None:
        """Stop the current prompt now; ``play`` then returns False. No-op when idle."""
        ...

    def set_grammar(self, phrases: Sequence[str] | None) -> None:
        """Caller ASR in grammar mode for these phrases; None: back to free-form."""
        ...

    def secure_input(self, on: bool) -> None:
        """A secure collection starts (True) or ends: the call's recording holds silence meanwhile,
        so keyed digits (their in-band tones) never reach the file."""
        ...

    async def route(self, queue: str) -> None:
        """Hand the call to a named queue."""
        ...

    async def transfer(self, uri: str) -> None:
        """Blind-transfer (SIP REFER) to ``uri``; raise :class:`TransferFailed` if refused."""
        ...

    async def hangup(self) -> None:
        """End the call from the IVR side."""
        ...

    def emit(self, event: Event) -> None:
        """Put an IvrStep/PlaybackStarted/PlaybackEnded into the call's event stream."""
        ...


class TransferFailed(RuntimeError):
    """Raised by ``IvrMedia.transfer`` when the REFER is refused or fails; the flow falls back."""


@dataclass
class IvrResult:
    """How the caller left the IVR.

    ``outcome``: ``queue``, ``transfer``, ``hangup`` (the flow hung up), ``caller_hangup`` or
    ``failed`` (a transfer failed with no fallback). ``collected`` holds digits by ``store_as``
    name with secure entries masked (``*`` per digit), so the result can be stored or published
    as is; code that must check a secure entry (a PIN) asks :meth:`secure_value`.
    """

    outcome: str
    queue: str | None = None
    transfer_uri: str | None = None
    path: list[str] = field(default_factory=list)
    collected: dict[str, str] = field(default_factory=dict)
    secure_keys: tuple[str, ...] = ()

    @classmethod
    def masked(
        cls, outcome: str, path: Sequence[str], collected: Mapping[str, str], secure: Set[str], **kw: Any
    ) -> IvrResult:
        """A result with the ``secure`` entries of ``collected`` masked (and kept aside)."""
        result = cls(
            outcome=outcome, path=list(path), secure_keys=tuple(sorted(secure)),
            collected={k: ("*" * len(v) if k in secure else v) for k, v in collected.items()}, **kw,
        )
        result._secrets = {k: collected[k] for k in secure}  # type: ignore[attr-defined]
        return result

    def secure_value(self, key: str) -> str | None:
        """The unmasked digits of a secure entry (kept out of fields, repr and asdict)."""
        return getattr(self, "_secrets", {}).get(key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, secure digits masked."""
        return {
            "outcome": self.outcome, "queue": self.queue, "transfer_uri": self.transfer_uri,
            "path": list(self.path), "collected": dict(self.collected), "secure_keys": list(self.secure_keys),
        }
