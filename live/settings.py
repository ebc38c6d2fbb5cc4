"""Settings of the live feed: the MQTT broker and the agent console."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MqttSettings(_Frozen):
    host: str | None = None
    """Broker host; ``None`` runs an embedded broker on ``port``."""
    port: int = 1883
    embedded_port: int = 18830
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    topic_prefix: str = "callcenter"
    outbox_max: int = 100_000
    """Events kept on disk while the broker is unreachable."""
    enabled: bool = True


class ConsoleSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = 8080
    token: str = "change-me"
    enabled: bool = True
