"""The stage contract: the one interface the pipeline drives, whatever the stage does.

A stage sees every audio frame and every event emitted upstream of it, in call-time order, and
returns the events it produces (pipecat's ``process_frame``, without async: detectors are cheap
numpy work, ~µs per frame). The pipeline never looks a stage up by name or type; it binds each
stage to its position (:meth:`Stage.bind`) and from then on only calls the methods below.

Async stages (a recognizer, later a knowledge lookup) do slow work off the chain and send results
back with ``self.ctx.emit``: they re-enter the chain right after the stage that produced them.
Such a stage reports results it still owes in :attr:`Stage.pending` (replay's ``feed`` and
``end()`` wait on :meth:`Stage.drain`) and frees its resources in :meth:`Stage.aclose`. Typed
:class:`Control` messages (e.g. the IVR's :class:`SetGrammar`) travel down the chain to every
stage and are never published to sinks. Sync detectors override only what they need; every
default is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from speech.events import Event
from speech.frames import AudioFrame, Party


@dataclass(frozen=True, slots=True)
class StageContext:
    """What the pipeline binds a stage to: its call and its position in the chain."""

    call_id: str
    emit: Callable[[Event], None]
    """Send an event into the chain right after the bound stage (later stages, then sinks).
    Call it on the event loop (from a worker thread: ``loop.call_soon_threadsafe``). Events
    emitted after the pipeline closed are dropped."""
    clock: Callable[[], float]
    """The call clock: call time of the newest frame processed."""

    @property
    def now(self) -> float:
        return self.clock()


@dataclass(frozen=True, slots=True)
class Control:
    """Base of typed instructions to stages. Routed through the chain in order with frames and
    events, seen by every stage's :meth:`Stage.process_control`; never published to sinks."""


@dataclass(frozen=True, slots=True)
class SetGrammar(Control):
    """Grammar mode for a party's next utterances (IVR menus); ``phrases=None``: free speech."""

    party: Party
    phrases: tuple[str, ...] | None = None


class Stage:
    """Base class: override what you need; every default does nothing."""

    name: str = "stage"
    """For logs and metrics only: the pipeline never looks a stage up by it."""

    _ctx: StageContext | None = None

    def bind(self, ctx: StageContext) -> None:
        """Called once by the pipeline before the first frame."""
        self._ctx = ctx

    @property
    def ctx(self) -> StageContext:
        if self._ctx is None:
            raise RuntimeError(f"stage {self.name!r} is not bound to a pipeline")
        return self._ctx

    def process_frame(self, frame: AudioFrame) -> list[Event]:
        """Handle one 20 ms frame of one party."""
        return []

    def process_event(self, event: Event) -> list[Event]:
        """See an event from upstream (VAD, ASR, IVR marks, RFC 4733 DTMF...)."""
        return []

    def process_control(self, control: Control) -> None:
        """See a control message; ignore the kinds you do not handle."""

    def finish(self, t: float) -> list[Event]:
        """End of the call at call time ``t``: close anything still open."""
        return []

    @property
    def pending(self) -> int:
        """Results this stage still owes the chain (e.g. finals of utterances already ended).
        While it is non-zero, replay's ``feed`` calls :meth:`drain` before the clock moves on."""
        return 0

    async def drain(self) -> None:
        """Wait until every result of work started so far has been emitted."""

    async def aclose(self) -> None:
        """Stop and free resources (threads, sessions). Called once, after ``end()`` drained or
        on ``cancel()``; work still running may be abandoned."""
