"""Redaction at the store's door: whatever writes a call (the live after-call chain, the REST
API, the durable writer's spool, ``deliver``) gets it redacted the same way first.

The live chain hands over events it already redacted; redacting them again changes nothing (a
tag holds no digits), so the second pass costs a few regex scans and guarantees that no path,
present or future, stores PII in clear. A summary sent from outside is redacted as well: its
free text (phrases, actions, follow-ups, evidence, entity values) and, when any keypad digit was
masked, its DTMF string and keyed entities.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from speech.events import DtmfDigit, Event
from summaries.redact import MASKED_DIGIT, Redactor
from summaries.summary import CallSummary


@dataclass(frozen=True)
class StoreRedaction:
    """A call as it may be stored: redacted events and summary, and (only when the store keeps
    them) the originals of changed events by index."""

    events: list[Event]
    summary: CallSummary | None
    originals: dict[int, dict[str, Any]]
    redacted_count: int


class IngestRedactor:
    """Builds a fresh ``Redactor`` per call (it follows one call's IVR state)."""

    def __init__(self, *, secure_ivr_nodes: Iterable[str] = (), keep_original: bool = False) -> None:
        self.secure_ivr_nodes = tuple(secure_ivr_nodes)
        self.keep_original = keep_original

    def redact(
        self,
        events: Iterable[Event],
        summary: CallSummary | None = None,
        originals: Mapping[int, dict[str, Any]] | None = None,
    ) -> StoreRedaction:
        evs = list(events)
        redactor = Redactor(keep_original=self.keep_original, secure_ivr_nodes=self.secure_ivr_nodes)
        red = redactor.redact_call(evs)
        changed = {i for i, (a, b) in enumerate(zip(evs, red.events, strict=True)) if a.to_dict() != b.to_dict()}
        kept = {i: o for i, o in red.originals.items() if i in changed}
        merged = {**kept, **dict(originals or {})}  # the caller's originals are the real ones
        masked_keys = any(isinstance(evs[i], DtmfDigit) for i in changed)
        out = redact_summary(summary, redactor, red.events, masked_keys) if summary is not None else None
        return StoreRedaction(red.events, out, merged, len(changed))


def redact_summary(summary: CallSummary, redactor: Redactor, events: list[Event], masked_keys: bool) -> CallSummary:
    """The summary with PII masked in every free-text field (identifiers and labels stay)."""
    t = redactor.redact_text
    changes: dict[str, Any] = {
        "reason_phrase": t(summary.reason_phrase),
        "actions_taken": tuple(t(a) for a in summary.actions_taken),
        "key_phrases": tuple(t(k) for k in summary.key_phrases),
        "next_steps": tuple(dataclasses.replace(f, text=t(f.text)) for f in summary.next_steps),
        "follow_ups": tuple(dataclasses.replace(f, text=t(f.text)) for f in summary.follow_ups),
        "entities": tuple(
            dataclasses.replace(e, value=_mask_digits(e.value) if masked_keys and e.source == "dtmf" else t(e.value))
            for e in summary.entities
        ),
        "evidence": {k: tuple(dataclasses.replace(e, text=t(e.text)) for e in v) for k, v in summary.evidence.items()},
        "dtmf": t(summary.dtmf),
    }
    if masked_keys:
        changes["dtmf"] = "".join(e.digit for e in events if isinstance(e, DtmfDigit))
    return dataclasses.replace(summary, **changes)


def _mask_digits(value: str) -> str:
    return re.sub(r"\d", MASKED_DIGIT, value)
