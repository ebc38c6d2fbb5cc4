"""MQTT topic layout of the live feed: which topics an event goes to, at which QoS, retained or not.

One event fans out to its category topic (``state``, ``transcript``, ``tone``, ``alerts``,
``dtmf``, ``ivr``, ``summary``, ``queue``, ``agent``) and to ``events``, the lossless in-order
stream of everything. Each event class declares its category and urgency (``meta``); events
without a category (speech.started/ended) go to ``events`` only. Two categories also have a home
outside any call, keyed by a field the category implies: an ``agent`` event goes to
``agents/{agent_id}/state`` (retained: a wallboard sees every agent at once), a ``queue`` event to
``queues/{queue}/events``. An agent's call feed (``agents/{id}/call``) is chosen by the publisher,
which knows which agent is on which call (``live.call_agents``). docs/mqtt.md documents the
layout; docs/events.md the payloads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from speech.event_base import Category
from speech.events import Event

log = logging.getLogger(__name__)

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
        _check_level("call_id", call_id)
        return f"{self.prefix}/calls/{call_id}/{category}"

    def agent(self, agent_id: str, leaf: str) -> str:
        """``{prefix}/agents/{agent_id}/{leaf}`` (``state`` or ``call``)."""
        _check_level("agent_id", agent_id)
        return f"{self.prefix}/agents/{agent_id}/{leaf}"

    def queue(self, queue: str, leaf: str) -> str:
        """``{prefix}/queues/{queue}/{leaf}`` (``events`` or ``snapshot``)."""
        _check_level("queue", queue)
        return f"{self.prefix}/queues/{queue}/{leaf}"

    def all_agents(self, leaf: str) -> str:
        """Subscription filter for one leaf of every agent (``{prefix}/agents/+/{leaf}``)."""
        return f"{self.prefix}/agents/+/{leaf}"

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


def valid_level(value: str) -> bool:
    """Whether ``value`` can be one topic level: non-empty, without ``/``, ``+`` or ``#``."""
    return bool(value) and not any(c in value for c in "/+#")


def _check_level(name: str, value: str) -> None:
    if not valid_level(value):
        raise ValueError(f"{name} must be non-empty and free of '/', '+' and '#'")


def qos_for(event: Event) -> int:
    """QoS 1 for urgent events (control, alerts, keys, finals: they must arrive); 0 for the rest
    (partials, tone updates), which the next one supersedes."""
    return QOS_AT_LEAST_ONCE if event.meta.urgent else QOS_AT_MOST_ONCE


def encode(event: Event) -> bytes:
    """The payload: the event's ``to_dict()`` as compact UTF-8 JSON."""
    return json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()


def messages_for(event: Event, topics: Topics, *, agent_feed: str = "") -> list[Message]:
    """The publications of one event: its category topic, then ``events`` (when it belongs to a
    call), then its topic outside the call (agent state, queue events), then ``agent_feed``'s
    call feed (the agent the publisher knows is on this call; "" for none).

    ``events`` is always QoS 1: it is the stream replay-in-order consumers rely on, so even
    partials must not be lost there when the broker restarts. An event without a call id (an
    agent's state set from their phone) has no call topics; an id that cannot be a topic level
    is skipped with a warning rather than failing the call that publishes it.
    """
    payload = encode(event)
    out: list[Message] = []
    category = event.meta.category
    qos = qos_for(event)
    if event.call_id and _usable("call_id", event.call_id, event):
        if category is not None:
            out.append(Message(topics.call(event.call_id, category.value), payload, qos,
                               category in RETAINED_CATEGORIES))
        out.append(Message(topics.call(event.call_id, "events"), payload, QOS_AT_LEAST_ONCE, False))
    if category is Category.AGENT:
        agent_id = _field(event, "agent_id")
        if _usable("agent_id", agent_id, event):
            out.append(Message(topics.agent(agent_id, "state"), payload, QOS_AT_LEAST_ONCE, True))
    elif category is Category.QUEUE:
        queue = _field(event, "queue")
        if _usable("queue", queue, event):
            out.append(Message(topics.queue(queue, "events"), payload, QOS_AT_LEAST_ONCE, False))
    if agent_feed and _usable("agent_id", agent_feed, event):
        out.append(Message(topics.agent(agent_feed, "call"), payload, qos, False))
    return out


def _field(event: Event, name: str) -> str:
    value = getattr(event, name, "")
    return value if isinstance(value, str) else ""


def _usable(name: str, value: str, event: Event) -> bool:
    if valid_level(value):
        return True
    # Ids of our own things (never caller data), but the value is left out all the same.
    log.warning("%s event: %s is not a usable topic level; not published there", event.type.value, name)
    return False


def queue_snapshot_message(snapshot: dict[str, Any], topics: Topics) -> Message:
    """The retained ``{prefix}/queues/{queue}/snapshot`` (QoS 1) of one queue snapshot (a dict
    with at least ``queue``); keys sorted, so equal snapshots are equal bytes."""
    payload = json.dumps(snapshot, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()
    return Message(topics.queue(str(snapshot["queue"]), "snapshot"), payload, QOS_AT_LEAST_ONCE, True)


def active_calls_message(calls: Iterable[dict[str, Any]], topics: Topics) -> Message:
    """The retained ``{prefix}/active_calls`` list (QoS 1)."""
    payload = json.dumps(list(calls), separators=(",", ":"), ensure_ascii=False).encode()
    return Message(topics.active_calls, payload, QOS_AT_LEAST_ONCE, True)
