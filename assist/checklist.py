"""The script checklist: required agent phrases per queue (greeting, identity verification,
disclosure, closing), ticked as the agent says them (fuzzy), as ``checklist.update`` events.

The opening list goes out when the call starts (the ``default`` list) and again when the call's
queue becomes known (IVR route, queue entry, an agent joining from a queue) and has its own list;
items already ticked stay ticked. Stored with the call's events and in its summary.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assist.files import Strict, load_model
from assist.phrases import PhraseMatcher
from speech.events import (
    CallStarted,
    ChecklistUpdate,
    Event,
    FinalTranscript,
    IvrAction,
    IvrStep,
    PartyJoined,
    QueueAction,
    QueueUpdate,
)
from speech.frames import Party
from speech.stage import Stage

DEFAULT_CHECKLISTS = Path(__file__).parent / "defaults" / "checklists.yaml"
DEFAULT_QUEUE = "default"


class ChecklistItem(Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    label: str = Field(min_length=1)
    phrases: tuple[str, ...] = Field(min_length=1)

    @field_validator("phrases")
    @classmethod
    def _no_blank(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not p.strip() for p in value):
            raise ValueError("phrases must not be empty")
        return value


class ChecklistFile(Strict):
    checklists: dict[str, tuple[ChecklistItem, ...]] = Field(min_length=1)
    """Queue name (or ``default``) → its items in script order."""

    @field_validator("checklists")
    @classmethod
    def _unique_ids(cls, value: dict[str, tuple[ChecklistItem, ...]]) -> dict[str, tuple[ChecklistItem, ...]]:
        for queue, items in value.items():
            ids = [i.id for i in items]
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"queue {queue!r}: item id(s) {', '.join(dup)} used twice")
            if not items:
                raise ValueError(f"queue {queue!r} has no items")
        return value


class ChecklistSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    file: Path | None = None
    """Checklists YAML (default: ``assist/defaults/checklists.yaml``)."""
    fuzzy_threshold: float = Field(85.0, ge=50, le=100)


def load_checklists(path: Path | None = None) -> ChecklistFile:
    return load_model(path or DEFAULT_CHECKLISTS, ChecklistFile)


class ChecklistStage(Stage):
    """Ticks the checklist of the call's queue on the agent's final transcripts."""

    name = "checklist"

    def __init__(self, settings: ChecklistSettings, checklists: ChecklistFile | None = None) -> None:
        self.settings = settings
        self.file = checklists or load_checklists(settings.file)
        self.queue: str | None = None
        self.items: tuple[ChecklistItem, ...] = ()
        self.done: dict[str, float] = {}
        self._matchers: dict[str, PhraseMatcher] = {}

    def process_event(self, event: Event) -> list[Event]:
        if isinstance(event, CallStarted):
            return self._use(DEFAULT_QUEUE, event.t)
        queue = _queue_of(event)
        if queue:
            return self._use(queue, event.t)
        if isinstance(event, FinalTranscript) and event.party is Party.AGENT and self.items:
            return self._tick(event)
        return []

    def _use(self, queue: str, t: float) -> list[Event]:
        name = queue if queue in self.file.checklists else DEFAULT_QUEUE
        if name == self.queue or name not in self.file.checklists:
            return []
        self.queue, self.items = name, self.file.checklists[name]
        ids = {i.id for i in self.items}
        self.done = {k: v for k, v in self.done.items() if k in ids}
        thr = self.settings.fuzzy_threshold
        self._matchers = {i.id: PhraseMatcher(i.phrases, threshold=thr) for i in self.items}
        return [self._update(t, "")]

    def _tick(self, final: FinalTranscript) -> list[Event]:
        out: list[Event] = []
        for item in self.items:
            if item.id not in self.done and self._matchers[item.id].match(final.text) is not None:
                self.done[item.id] = round(final.start or final.t, 3)
                out.append(self._update(final.t, item.id))
        return out

    def _update(self, t: float, ticked: str) -> ChecklistUpdate:
        return ChecklistUpdate(t=t, party=Party.AGENT, queue=self.queue or DEFAULT_QUEUE,
                               items=tuple(i.id for i in self.items), labels=tuple(i.label for i in self.items),
                               done=dict(self.done), ticked=ticked)


def _queue_of(event: Event) -> str:
    """The queue an event puts the call in, or ""."""
    if isinstance(event, QueueUpdate) and event.action in (QueueAction.ENTERED, QueueAction.OVERFLOW,
                                                           QueueAction.TRANSFERRED):
        return event.target if event.action is not QueueAction.ENTERED and event.target else event.queue
    if isinstance(event, PartyJoined) and event.party is Party.AGENT:
        return event.queue
    if isinstance(event, IvrStep) and event.action is IvrAction.ROUTE:
        return str(event.detail.get("queue", ""))
    return ""
