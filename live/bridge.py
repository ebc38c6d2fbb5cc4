"""A local mosquitto bridged to the service's one broker: the live feed of a worker host.

Workers on another host than the broker can publish to it directly (``mqtt.host``), or, with
``mqtt.bridge``, to a mosquitto on their own host that forwards the call topics to it (mosquitto's
bridge, the broker-cluster option that needs nothing but mosquitto). The bridge holds a persistent
session and queues what it could not forward (``max_queued_messages``), so a worker host cut off
from the broker keeps publishing locally and its events arrive when the link is back, without the
publishers noticing. Only ``<prefix>/calls/#`` goes out: workers publish call events; agents'
and queues' topics come from the front.
"""

from __future__ import annotations

import asyncio
import getpass
from dataclasses import dataclass
from pathlib import Path

from live.broker import BrokerError, find_mosquitto, stop_process, wait_listening

QUEUE_MAX = 100_000
"""Messages the bridge keeps while the remote broker is out of reach (then it drops the oldest)."""


@dataclass(frozen=True)
class BridgeTarget:
    """The remote broker the bridge forwards to."""

    host: str
    port: int
    topic_prefix: str = "callcenter"
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    """Bridge over TLS, verifying the remote broker with this CA (None: plain TCP)."""
    name: str = "callcenter"
    """Names the bridge's client id on the remote broker: one per host (``callcenter-<host>``)."""


def bridge_config(listen_host: str, listen_port: int, target: BridgeTarget, persistence_dir: Path) -> str:
    """mosquitto.conf: an anonymous listener for this host's publishers and one bridge."""
    lines = [
        "per_listener_settings false",
        f"listener {listen_port} {listen_host}",
        "allow_anonymous true",
        f"user {getpass.getuser()}",  # as root, mosquitto would drop to a user that cannot write here
        "persistence true", f"persistence_location {persistence_dir}/", "autosave_interval 1",
        f"max_queued_messages {QUEUE_MAX}",
        "log_dest stderr", "log_type error", "log_type warning",
        "",
        f"connection {target.name}",
        f"address {target.host}:{target.port}",
        f"topic {target.topic_prefix}/calls/# out 1",
        "cleansession false",  # the remote keeps the bridge's session: QoS 1 is resent after a cut
        f"remote_clientid {target.name}",
        f"local_clientid {target.name}-local",
        "queue_qos0_messages true",
        "restart_timeout 1 10",
        "keepalive_interval 10",
        "notifications false",
        "try_private true",
    ]
    if target.username:
        lines += [f"remote_username {target.username}", f"remote_password {target.password or ''}"]
    if target.ca_file is not None:
        lines += [f"bridge_cafile {target.ca_file}", "bridge_insecure false"]
    return "\n".join(lines) + "\n"


class BridgedBroker:
    """``start``/``stop`` a mosquitto on ``host:port`` bridged to ``target``; state and log in
    ``folder`` (its log is a file: a bridge retrying for hours must not fill a pipe)."""

    def __init__(self, host: str, port: int, target: BridgeTarget, folder: Path) -> None:
        self.host, self.port, self.target = host, port, target
        self.folder = Path(folder)
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / "mosquitto-bridge.log"

    async def start(self, wait_s: float = 10.0) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError("mqtt.bridge needs mosquitto (apt-get install mosquitto)")
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "mosquitto-bridge.conf"
        conf.write_text(bridge_config(self.host, self.port, self.target, self.folder))
        conf.chmod(0o600)  # it may hold the remote broker's password
        with open(self.log_path, "ab") as log:  # noqa: ASYNC230 - opened once, handed to the child
            self._proc = await asyncio.create_subprocess_exec(
                binary, "-c", str(conf), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        try:
            await wait_listening(self.host, self.port, self._proc, wait_s)
        except BrokerError:
            await self.stop()
            raise BrokerError(f"the bridge broker did not listen on {self.host}:{self.port}; "
                              f"see {self.log_path}") from None

    async def stop(self) -> None:
        """SIGTERM (mosquitto saves its queue); idempotent."""
        proc, self._proc = self._proc, None
        await stop_process(proc)
