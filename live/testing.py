"""Test and benchmark helpers: a free port, a scripted call's events, a recording subscriber.

Used by tests/test_live_*.py, tests/test_console_*.py and benchmarks/bench_live.py; not by the
running service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiomqtt

from live.publisher import NO_DELAY

if TYPE_CHECKING:
    import uvicorn
from speech.events import (
    CallEnded,
    CallStarted,
    DeadAirEnded,
    DeadAirStarted,
    DtmfDigit,
    Event,
    FinalTranscript,
    IvrAction,
    IvrStep,
    PartialTranscript,
    PlaybackEnded,
    PlaybackStarted,
    SpeechEnded,
    SpeechStarted,
    SummaryReady,
    TalkOver,
    ToneAlert,
    ToneUpdate,
    Word,
)
from speech.frames import Party
from speech.ports import free_port as free_port  # re-exported: tests and benchmarks use it


def sample_call(call_id: str = "call-1", *, caller: str = "+15550100") -> list[Event]:
    """A short scripted call touching every topic, in call-time order."""
    c, a = Party.CALLER, Party.AGENT
    return [
        CallStarted(call_id=call_id, t=0.0, source="sip", caller=caller, callee="100",
                    started_at="2025-01-01T10:00:00Z", parties=("caller", "agent")),
        PlaybackStarted(call_id=call_id, t=0.1, kind="prompt", name="welcome"),
        PlaybackEnded(call_id=call_id, t=2.0, kind="prompt", name="welcome"),
        IvrStep(call_id=call_id, t=2.0, node="main", action=IvrAction.ENTER),
        DtmfDigit(call_id=call_id, t=3.0, digit="2", source="rfc4733", duration=0.1),
        IvrStep(call_id=call_id, t=3.1, node="main", action=IvrAction.CHOICE, detail={"choice": "billing"}),
        SpeechStarted(call_id=call_id, t=4.0, party=c),
        PartialTranscript(call_id=call_id, t=4.8, party=c, text="my bill", start=4.0),
        PartialTranscript(call_id=call_id, t=5.6, party=c, text="my bill is wrong", start=4.0),
        SpeechEnded(call_id=call_id, t=6.3, party=c, start=4.0, duration=2.0),
        FinalTranscript(call_id=call_id, t=6.4, party=c, text="my bill is wrong again",
                        words=(Word("my", 4.0, 4.2), Word("bill", 4.2, 4.6)), confidence=0.8,
                        start=4.0, end=6.0, engine="pocketsphinx"),
        ToneUpdate(call_id=call_id, t=6.4, party=c, label="tense", score=0.55, trend=0.1,
                   signals={"pitch": 0.6, "lexical": 0.5}, start=4.0, end=6.0),
        DeadAirStarted(call_id=call_id, t=11.3, start=6.3, threshold=5.0),
        DeadAirEnded(call_id=call_id, t=13.0, start=6.3, end=13.0, duration=6.7),
        SpeechStarted(call_id=call_id, t=13.0, party=a),
        SpeechStarted(call_id=call_id, t=14.0, party=c),
        TalkOver(call_id=call_id, t=14.4, started_by=c, interrupted=a, start=14.0, end=14.4,
                 duration=0.4),
        SpeechEnded(call_id=call_id, t=15.3, party=a, start=13.0, duration=2.0),
        FinalTranscript(call_id=call_id, t=15.4, party=a, text="let me check that for you",
                        confidence=0.9, start=13.0, end=15.0, engine="pocketsphinx"),
        SpeechEnded(call_id=call_id, t=17.3, party=c, start=14.0, duration=3.0),
        FinalTranscript(call_id=call_id, t=17.4, party=c,
                        text="this is the third time I call I want a manager", confidence=0.7,
                        start=14.0, end=17.0, engine="pocketsphinx"),
        ToneUpdate(call_id=call_id, t=17.4, party=c, label="angry", score=0.82, trend=0.27,
                   signals={"pitch": 0.8, "lexical": 0.85}, start=14.0, end=17.0),
        ToneAlert(call_id=call_id, t=17.4, party=c, kind="angry", label="angry", score=0.82,
                  reasons=("pitch up 40% over baseline", "escalation phrase: manager")),
        CallEnded(call_id=call_id, t=20.0, reason="hangup", duration=20.0),
        SummaryReady(call_id=call_id, t=20.5, summary={"reason": "billing dispute",
                                                        "outcome": "escalated",
                                                        "tone": "angry"}),
    ]


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Recorder:
    """Subscribes to ``filters`` and records every message; reconnects when the broker goes.

    ``persistent=True`` uses a fixed client id and a persistent session, so QoS 1 messages
    published while it is reconnecting are queued by the broker (mosquitto with persistence).
    """

    host: str
    port: int
    filters: tuple[str, ...]
    persistent: bool = False
    client_id: str = "live-test-recorder"
    messages: list[Received] = field(default_factory=list)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _new: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.subscribed.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def on(self, suffix: str) -> list[Received]:
        return [m for m in self.messages if m.topic.endswith(suffix)]

    async def wait_for(
        self,
        predicate: Callable[[list[Received]], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> None:
        async def loop() -> None:
            while not predicate(self.messages):
                self._new.clear()
                await self._new.wait()

        await asyncio.wait_for(loop(), timeout)

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.host, self.port,
                    identifier=self.client_id if self.persistent else None,
                    clean_session=False if self.persistent else None,
                    socket_options=NO_DELAY,
                ) as client:
                    for f in self.filters:
                        await client.subscribe(f, qos=1)
                    self.subscribed.set()
                    async for msg in client.messages:
                        self.messages.append(
                            Received(str(msg.topic), msg.payload, msg.qos, msg.retain)
                        )
                        self._new.set()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def serve(app: Callable[..., Any], port: int) -> AsyncIterator[uvicorn.Server]:
    """Run an ASGI app with uvicorn on 127.0.0.1:``port`` inside the current loop."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
