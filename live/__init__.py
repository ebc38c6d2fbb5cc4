"""Live feed to agents: MQTT topics, a durable publisher, an embedded broker, the agent console.

``live`` depends on ``speech.events`` only; the lead's wiring injects everything else (settings
objects, a call-history search) so this package stays a sink.
"""

from live.broker import EmbeddedBroker
from live.outbox import Outbox
from live.publisher import MqttPublisher, PublisherStats
from live.topics import Message, Topics, messages_for, qos_for

__all__ = [
    "EmbeddedBroker",
    "Message",
    "MqttPublisher",
    "Outbox",
    "PublisherStats",
    "Topics",
    "messages_for",
    "qos_for",
]
