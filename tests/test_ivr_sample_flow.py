"""The shipped sample flow, every branch, on the scripted media fake of ``test_ivr_session``."""

from __future__ import annotations

import pytest
import soundfile as sf

from ivr.flow import Flow, load_flow
from speech.events import Event, PlaybackStarted
from tests.ivr_script import Call, FakeMedia, key, said, speech_on

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
    "cancel_no_then_agent": (_keys(1.0, "32") + _keys(40.0, "0"), "queue", "agents"),
    "front_desk_refer": (_keys(1.0, "9"), "transfer", None),
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
    if case == "front_desk_refer":
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
    result = await Call(flow, FakeMedia(durations, transfer_fails=True)).run(_keys(1.0, "9"), until=200.0)
    assert result.queue == "agents"
    visited.update(result.path)
    assert visited == set(flow.nodes)
