"""An MQTT broker for installs that configure none (``MqttSettings.host is None``).

Two backends:

* ``mosquitto`` (preferred when the binary exists): a child process running the C broker. It is
  the more robust choice: it keeps serving while this process's event loop is busy or the GIL is
  held by a decoder, survives a crash of this process long enough for other clients to notice,
  persists sessions if asked, and is the broker tested in production everywhere.
* ``amqtt`` (fallback, pure Python): runs inside this event loop. No extra binary, but it shares
  the loop and the GIL with the speech pipeline, so a stalled loop stalls the broker too.

``backend="auto"`` picks mosquitto when found, else amqtt. Both bind ``host`` (loopback by
default) and allow anonymous clients: the embedded broker is for a single machine. The secure
mode (mosquitto only) gives it a certificate (``cert_file``/``key_file``: the one listener speaks
TLS only) and ``users`` (a password file from ``mosquitto_passwd``: no anonymous clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from amqtt.broker import Broker

log = logging.getLogger(__name__)

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for path in MOSQUITTO_PATHS:
        if Path(path).exists():
            return path
    return None


class BrokerError(RuntimeError):
    """The embedded broker could not start."""


class EmbeddedBroker:
    """``async start()`` / ``async stop()`` an MQTT broker on ``host:port``.

    ``persistence_dir`` (mosquitto only) keeps retained messages and persistent sessions across
    restarts of the broker.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 18830,
        *,
        backend: Literal["auto", "mosquitto", "amqtt"] = "auto",
        persistence_dir: Path | None = None,
        start_timeout: float = 5.0,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.cert_file = cert_file
        self.key_file = key_file
        self.users = dict(users or {})
        self.port = port
        self.persistence_dir = persistence_dir
        self.start_timeout = start_timeout
        self._mosquitto = find_mosquitto()
        if backend == "auto":
            backend = "mosquitto" if self._mosquitto else "amqtt"
        if backend == "mosquitto" and not self._mosquitto:
            raise BrokerError("mosquitto binary not found (apt-get install mosquitto)")
        if backend == "amqtt" and (cert_file or self.users):
            raise BrokerError("a TLS or password-protected embedded broker needs mosquitto (apt-get install mosquitto)")
        if bool(cert_file) != bool(key_file):
            raise BrokerError("the embedded broker's TLS needs both cert_file and key_file")
        self.backend: Literal["mosquitto", "amqtt"] = backend
        self._proc: asyncio.subprocess.Process | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._amqtt: Broker | None = None

    @property
    def running(self) -> bool:
        if self.backend == "mosquitto":
            return self._proc is not None and self._proc.returncode is None
        return self._amqtt is not None

    async def start(self) -> None:
        if self.running:
            return
        if self.backend == "mosquitto":
            await self._start_mosquitto()
        else:
            await self._start_amqtt()
        log.info("embedded MQTT broker (%s) on %s:%d", self.backend, self.host, self.port)

    async def stop(self) -> None:
        """Stop the broker (SIGTERM, so mosquitto saves its persistence file); idempotent."""
        proc, self._proc = self._proc, None
        await stop_process(proc)
        broker, self._amqtt = self._amqtt, None
        if broker is not None:
            with contextlib.suppress(Exception):
                await broker.shutdown()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def config_text(self, password_file: Path | None = None) -> str:
        """The mosquitto configuration this broker runs with."""
        # ``user``: when started as root, mosquitto otherwise drops to user "mosquitto", which
        # cannot write our persistence directory; ignored when not root.
        lines = [f"listener {self.port} {self.host}"]
        if self.cert_file is not None:
            lines += [f"certfile {self.cert_file}", f"keyfile {self.key_file}", "tls_version tlsv1.2"]
        if password_file is not None:
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines += ["allow_anonymous true"]
        lines += ["log_dest stderr",
                 f"user {getpass.getuser()}",
                 # Nagle on the broker's sockets delays a message behind an unacknowledged
                 # one by a delayed-ACK period (20-40 ms measured with a partials stream).
                 "set_tcp_nodelay true",
                 "log_type error", "log_type warning"]
        if self.persistence_dir is not None:
            lines += ["persistence true", f"persistence_location {self.persistence_dir}/",
                      "autosave_interval 1"]
        return "\n".join(lines) + "\n"

    async def _start_mosquitto(self) -> None:
        assert self._mosquitto is not None
        conf = self._write_config()  # a few hundred bytes: not worth a thread
        self._proc = await asyncio.create_subprocess_exec(
            self._mosquitto, "-c", str(conf),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # stopped by us, after the publishers drained, not by Ctrl-C
        )
        try:
            await self._wait_listening()
        except BrokerError:
            proc = self._proc
            err = b""
            if proc.returncode is not None and proc.stderr is not None:
                err = await proc.stderr.read()
            await self.stop()
            raise BrokerError(f"mosquitto did not start on port {self.port}: {err.decode()[-400:]}") from None

    def _write_config(self) -> Path:
        self._tmp = tempfile.TemporaryDirectory(prefix="mosquitto-")
        conf = Path(self._tmp.name) / "mosquitto.conf"
        if self.persistence_dir is not None:
            Path(self.persistence_dir).mkdir(parents=True, exist_ok=True)
        passwd = self._write_password_file(Path(self._tmp.name)) if self.users else None
        conf.write_text(self.config_text(passwd))
        return conf

    def _write_password_file(self, folder: Path) -> Path:
        """Hashed passwords (mosquitto's own PBKDF2 format, via ``mosquitto_passwd``), owner-only."""
        import subprocess

        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        path = folder / "passwd"
        path.touch(mode=0o600)
        for user, password in self.users.items():
            done = subprocess.run([tool, "-b", str(path), user, password], capture_output=True, text=True)
            if done.returncode != 0:
                raise BrokerError(f"mosquitto_passwd failed: {done.stderr.strip()[-300:]}")
        return path

    async def _start_amqtt(self) -> None:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        broker = Broker(config)
        try:
            await broker.start()
        except Exception as exc:
            raise BrokerError(f"amqtt did not start on port {self.port}: {exc}") from exc
        self._amqtt = broker
        await self._wait_listening()

    async def _wait_listening(self) -> None:
        await wait_listening(self.host, self.port, self._proc, self.start_timeout)


async def wait_listening(host: str, port: int, proc: asyncio.subprocess.Process | None,
                         timeout_s: float) -> None:
    """Return once ``host:port`` accepts a connection; BrokerError when ``proc`` (the broker's
    process, if any) exits first or ``timeout_s`` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        if proc is not None and proc.returncode is not None:
            raise BrokerError("broker process exited")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if loop.time() > deadline:
                raise BrokerError("broker is not listening") from None
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


async def stop_process(proc: asyncio.subprocess.Process | None, grace_s: float = 5.0) -> None:
    """SIGTERM (mosquitto saves its state), SIGKILL after ``grace_s``; nothing if already gone."""
    if proc is None or proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
