"""The after-call sequence live calls and replays share: redacted live sinks, then the summary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from callcenter.aftercall import AfterCall, finish_call, live_sinks
from callcenter.settings import load_settings
from speech.events import (
    CallEnded,
    CallStarted,
    DtmfDigit,
    Event,
    EventType,
    FinalTranscript,
    QaScorecard,
    SummaryReady,
)
from speech.frames import Party

CARD = "4111 1111 1111 1111"


@dataclass(frozen=True, kw_only=True)
class Whisper(Event):
    """An event type nobody declared anything for: its text must still not leak live."""

    type: ClassVar[EventType] = EventType.SUMMARY
    said: str = ""


@pytest.fixture
def after_call(tmp_path: Path) -> AfterCall:
    settings = load_settings(overrides={"data_dir": str(tmp_path), "asr.engine": "none", "mqtt.enabled": False},
                             environ={})
    return AfterCall(settings, store=False)


def test_live_sinks_see_only_redacted_events(after_call: AfterCall) -> None:
    seen: list[Event] = []
    [sink] = live_sinks([seen.append], after_call)
    sink(FinalTranscript(call_id="c", t=1.0, party=Party.CALLER, text=f"my card is {CARD}"))
    sink(Whisper(call_id="c", t=2.0, said=f"card {CARD}"))
    for i, d in enumerate("4539148803436467"):
        sink(DtmfDigit(call_id="c", t=3.0 + 0.2 * i, digit=d))
    assert seen[0].text == "my card is [CARD]"  # type: ignore[attr-defined]
    assert seen[1].said == "card [CARD]"  # type: ignore[attr-defined]
    assert "".join(e.digit for e in seen[2:]) == "453914" + "X" * 10  # type: ignore[attr-defined]
    plain: list[Event] = []
    assert live_sinks([plain.append], None)[0] == plain.append  # no after-call: sinks as given


async def test_finish_call_summarizes_and_tells_every_sink_even_past_a_failing_one(after_call: AfterCall) -> None:
    events: list[Event] = [
        CallStarted(call_id="f", t=0.0, source="replay"),
        FinalTranscript(call_id="f", t=2.0, party=Party.CALLER, text=f"i was charged twice on my bill card {CARD}",
                        start=0.5, end=2.0),
        CallEnded(call_id="f", t=3.0, duration=3.0),
    ]
    got: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("sink down")

    summary = await finish_call(after_call, "f", events, [broken, got.append], t=3.0, source_file="x.wav")
    assert summary["call_id"] == "f" and summary["source_file"] == "x.wav"
    assert [type(e) for e in got] == [QaScorecard, SummaryReady]  # the final scorecard, then the summary
    assert got[-1].t == 3.0 and got[-1].summary == summary
    assert "4111" not in json.dumps(got[0].to_dict())  # its evidence comes from the redacted call
    assert "4111" not in json.dumps(summary)
