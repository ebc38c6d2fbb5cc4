"""MQTT topic layout of the live feed: which topics an event goes to, at which QoS, retained or not.

One event fans out to its category topic (``state``, ``transcript``, ``tone``, ``alerts``,
``dtmf``, ``ivr``, ``summary``) and to ``events``, the lossless in-order stream of everything.
Each event class declares its category and urgency (``meta``); events without a category
(speech.started/ended) go to ``events`` only. docs/mqtt.md documents the layout; docs/events.md
the payloads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from speech.event_base import Category
from speech.events import Event

QOS_AT_MOST_ONCE = 0
QOS_AT_LEAST_ONCE = 1

RETAINED_CATEGORIES = frozenset({Category.STATE})
"""Categories whose last message the broker keeps for late subscribers."""


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT publication, as stored in the outbox."""

    topic: str
    payload: bytes
    qos: int = QOS_AT_MOST_ONCE
    retain: bool = False


class Topics:
    """Topic names under one prefix (``settings.topic_prefix``)."""

    def __init__(self, prefix: str = "callcenter") -> None:
        if not prefix or any(c in prefix for c in "+#") or prefix.endswith("/"):
            raise ValueError("topic prefix must be non-empty, without wildcards or trailing '/'")
        self.prefix = prefix

    def call(self, call_id: str, category: str) -> str:
        if not call_id or any(c in call_id for c in "/+#"):
            raise ValueError("call_id must be non-empty and free of '/', '+' and '#'")
        return f"{self.prefix}/calls/{call_id}/{category}"

    @property
    def active_calls(self) -> str:
        return f"{self.prefix}/active_calls"

    def all_calls(self, category: str) -> str:
        """Subscription filter for one category of every call (``{prefix}/calls/+/{category}``)."""
        return f"{self.prefix}/calls/+/{category}"

    @staticmethod
    def call_id_of(topic: str) -> str | None:
        """The call id in ``{prefix}/calls/{call_id}/...``, else None."""
        parts = topic.split("/")
        try:
            i = parts.index("calls")
        except ValueError:
            return None
        return parts[i + 1] if len(parts) > i + 2 else None


def qos_for(event: Event) -> int:
    """QoS 1 for urgent events (control, alerts, keys, finals: they must arrive); 0 for the rest
    (partials, tone updates), which the next one supersedes."""
    return QOS_AT_LEAST_ONCE if event.meta.urgent else QOS_AT_MOST_ONCE


def encode(event: Event) -> bytes:
    """The payload: the event's ``to_dict()`` as compact UTF-8 JSON."""
    return json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()


def messages_for(event: Event, topics: Topics) -> list[Message]:
    """The publications of one event: its category topic, then ``events``.

    ``events`` is always QoS 1: it is the stream replay-in-order consumers rely on, so even
    partials must not be lost there when the broker restarts.
    """
    payload = encode(event)
    out: list[Message] = []
    category = event.meta.category
    if category is not None:
        out.append(
            Message(
                topics.call(event.call_id, category.value),
                payload,
                qos_for(event),
                category in RETAINED_CATEGORIES,
            )
        )
    out.append(Message(topics.call(event.call_id, "events"), payload, QOS_AT_LEAST_ONCE, False))
    return out


def active_calls_message(calls: Iterable[dict[str, Any]], topics: Topics) -> Message:
    """The retained ``{prefix}/active_calls`` list (QoS 1)."""
    payload = json.dumps(list(calls), separators=(",", ":"), ensure_ascii=False).encode()
    return Message(topics.active_calls, payload, QOS_AT_LEAST_ONCE, True)
