"""The IVR state machine, driven by a scripted media fake on a virtual call clock.

``FakeMedia`` is the test seam: it records what the IVR asked of the call and finishes each
prompt after a scripted call-time duration (the real WAV's length for the sample flow). ``Call``
advances the clock in 20 ms steps, delivering scripted caller events, like audio frames would.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ivr.flow import FlowError, parse_flow
from ivr.session import IvrSession
from speech.events import (
    IvrStep,
    PlaybackEnded,
    PlaybackStarted,
)
from speech.frames import Party
from tests.ivr_script import (
    TEST_FLOW,
    Call,
    FakeMedia,
    key,
    make_flow,
    run_call,
    said,
    speech_off,
    speech_on,
    write_prompts,
)


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    return write_prompts(tmp_path)


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
