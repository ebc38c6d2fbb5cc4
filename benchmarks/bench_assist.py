"""CPU cost of the assist stages (de-escalation cues, live rules, script checklist) per call.

    .venv/bin/python benchmarks/bench_assist.py [--minutes 5] [--rules assist/defaults/rules.sample.yaml]

A scripted conversation (``summaries.sample_calls`` lines repeated, tone readings, dead air,
talk-over) of ``--minutes`` is driven through each stage directly, as the pipeline does: every
20 ms frame of both parties (``process_frame``: the clock) and every event (``process_event``).
Baseline in the same run: the talk-over stage, the cheapest detector of the chain. Prints µs per
frame, µs per event and CPU ms per minute of call; the assist stages must stay far below a
frame's 20 ms so that they never delay frames or transcripts.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from assist.checklist import ChecklistSettings, ChecklistStage
from assist.cues import CueSettings, CueStage
from assist.rules_model import load_rules
from assist.rules_stage import RulesSettings, RulesStage
from speech.events import (
    DeadAirEnded,
    DeadAirStarted,
    Event,
    SpeechStarted,
    TalkOver,
    ToneUpdate,
)
from speech.frames import AudioFrame, Party
from speech.settings import TalkOverSettings
from speech.stage import Stage
from speech.talk_over import TalkOverStage
from summaries.sample_calls import utterance

ROOT = Path(__file__).resolve().parent.parent
LINES = [
    (Party.CALLER, "this is the third time I am calling about my internet it keeps dropping"),
    (Party.AGENT, "I understand how frustrating this must be let me verify your account number"),
    (Party.CALLER, "can you tell me when a technician can come and why nobody called me back"),
    (Party.AGENT, "thank you for waiting I have booked a technician for tomorrow morning"),
]


def scripted_call(minutes: float) -> list[Event]:
    events: list[Event] = []
    t, i = 1.0, 0
    while t < minutes * 60:
        party, text = LINES[i % len(LINES)]
        events.append(SpeechStarted(t=t, party=party))
        events += utterance("bench", party, t, text)
        end = t + 0.35 * len(text.split())
        if party is Party.CALLER:
            events.append(ToneUpdate(t=end + 0.3, party=party, label=("tense", "calm")[i % 2], score=0.5))
        if i % 10 == 5:
            events += [DeadAirStarted(t=end + 5.3, start=end + 0.3, threshold=5.0),
                       DeadAirEnded(t=end + 7.3, start=end + 0.3, end=end + 7.3, duration=7.0)]
            end += 7.0
        if i % 7 == 3:
            events.append(TalkOver(t=end, started_by=party, interrupted=Party.AGENT, start=end - 0.4, end=end,
                                   duration=0.4))
        t, i = end + 0.8, i + 1
    return sorted(events, key=lambda e: e.t)


def run(make: Callable[[], Stage], events: list[Event], seconds: float) -> tuple[float, float, int, int]:
    """CPU seconds on frames and on events, and their counts."""
    stage = make()
    frame_cost = event_cost = 0.0
    frames = n_events = 0
    pcm = bytes(320)
    queue = list(events)
    t = 0.0
    while t < seconds:
        for party in (Party.CALLER, Party.AGENT):
            frame = AudioFrame(pcm, 8000, t, party)
            start = time.process_time()
            stage.process_frame(frame)
            frame_cost += time.process_time() - start
            frames += 1
        t += 0.02
        while queue and queue[0].t <= t:
            event = queue.pop(0)
            start = time.process_time()
            stage.process_event(event)
            event_cost += time.process_time() - start
            n_events += 1
    return frame_cost, event_cost, frames, n_events


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--rules", type=Path, default=ROOT / "assist" / "defaults" / "rules.sample.yaml")
    args = ap.parse_args()
    rules = load_rules(args.rules)
    events = scripted_call(args.minutes)
    seconds = args.minutes * 60
    stages: list[tuple[str, Callable[[], Stage]]] = [
        ("talk_over (baseline)", lambda: TalkOverStage(TalkOverSettings())),
        ("cues", lambda: CueStage(CueSettings())),
        (f"rules ({len(rules.rules)} rules)", lambda: RulesStage(RulesSettings(webhooks=False), rules)),
        ("checklist", lambda: ChecklistStage(ChecklistSettings())),
    ]
    print(f"{args.minutes:g}-minute scripted call: {len(events)} events, {int(seconds / 0.02) * 2} frames")
    print("| stage | µs/frame | µs/event | CPU ms per call-minute |\n|---|---|---|---|")
    for name, make in stages:
        fc, ec, nf, ne = run(make, events, seconds)
        per_min = (fc + ec) * 1000 / args.minutes
        print(f"| {name} | {fc / nf * 1e6:.2f} | {ec / max(ne, 1) * 1e6:.1f} | {per_min:.1f} |")


if __name__ == "__main__":
    main()
