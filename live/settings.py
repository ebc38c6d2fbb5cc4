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
    """CA that signed the broker's certificate (clients verify it); else the system's CAs."""
    cert_file: Path | None = None
    key_file: Path | None = None
    """The embedded broker's server certificate and key: with ``tls`` it listens with TLS only,
    and with ``username``/``password`` it refuses anonymous clients."""
    topic_prefix: str = "callcenter"
    outbox_max: int = 100_000
    """Events kept on disk while the broker is unreachable."""
    enabled: bool = True
    bridge: bool = False
    """On a worker host (``serve --role workers``): publish to a mosquitto on 127.0.0.1:
    ``embedded_port`` bridged to ``host:port`` (``live.bridge``), which queues the call events
    while that broker is out of reach. Off: publish to ``host:port`` directly."""


class ConsoleSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    """Opens the console (and, unless ``store.api_token`` is set, the CRM API). Unset: generated
    on first run into ``data_dir/secrets/console_token`` (0600); ``change-me`` is refused."""
    enabled: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    """HTTPS for the console and the CRM API (PEM files); cookies are then ``Secure``."""
    hsts: bool = False
    """Send ``Strict-Transport-Security`` over HTTPS (browsers then refuse plain HTTP)."""
