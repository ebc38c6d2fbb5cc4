"""What ``callcenter serve`` runs on this host when the service spans several hosts.

- ``all`` (the default): everything on one machine, as before; ``sip.remote_workers`` are
  dispatched to as well.
- ``front``: the Kamailio front (dispatcher, registrar, admission), the console, the CRM API, the
  ACD feed and the embedded broker unless ``mqtt.host`` names one. Local workers only when
  ``sip.workers`` is set; the rest are ``sip.remote_workers``, probed by OPTIONS.
- ``workers``: endpoint workers only, listening on ``sip.bind_host`` (this host's address the
  front reaches), supervised and restarted here. No front, console or broker: calls go to the
  shared store (``store.url``, PostgreSQL) and live events to the one broker (``mqtt.host``).
  Recordings, call records and spools stay in this host's ``data_dir``. With ``mqtt.bridge`` the
  workers publish to a mosquitto on this host bridged to that broker (``live.bridge``).

The ACD agent state is shared through the store already (row locks on PostgreSQL), so two hosts
never ring the same agent; each host's workers are named ``worker<i>@<bind_host>`` there.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

from callcenter.settings import MqttSettings, Settings
from telephony.kamailio import Worker, kamailio_binary

if TYPE_CHECKING:
    from callcenter.capacity import CapacityPlan
    from live.bridge import BridgedBroker

Role = Literal["all", "front", "workers"]
ROLES: tuple[Role, ...] = ("all", "front", "workers")


class RoleError(ValueError):
    """The settings cannot run this role (a missing shared store, broker or address)."""


def check_role(settings: Settings, role: Role) -> None:
    """Refuse, with what to set, a role these settings cannot run."""
    sip = settings.sip
    if role == "workers" or sip.remote_workers:
        who = "serve --role workers" if role == "workers" else "sip.remote_workers"
        url = settings.store.url or ""
        if not url or url.startswith("sqlite"):
            raise RoleError(f"{who}: every host writes calls to one shared store: set store.url to the "
                            "PostgreSQL server's (postgresql+psycopg://user@host/db)")
        if settings.mqtt.enabled and settings.mqtt.host is None:
            raise RoleError(f"{who}: every host publishes to one broker: set mqtt.host (the embedded "
                            "broker listens on 127.0.0.1 only) or mqtt.enabled = false")
    if role == "workers":
        if sip.bind_host is None or sip.bind_host == sip.host:
            raise RoleError("serve --role workers listens on this host's own address: set sip.bind_host "
                            "(sip.host/sip.port stay the front's)")
        return
    if role == "front" or sip.remote_workers:
        if sip.front == "none":
            raise RoleError("remote workers and --role front need the Kamailio front (sip.front = auto or kamailio)")
        if kamailio_binary() is None:
            raise RoleError("remote workers and --role front need kamailio (apt-get install kamailio)")
    if role == "front" and not sip.remote_workers and not sip.workers:
        raise RoleError("serve --role front with no workers: set sip.remote_workers or sip.workers")


def plan_role(settings: Settings, role: Role, planned: tuple[int, bool],
              plan: CapacityPlan | None = None) -> tuple[int, bool]:
    """(local workers, whether this host runs the front) for ``role``, from the one-host plan
    ``planned`` (``serve.plan_workers``). A worker host takes ``sip.workers``, else its own
    capacity ``plan`` (``capacity_for`` on this host), else one worker per core. ``check_role``
    has passed."""
    count, use_front = planned
    if role == "workers":
        if settings.sip.workers:
            return settings.sip.workers, False
        return (plan.workers if plan is not None else max(1, os.cpu_count() or 1)), False
    if role == "front":
        return (settings.sip.workers or 0), True
    if settings.sip.remote_workers:
        return max(count, 1), True
    return count, use_front


async def start_bridge(settings: Settings) -> tuple[BridgedBroker, MqttSettings]:
    """A worker host's own mosquitto bridged to the one broker (``mqtt.bridge``), and the MQTT
    settings its workers publish with (to it, on 127.0.0.1)."""
    from live.bridge import BridgedBroker, BridgeTarget

    mqtt = settings.mqtt
    assert mqtt.host is not None  # check_role
    host = settings.sip.bind_host or "worker-host"
    target = BridgeTarget(mqtt.host, mqtt.port, mqtt.topic_prefix, mqtt.username, mqtt.password,
                          (mqtt.ca_file or None) if mqtt.tls else None, name=f"callcenter-{host}")
    broker = BridgedBroker("127.0.0.1", mqtt.embedded_port, target, settings.data_dir / "mqtt-bridge")
    await broker.start()
    local = mqtt.model_copy(update={"host": "127.0.0.1", "port": mqtt.embedded_port, "tls": False,
                                    "username": None, "password": None})
    return broker, local


def remote_workers(settings: Settings) -> list[Worker]:
    """``sip.remote_workers`` as dispatcher destinations."""
    out = []
    for item in settings.sip.remote_workers:
        host, _, port = item.rpartition(":")
        out.append(Worker(host, int(port)))
    return out


def local_worker_ports(settings: Settings, count: int, use_front: bool) -> list[int]:
    """Ports of this host's workers: consecutive from ``sip.worker_base_port`` behind a front
    (here or on another host), else the dialed port itself (one worker, no front)."""
    behind = use_front or settings.sip.worker_host != settings.sip.host
    return [settings.sip.worker_base_port + i for i in range(count)] if behind else [settings.sip.port]
