"""The IVR state machine, driven by a scripted media fake on a virtual call clock.

``FakeMedia`` is the test seam: it records what the IVR asked of the call and finishes each
prompt after a scripted call-time duration (the real WAV's length for the sample flow). ``Call``
advances the clock in 20 ms steps, delivering scripted caller events, like audio frames would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ivr.flow import Flow, FlowError, load_flow, parse_flow
from ivr.session import IvrMedia, IvrResult, IvrSession, TransferFailed
from speech.events import (
    DtmfDigit,
    Event,
    FinalTranscript,
    IvrStep,
    PlaybackEnded,
    PlaybackStarted,
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


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
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


# -- tests --------------------------------------------------------------------------------------

async def test_dtmf_choice_after_prompt(prompts_dir: Path) -> None:
    result, media = await run_call(prompts_dir, [(2.5, key("2"))])
    assert (result.outcome, result.queue) == ("queue", "tech_support")
    assert result.path == ["menu", "support"]
    assert media.played() == ["menu_prompt"]
    assert ("stop",) not in media.calls
    choice = media.steps("choice")[0]
    assert choice.detail == {"by": "dtmf", "choice": "technical support", "goto": "support"}
    assert choice.t == pytest.approx(2.5)
    assert choice.call_id == "c1"
    assert media.calls[-1] == ("route", "tech_support")
    route = media.steps("route")[0]
    assert route.node == "support" and route.detail == {"queue": "tech_support"}


async def test_speech_choice_uses_menu_grammar(prompts_dir: Path) -> None:
    result, media = await run_call(prompts_dir, [(2.5, speech_on()), (3.2, speech_off()), (3.6, said("billing"))])
    assert result.queue == "billing"
    grammar = [c for c in media.calls if c[0] == "grammar"]
    assert grammar == [("grammar", ("billing", "technical support", "agent")), ("grammar", None)]
    assert media.calls.index(grammar[1]) < media.calls.index(("route", "billing"))
    detail = media.steps("choice")[0].detail
    assert detail["by"] == "speech" and detail["choice"] == "billing" and detail["exact"] is True


async def test_partial_speech_matches_and_unk_does_not(prompts_dir: Path) -> None:
    result, media = await run_call(prompts_dir, [(2.5, said("[unk]")), (10.0, said("support please"))])
    assert result.queue == "tech_support"
    assert [s.detail["by"] for s in media.steps("no_match")] == ["speech"]
    assert media.steps("choice")[0].detail["exact"] is False


async def test_dtmf_barge_in_stops_the_prompt(prompts_dir: Path) -> None:
    result, media = await run_call(prompts_dir, [(0.5, key("1"))], durations={"menu_prompt": 6.0})
    assert result.queue == "billing"
    assert ("stop",) in media.calls
    ended = [e for e in media.events if isinstance(e, PlaybackEnded)]
    assert ended[0].barged_in is True and ended[0].t == pytest.approx(0.5)
    assert media.steps("choice")[0].t < 1.0


async def test_caller_speech_barges_in_but_ivr_audio_does_not(prompts_dir: Path) -> None:
    script = [(0.4, speech_on(Party.AGENT)), (1.0, speech_on()), (2.0, speech_off()), (2.4, said("agent"))]
    result, media = await run_call(prompts_dir, script, durations={"menu_prompt": 8.0})
    assert (result.outcome, result.transfer_uri) == ("transfer", "sip:agent@127.0.0.1:5090")
    assert media.calls.count(("stop",)) == 1
    ended = [e for e in media.events if isinstance(e, PlaybackEnded)][0]
    assert ended.barged_in and ended.t == pytest.approx(1.0)


async def test_no_barge_in_buffers_digits_until_prompt_ends(prompts_dir: Path) -> None:
    flow = make_flow(menu={"barge_in": False})
    result, media = await run_call(prompts_dir, [(0.5, key("1"))], flow=flow, durations={"menu_prompt": 4.0})
    assert result.queue == "billing"
    assert ("stop",) not in media.calls
    assert media.steps("choice")[0].t == pytest.approx(4.0)


async def test_timeouts_reprompt_then_fall_back(prompts_dir: Path) -> None:
    result, media = await run_call(prompts_dir, [], durations={"menu_prompt": 2.0, "menu_again": 2.5})
    assert (result.outcome, result.queue) == ("queue", "agents")
    assert media.played() == ["menu_prompt", "menu_again", "menu_again"]
    timeouts = media.steps("timeout")
    # Each timeout runs on the call clock from the end of its prompt: 2+3, 5+2.5+3, 10.5+2.5+3.
    assert [s.t for s in timeouts] == pytest.approx([5.0, 10.5, 16.0])
    assert [s.detail["attempt"] for s in media.steps("retry")] == [1, 2]
    fallback = media.steps("fallback")[0]
    assert fallback.detail == {"reason": "timeout", "goto": "agents"}
    assert result.path == ["menu", "agents"]


async def test_timeout_waits_while_caller_is_speaking(prompts_dir: Path) -> None:
    script = [(2.5, speech_on()), (9.0, speech_off()), (9.5, said("technical support"))]
    result, media = await run_call(prompts_dir, script)
    assert result.queue == "tech_support"
    assert media.steps("timeout") == []


async def test_no_match_plays_sorry_then_reprompt(prompts_dir: Path) -> None:
    result, media = await run_call(prompts_dir, [(2.5, key("7")), (2.6, key("7")), (9.0, key("1"))])
    assert result.queue == "billing"
    # The second wrong key barges into "sorry": a second no-match, then the re-prompt.
    assert media.played() == ["menu_prompt", "sorry", "sorry", "menu_again"]
    no_match = media.steps("no_match")
    assert [s.detail for s in no_match] == [{"by": "dtmf", "attempt": 1}, {"by": "dtmf", "attempt": 2}]
    assert media.calls.count(("stop",)) == 1


async def test_type_ahead_skips_the_next_prompt(prompts_dir: Path) -> None:
    data = json.loads(json.dumps(TEST_FLOW))
    data["nodes"]["menu"]["choices"] = [{"dtmf": "1", "goto": "hold"}]
    data["nodes"]["hold"]["goto"] = "menu2"
    data["nodes"]["menu2"] = {"kind": "menu", "prompt": "menu_again",
                              "choices": [{"dtmf": "2", "goto": "support"}]}
    for unused in ("billing", "pin", "agents", "agent", "bye"):
        data["nodes"].pop(unused)
    data["nodes"]["menu"].pop("fallback")
    flow = parse_flow(data, source="typeahead.yaml")
    # "1" barges into the menu; "2" is typed during the (non barge-in) hold prompt.
    result, media = await run_call(prompts_dir, [(0.5, key("1")), (1.0, key("2"))], flow=flow)
    assert result.queue == "tech_support"
    assert media.played() == ["menu_prompt", "hold_on"]  # menu2's prompt skipped: already answered
    kinds = [(e.name, e.kind) for e in media.events if isinstance(e, PlaybackStarted)]
    assert kinds == [("menu_prompt", "prompt"), ("hold_on", "hold")]


async def test_collect_secure_digits_with_terminator(prompts_dir: Path) -> None:
    script = [(2.5, key("4"))] + [(5.0 + i * 0.3, key(d)) for i, d in enumerate("83125#")]
    result, media = await run_call(prompts_dir, script)
    assert result.queue == "billing"
    assert result.path == ["menu", "pin", "hold", "billing"]
    assert result.collected == {"pin": "*****"} and result.secure_keys == ("pin",)
    assert result.secure_value("pin") == "83125"
    step = media.steps("collect")[0]
    assert step.detail == {"store_as": "pin", "length": 5, "secure": True}
    wire = json.dumps([e.to_dict() for e in media.events] + [result.to_dict()])
    assert "83125" not in wire and "8312" not in wire
    assert "83125" not in repr(result)


async def test_collect_plain_digits_reported(prompts_dir: Path) -> None:
    flow = make_flow(pin={"secure": False})
    script = [(0.3, key("4"))] + [(3.0 + i * 0.2, key(d)) for i, d in enumerate("123456")]
    result, media = await run_call(prompts_dir, script, flow=flow)
    assert result.collected == {"pin": "123456"}  # max digits reached: no # needed
    assert media.steps("collect")[0].detail["digits"] == "123456"


async def test_collect_too_short_then_inter_digit_timeout(prompts_dir: Path) -> None:
    flow = make_flow(pin={"secure": False})
    script = [(0.3, key("4")), (3.0, key("1")), (3.2, key("2")), (3.4, key("#")),
              (9.0, key("9")), (9.2, key("8")), (9.4, key("7")), (9.6, key("6"))]
    result, media = await run_call(prompts_dir, script, flow=flow)
    assert result.collected == {"pin": "9876"}
    no_match = media.steps("no_match")[0]
    assert no_match.detail == {"by": "dtmf", "reason": "too_short", "length": 2, "attempt": 1}
    assert media.played()[1:4] == ["enter_pin", "bad_pin", "pin_again"]
    collect = media.steps("collect")[0]
    assert collect.t == pytest.approx(9.6 + 4.0)  # min reached, no #: accepted at the timeout


async def test_collect_retries_exhausted_falls_back(prompts_dir: Path) -> None:
    result, media = await run_call(prompts_dir, [(0.3, key("4"))])
    assert result.queue == "agents"
    assert len(media.steps("timeout")) == 2 and media.steps("fallback")[0].node == "pin"
    assert result.collected == {}


async def test_cancel_during_prompt(prompts_dir: Path) -> None:
    media = FakeMedia(durations={"menu_prompt": 10.0})
    call = Call(make_flow(), media, prompts_dir)
    result = await call.run([(1.0, "hangup"), (1.5, "hangup"), (2.0, key("1"))])
    assert result.outcome == "caller_hangup" and result.queue is None
    assert media.calls.count(("stop",)) == 1
    assert not any(c[0] in ("route", "hangup", "transfer") for c in media.calls)
    assert media.calls[-1] == ("grammar", None)  # grammar released on the way out
    assert isinstance(media.events[-2], PlaybackEnded)
    last = media.events[-1]
    assert isinstance(last, IvrStep) and last.action == "hangup" and last.detail == {"by": "caller"}
    call.session.cancel()  # idempotent after run returned
    with pytest.raises(RuntimeError):
        await call.session.run()


async def test_final_transcript_alone_barges_in(prompts_dir: Path) -> None:
    result, media = await run_call(prompts_dir, [(1.0, said("billing"))], durations={"menu_prompt": 8.0})
    assert result.queue == "billing" and ("stop",) in media.calls
    assert media.steps("choice")[0].t == pytest.approx(1.0)


async def test_run_task_cancelled_cleans_up(prompts_dir: Path) -> None:
    media = FakeMedia(durations={"menu_prompt": 10.0})
    session = IvrSession(make_flow(), media, prompts_dir=prompts_dir)
    task = asyncio.create_task(session.run())
    for _ in range(10):
        await asyncio.sleep(0)
    assert media.played() == ["menu_prompt"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert media.calls[-1] == ("grammar", None)
    assert isinstance(media.events[-1], PlaybackEnded)


async def test_transfer_failure_falls_back_to_queue(prompts_dir: Path) -> None:
    result, media = await run_call(prompts_dir, [(2.5, key("0"))], transfer_fails=True)
    assert (result.outcome, result.queue) == ("queue", "agents")
    assert ("transfer", "sip:agent@127.0.0.1:5090") in media.calls
    assert media.steps("fallback")[0].detail == {"reason": "transfer_failed", "goto": "agents"}


async def test_hangup_node_says_goodbye(prompts_dir: Path) -> None:
    result, media = await run_call(prompts_dir, [(2.5, key("9"))])
    assert result.outcome == "hangup"
    assert media.played()[-1] == "bye" and media.calls[-1] == ("hangup",)
    assert media.steps("hangup")[0].detail == {"by": "ivr"}


async def test_missing_prompt_wav_fails_at_construction(prompts_dir: Path) -> None:
    (prompts_dir / "sorry.wav").unlink()
    with pytest.raises(FlowError, match="sorry.wav"):
        IvrSession(make_flow(), FakeMedia(), prompts_dir=prompts_dir)


async def test_events_pair_playbacks_and_enter_steps(prompts_dir: Path) -> None:
    _, media = await run_call(prompts_dir, [(2.5, key("4"))] + [(3.0 + i * 0.1, key(d)) for i, d in enumerate("1234#")])
    starts = [e.name for e in media.events if isinstance(e, PlaybackStarted)]
    ends = [e.name for e in media.events if isinstance(e, PlaybackEnded)]
    assert starts == ends == ["menu_prompt", "enter_pin", "hold_on"]
    assert [s.node for s in media.steps("enter")] == ["menu", "pin", "hold", "billing"]
    assert all(e.party is Party.AGENT for e in media.events if isinstance(e, PlaybackStarted))
    times = [e.t for e in media.events]
    assert times == sorted(times)


# -- the sample flow, every branch -------------------------------------------------------------

@pytest.fixture(scope="module")
def sample() -> tuple[Flow, dict[str, float]]:
    flow = load_flow()
    durations = {name: sf.info(str(flow.prompt_path(name))).duration for name in flow.prompts}
    return flow, durations


def _keys(t0: float, digits: str, gap: float = 0.4) -> list[tuple[float, Event]]:
    return [(t0 + i * gap, key(d)) for i, d in enumerate(digits)]


SAMPLE_CASES = {
    "billing_digits": (_keys(1.0, "1") + _keys(30.0, "12345678#"), "queue", "billing"),
    "tech_dtmf": (_keys(25.0, "2"), "queue", "tech_support"),
    "tech_speech": ([(22.0, speech_on()), (23.0, said("tech support"))], "queue", "tech_support"),
    "billing_speech_partial": ([(22.0, said("i have a billing question"))] + _keys(40.0, "1234567#"), "queue", "billing"),
    "cancel_yes": (_keys(1.0, "3") + [(20.0, said("yes"))], "queue", "retention"),
    "cancel_no_then_agent": (_keys(1.0, "32") + _keys(40.0, "0"), "transfer", None),
    "silence": ([], "queue", "agents"),
}


@pytest.mark.parametrize("case", list(SAMPLE_CASES))
async def test_sample_flow_branches(case: str, sample) -> None:
    flow, durations = sample
    script, outcome, queue = SAMPLE_CASES[case]
    media = FakeMedia(durations)
    result = await Call(flow, media).run(script, until=200.0)
    assert result.outcome == outcome
    assert result.queue == queue
    if case == "billing_digits":
        assert result.collected == {"account_number": "12345678"}
    if case == "cancel_no_then_agent":
        assert result.path.count("main_menu") == 2
        assert result.transfer_uri == "sip:agent@127.0.0.1:5090"
    if case == "silence":
        assert len(media.steps("timeout")) == 3
        assert media.played()[-1] == "agents_hold"
        assert [e.kind for e in media.events if isinstance(e, PlaybackStarted)][-1] == "hold"


async def test_sample_flow_all_nodes_visited(sample) -> None:
    flow, durations = sample
    visited: set[str] = set()
    for script, _, _ in SAMPLE_CASES.values():
        result = await Call(flow, FakeMedia(durations)).run(script, until=200.0)
        visited.update(result.path)
    result = await Call(flow, FakeMedia(durations, transfer_fails=True)).run(_keys(1.0, "0"), until=200.0)
    assert result.queue == "agents"
    visited.update(result.path)
    assert visited == set(flow.nodes)
