"""Cost of the VAD's echo gate, the per-frame check that runs while audio is played into a line.

``VadStage._follows_played`` correlates a party's last second of 20 ms levels with what was
played into its line, at every delay within the echo tail. Baseline in the same run: the same
decision with one ``np.corrcoef`` per delay (the code before 2026-12-07). Random level histories
of three kinds (echo of the played levels at a random delay, an independent talker, a steady
played sound); both must decide the same on every one.

    .venv/bin/python benchmarks/bench_echo_gate.py [--trials 3000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from speech import vad as V  # noqa: E402
from speech.frames import Party  # noqa: E402
from speech.settings import VadSettings  # noqa: E402


def per_delay(stage: V.VadStage, party: Party, t1: float) -> bool:
    """The baseline: one Pearson correlation per delay."""
    own = {round(start / V._SLOT_S): lv for start, _, lv in stage._states[party].sent}
    far: dict[int, float] = {}
    sources = [stage._states[party].far_end] + [s.sent for p, s in stage._states.items() if p != party]
    for history in sources:
        for start, _, lv in history:
            slot = round(start / V._SLOT_S)
            far[slot] = max(lv, far.get(slot, V._SILENT_DB))
    last = round(t1 / V._SLOT_S) - 1
    slots = [s for s in range(last - round(V.ECHO_WINDOW_S / V._SLOT_S) + 1, last + 1) if s in own]
    if len(slots) < V._MIN_SLOTS:
        return True
    mine = np.maximum(np.array([own[s] for s in slots]), V._ENVELOPE_FLOOR_DB)
    best = -1.0
    for lag in range(round(stage.settings.echo_tail_ms / 1000 / V._SLOT_S) + 1):
        theirs = np.maximum(np.array([far.get(s - lag, V._SILENT_DB) for s in slots]), V._ENVELOPE_FLOOR_DB)
        if theirs.std() < V._FLAT_DB or mine.std() < V._FLAT_DB:
            return True
        best = max(best, float(np.corrcoef(mine, theirs)[0, 1]))
    return best >= stage.settings.echo_min_correlation


def fill(stage: V.VadStage, rng: random.Random, kind: int, slots: int) -> None:
    stage._states = {Party.CALLER: V._PartyState(), Party.AGENT: V._PartyState()}
    played = [rng.uniform(-70, -20) for _ in range(slots)]
    for i in range(slots):
        ts, lvp = i * V._SLOT_S, played[i]
        if kind == 0:  # echo: the played level k slots earlier, 20 dB down, with jitter
            k = rng.randint(0, 15)
            own = (played[i - k] if i >= k else -90.0) - 20 + rng.gauss(0, 1)
        elif kind == 1:  # a person talking, unrelated to what is played
            own = rng.uniform(-70, -30)
        else:  # a steady played sound
            lvp, own = -30.0 + rng.gauss(0, 0.1), rng.uniform(-70, -30)
        if rng.random() < 0.9:
            stage._states[Party.CALLER].sent.append((ts, ts + V._SLOT_S, own))
        stage._states[Party.CALLER].far_end.append((ts, ts + V._SLOT_S, lvp))
        if rng.random() < 0.5:
            stage._states[Party.AGENT].sent.append((ts, ts + V._SLOT_S, rng.uniform(-90, -40)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3000)
    args = ap.parse_args()
    stage, rng, slots = V.VadStage(VadSettings()), random.Random(1), 75
    cost = {"per delay (baseline)": 0.0, "all delays at once": 0.0}
    same = 0
    for trial in range(args.trials):
        fill(stage, rng, trial % 3, slots)
        t1 = slots * V._SLOT_S
        a = time.process_time()
        before = per_delay(stage, Party.CALLER, t1)
        b = time.process_time()
        now = stage._follows_played(Party.CALLER, t1)
        c = time.process_time()
        cost["per delay (baseline)"] += b - a
        cost["all delays at once"] += c - b
        same += before == now
    base = cost["per delay (baseline)"]
    print(f"{args.trials} level histories, the same decision on {same}")
    print("| echo check | µs per voiced frame | vs baseline |\n|---|---|---|")
    for name, total in cost.items():
        print(f"| {name} | {total / args.trials * 1e6:.0f} | {total / base:.2f} |")


if __name__ == "__main__":
    main()
