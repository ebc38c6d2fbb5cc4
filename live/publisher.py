"""Publish a call's events to MQTT without ever making the call wait for the broker.

``publish(event)`` appends the event's messages to the on-disk :class:`~live.outbox.Outbox` and
wakes the sender task; it never awaits the network. The sender connects with aiomqtt, publishes
in outbox order one message at a time (so order holds across QoS levels and reconnects), and
deletes a row only once the broker has it: after PUBACK for QoS 1, after the socket write for
QoS 0. When the broker is down or restarts it reconnects with capped exponential backoff and
resumes from the oldest unacknowledged row, so delivery is at-least-once: a message whose PUBACK
was lost in a broker crash is sent again (an adjacent duplicate on its topic).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiomqtt

from live.call_agents import CallAgents
from live.outbox import Outbox
from live.topics import Message, Topics, active_calls_message, messages_for
from speech.events import CallEnded, CallStarted, Event

log = logging.getLogger(__name__)


class MqttConfig(Protocol):
    """What the publisher reads from ``live.settings.MqttSettings`` (structural, so
    ``live`` does not import ``callcenter``)."""

    @property
    def host(self) -> str | None: ...
    @property
    def port(self) -> int: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def tls(self) -> bool: ...
    @property
    def ca_file(self) -> Path | None: ...
    @property
    def topic_prefix(self) -> str: ...
    @property
    def outbox_max(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: ``initial`` doubling up to ``maximum`` seconds."""

    initial: float = 0.2
    maximum: float = 5.0


@dataclass(frozen=True, slots=True)
class PublisherStats:
    published: int
    """Messages the broker acknowledged since start."""
    pending: int
    """Messages waiting in the outbox."""
    reconnects: int
    """Connections lost or refused since start."""
    dropped: int
    """Messages dropped by the outbox overflow policy (over the outbox file's life)."""
    connected: bool


NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
"""Without it, Nagle holds a QoS 1 PUBLISH behind an unacknowledged QoS 0 one for a delayed-ACK
period: measured 22 ms per message instead of 0.2 ms for alternating QoS."""

_ACTIVE_META_KEY = "active_calls"
_BATCH = 200


class MqttPublisher:
    """Durable, ordered MQTT sink for call events. ``host``/``port`` override the settings
    (the lead's wiring passes the embedded broker's address when ``settings.host`` is None)."""

    def __init__(
        self,
        settings: MqttConfig,
        outbox_path: Path,
        *,
        host: str | None = None,
        port: int | None = None,
        publish_timeout: float = 10.0,
        backoff: Backoff = Backoff(),
        client_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.host = host or settings.host or "127.0.0.1"
        self.port = port or settings.port
        self.topics = Topics(settings.topic_prefix)
        self.outbox = Outbox(outbox_path, settings.outbox_max)
        self.publish_timeout = publish_timeout
        self.backoff = backoff
        self.client_id = client_id or f"callcenter-pub-{uuid.uuid4().hex[:12]}"
        self._active: dict[str, dict[str, Any]] = json.loads(self.outbox.get_meta(_ACTIVE_META_KEY) or "{}")
        self.call_agents = CallAgents()
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._published = 0
        self._reconnects = 0
        self._connected = False

    # -- producer side -------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Queue ``event`` durably and wake the sender; never blocks on the broker.

        Safe to call from any thread (the wake-up is handed to the loop thread-safely).
        """
        with self._lock:  # the active list, the agent map and the outbox follow event order
            messages = messages_for(event, self.topics, agent_feed=self.call_agents.route(event))
            self._append(event, messages)
        self._notify()

    def publish_messages(self, messages: list[Message]) -> None:
        """Queue ready-made messages (the ACD's retained snapshots, ``live.acd_feed``) durably,
        in order with the events; never blocks on the broker."""
        if not messages:
            return
        with self._lock:
            self.outbox.append(messages)
        self._notify()

    def _append(self, event: Event, messages: list[Message]) -> None:
        meta = None
        if isinstance(event, CallStarted | CallEnded):
            if isinstance(event, CallStarted):
                self._active[event.call_id] = {
                    "call_id": event.call_id,
                    "started_at": event.started_at,
                    "source": event.source,
                    "caller": event.caller,
                    "callee": event.callee,
                }
            else:
                self._active.pop(event.call_id, None)
            messages.append(active_calls_message(self._active.values(), self.topics))
            meta = {_ACTIVE_META_KEY: json.dumps(self._active)}
        self.outbox.append(messages, meta=meta)

    @property
    def pending(self) -> int:
        """Messages not yet acknowledged by the broker."""
        return self.outbox.pending

    @property
    def active_calls(self) -> list[dict[str, Any]]:
        return list(self._active.values())

    def stats(self) -> PublisherStats:
        return PublisherStats(
            published=self._published,
            pending=self.outbox.pending,
            reconnects=self._reconnects,
            dropped=self.outbox.dropped,
            connected=self._connected,
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the sender task; messages already in the outbox go out first."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")
        if self.outbox.pending:
            self._wake.set()

    async def stop(self, drain: bool = True, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Stop the sender. ``drain``: first try for ``timeout`` s to send what is pending.

        Whatever is still pending stays in the outbox file for the next start. Idempotent.
        """
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            if drain:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._connected = False
        if self.outbox.pending:
            log.info("publisher stopped with %d messages left in the outbox", self.outbox.pending)
        self.outbox.close()

    def _notify(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    # -- sender --------------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        return aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            username=s.username,
            password=s.password,
            tls_context=tls_context(s),
            keepalive=15,
            timeout=self.publish_timeout,
            socket_options=NO_DELAY,
        )

    async def _run(self) -> None:
        delay = self.backoff.initial
        while True:
            if self._stopping and not self.outbox.pending:
                return
            try:
                async with self._client() as client:
                    self._connected = True
                    delay = self.backoff.initial
                    log.info("connected to MQTT broker %s:%d", self.host, self.port)
                    done = await self._send_until_lost(client)
                    if done:
                        return
            except aiomqtt.MqttError as exc:
                self._reconnects += 1
                log.warning(
                    "MQTT broker %s:%d unavailable (%s); %d pending, retry in %.1f s",
                    self.host, self.port, exc, self.outbox.pending, delay,
                )
            finally:
                self._connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff.maximum)

    async def _send_until_lost(self, client: aiomqtt.Client) -> bool:
        """Send rows until the connection drops (raises MqttError) or stop drained (True)."""
        lost = asyncio.create_task(_wait_disconnect(client))
        try:
            while True:
                self._wake.clear()
                batch = self.outbox.peek(_BATCH)
                if not batch:
                    if self._stopping:
                        return True
                    waiter = asyncio.create_task(self._wake.wait())
                    await asyncio.wait({waiter, lost}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    if lost.done():
                        lost.result()
                        raise aiomqtt.MqttError("disconnected")
                    continue
                for row_id, msg in batch:
                    await self._publish_one(client, msg, lost)
                    self.outbox.delete(row_id)
                    self._published += 1
        finally:
            lost.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await lost

    async def _publish_one(self, client: aiomqtt.Client, msg: Message, lost: asyncio.Task[None]) -> None:
        # aiomqtt does not fail a QoS 1 publish when the connection drops (it waits for its
        # timeout), so race it against the disconnect watcher.
        send = asyncio.create_task(
            client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
        )
        await asyncio.wait({send, lost}, return_when=asyncio.FIRST_COMPLETED)
        if send.done():
            send.result()
            return
        send.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await send
        lost.result()
        raise aiomqtt.MqttError("disconnected while awaiting PUBACK")


def tls_context(settings: MqttConfig) -> ssl.SSLContext | None:
    """The client TLS context for ``settings`` (None without ``tls``): verifies the broker's
    certificate and host name against ``ca_file``, else the system's CAs. Every MQTT client of
    the service (publishers, the console) connects with this one."""
    if not settings.tls:
        return None
    return ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)


async def _wait_disconnect(client: aiomqtt.Client) -> None:
    """Return (or raise MqttError) when the connection ends; the publisher subscribes to
    nothing, so the message iterator only wakes up on disconnect."""
    async for _ in client.messages:
        pass
