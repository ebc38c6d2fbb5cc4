"""Scripted IVR media and a virtual-clock call driver, shared by the IVR session tests.

``FakeMedia`` records what the IVR asked of the call and finishes each prompt after a scripted
call-time duration; ``Call`` advances the clock in 20 ms steps, delivering scripted caller events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from ivr.flow import Flow, parse_flow
from ivr.session import IvrMedia, IvrResult, IvrSession, TransferFailed
from speech.events import (
    DtmfDigit,
    Event,
    FinalTranscript,
    IvrStep,
    SpeechEnded,
    SpeechStarted,
)
from speech.frames import Party

STEP = 0.02


class FakeMedia(IvrMedia):
    def __init__(self, durations: dict[str, float] | None = None, *, default: float = 2.0,
                 transfer_fails: bool = False) -> None:
        self.durations = durations or {}
        self.default = default
        self.transfer_fails = transfer_fails
        self.calls: list[tuple] = []
        self.paths: list[Path] = []
        self.events: list[Event] = []
        self.t = 0.0
        self._playing: tuple[asyncio.Future[bool], float] | None = None

    async def play(self, prompt: Path, *, name: str) -> bool:
        assert prompt.name == f"{name}.wav"
        self.paths.append(prompt)
        self.calls.append(("play", name))
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._playing = (fut, self.t + self.durations.get(name, self.default))
        try:
            return await fut
        finally:
            self._playing = None

    def advance(self, t: float) -> None:
        self.t = t
        if self._playing and t >= self._playing[1] - 1e-9 and not self._playing[0].done():
            self._playing[0].set_result(True)

    def stop_playback(self) -> None:
        self.calls.append(("stop",))
        if self._playing and not self._playing[0].done():
            self._playing[0].set_result(False)

    def set_grammar(self, phrases: Sequence[str] | None) -> None:
        self.calls.append(("grammar", tuple(phrases) if phrases is not None else None))

    def secure_input(self, on: bool) -> None:
        self.calls.append(("secure", on))

    async def route(self, queue: str) -> None:
        self.calls.append(("route", queue))

    async def transfer(self, uri: str) -> None:
        self.calls.append(("transfer", uri))
        if self.transfer_fails:
            raise TransferFailed("486 Busy Here")

    async def hangup(self) -> None:
        self.calls.append(("hangup",))

    def emit(self, event: Event) -> None:
        self.events.append(event)

    # -- views for assertions
    def played(self) -> list[str]:
        assert all(p.is_file() for p in self.paths)
        return [c[1] for c in self.calls if c[0] == "play"]

    def steps(self, action: str | None = None) -> list[IvrStep]:
        return [e for e in self.events if isinstance(e, IvrStep) and (action is None or e.action == action)]


def key(d: str) -> DtmfDigit:
    return DtmfDigit(digit=d, source="rfc4733", party=Party.CALLER)


def said(text: str) -> FinalTranscript:
    return FinalTranscript(text=text, party=Party.CALLER, engine="fake")


def speech_on(party: Party = Party.CALLER) -> SpeechStarted:
    return SpeechStarted(party=party)


def speech_off() -> SpeechEnded:
    return SpeechEnded(party=Party.CALLER)


class Call:
    """Runs a session against a script of ``(call time, event | "hangup")``."""

    def __init__(self, flow: Flow, media: FakeMedia, prompts_dir: Path | None = None) -> None:
        self.media = media
        self.session = IvrSession(flow, media, prompts_dir=prompts_dir, call_id="c1")

    async def run(self, script: Sequence[tuple[float, Event | str]] = (), *, until: float = 120.0) -> IvrResult:
        todo = sorted(script, key=lambda item: item[0])
        task = asyncio.create_task(self.session.run())
        t = 0.0
        while not task.done() and t <= until:
            while todo and todo[0][0] <= t + 1e-9:
                _, item = todo.pop(0)
                if item == "hangup":
                    self.session.cancel()
                else:
                    assert isinstance(item, Event)
                    self.session.on_event(dataclasses.replace(item, t=t))
            self.media.advance(t)
            self.session.on_time(t)
            for _ in range(12):
                await asyncio.sleep(0)
            t = round(t + STEP, 6)
        assert task.done(), f"IVR still running at call time {t}"
        return task.result()


# -- a small flow for the logic -----------------------------------------------------------------

TEST_FLOW = {
    "start": "menu",
    "prompts": {p: p.replace("_", " ") for p in (
        "menu_prompt", "menu_again", "sorry", "enter_pin", "pin_again", "bad_pin", "hold_on", "bye",
    )},
    "nodes": {
        "menu": {
            "kind": "menu", "prompt": "menu_prompt", "reprompt": "menu_again", "no_match": "sorry",
            "timeout_s": 3, "retries": 2, "fallback": "agents",
            "choices": [
                {"dtmf": "1", "say": ["billing"], "goto": "billing"},
                {"dtmf": "2", "say": ["technical support"], "goto": "support"},
                {"dtmf": "4", "goto": "pin"},
                {"dtmf": "9", "goto": "bye"},
                {"dtmf": "0", "say": ["agent"], "goto": "agent"},
            ],
        },
        "pin": {
            "kind": "collect", "prompt": "enter_pin", "reprompt": "pin_again", "no_match": "bad_pin",
            "digits": {"min": 4, "max": 6}, "terminator": "#", "timeout_s": 4, "retries": 1,
            "secure": True, "store_as": "pin", "goto": "hold", "fallback": "agents",
        },
        "hold": {"kind": "play", "prompt": "hold_on", "hold": True, "goto": "billing"},
        "billing": {"kind": "queue", "queue": "billing"},
        "support": {"kind": "queue", "queue": "tech_support"},
        "agents": {"kind": "queue", "queue": "agents"},
        "agent": {"kind": "transfer", "uri": "sip:agent@127.0.0.1:5090", "fallback": "agents"},
        "bye": {"kind": "hangup", "prompt": "bye"},
    },
}


def write_prompts(tmp_path: Path) -> Path:
    """Tiny WAVs so the session's file checks pass; FakeMedia decides how long they 'play'."""
    out = tmp_path / "prompts"
    out.mkdir()
    for name in TEST_FLOW["prompts"]:
        sf.write(str(out / f"{name}.wav"), np.zeros(1600, dtype=np.int16), 16000, subtype="PCM_16")
    return out


def make_flow(**changes) -> Flow:
    data = json.loads(json.dumps(TEST_FLOW))
    for node, fields in changes.items():
        data["nodes"][node].update(fields)
    return parse_flow(data, source="test_flow.yaml")


async def run_call(prompts_dir: Path, script=(), *, flow: Flow | None = None, **media_kw) -> tuple[IvrResult, FakeMedia]:
    media = FakeMedia(**media_kw)
    result = await Call(flow or make_flow(), media, prompts_dir).run(script)
    return result, media
