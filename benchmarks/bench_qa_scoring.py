"""Cost of scoring a call on the standard form: one ``score_call`` and a whole call's live stage.

    .venv/bin/python benchmarks/bench_qa_scoring.py [--turns 200] [--repeat 20]

A scripted call of ``--turns`` alternating caller/agent utterances (3.5 s each, with tone
readings and a talk-over every tenth turn) is scored once on its whole event list (the final
scorecard: what the after-call path adds per call) and fed event by event through the live
``ScorecardStage`` (what a live call adds on the event loop). Prints milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

from qa.forms import load_form
from qa.live import ScorecardStage
from qa.scorecard import score_call
from qa.settings import QaSettings
from speech.events import CallEnded, CallStarted, Event, PartyJoined, TalkOver, ToneUpdate
from speech.frames import Party
from summaries.sample_calls import utterance

LINES = ["thank you for calling how can I help", "I was charged twice for my order",
         "let me verify your order number please", "it is one two three four",
         "I have refunded the extra charge", "this is the third time I am calling",
         "I am sorry about that", "is there anything else I can help you with"]


def call(turns: int) -> list[Event]:
    ev: list[Event] = [CallStarted(call_id="b", t=0.0), PartyJoined(call_id="b", t=0.5, party=Party.AGENT)]
    t = 1.0
    for i in range(turns):
        party = Party.AGENT if i % 2 == 0 else Party.CALLER
        ev += utterance("b", party, t, LINES[i % len(LINES)])
        ev.append(ToneUpdate(call_id="b", t=t + 3.0, party=party, label="tense" if i % 7 == 0 else "calm",
                             start=t, end=t + 2.8))
        if i % 10 == 9:
            ev.append(TalkOver(call_id="b", t=t + 3.0, started_by=party, start=t + 2.5, end=t + 3.0))
        t += 3.5
    ev.append(CallEnded(call_id="b", t=t, duration=t))
    return ev


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    form = load_form("standard")
    events = call(args.turns)
    finals = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        score_call(form, events, final=True)
        finals.append((time.perf_counter() - t0) * 1000)
    lives, emitted = [], 0
    for _ in range(max(1, args.repeat // 5)):
        stage = ScorecardStage([form], QaSettings())
        t0 = time.perf_counter()
        for e in events[:-1]:
            emitted += len(stage.process_event(e))
        stage.finish(events[-1].t)
        lives.append((time.perf_counter() - t0) * 1000)
    print(f"{len(events)} events, {args.turns} turns, {events[-1].t / 60:.1f} min of call")
    print(f"final score_call: median {statistics.median(finals):.1f} ms, max {max(finals):.1f} ms")
    print(f"live stage, whole call: median {statistics.median(lives):.0f} ms "
          f"({emitted // len(lives)} scorecard events per call)")


if __name__ == "__main__":
    main()
