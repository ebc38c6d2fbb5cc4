"""Throughput of a QA replay batch: ``callcenter replay`` of one folder with ``--jobs 1`` (one
process) against ``--jobs`` = the cores (a pool of worker processes), same files, same run, as a
table. The issue's target: replay at least 20x real time per core.

The batch is made from the committed fixtures (``audio_fixtures/*.wav``: 16 kHz and G.711 copies
of each call) in a temporary folder until it holds ``--files`` recordings: whole copies, or with
``--slice MIN MAX`` varied cuts of them (a random MIN-MAX s stretch of a random fixture, in its
own rate, channels and encoding; seeded, so every run gets the same batch), which is how a
1,000-file run fits in minutes. Each run is the real command in a subprocess with its own data
folder (records stored in SQLite, as a QA run stores them), so its wall time includes starting up
and loading the model(s). CPU is summed over the command's whole process tree (sampled; workers
are children of a forkserver). Batch replay has live partials off unless ``--partials``.

    .venv/bin/python benchmarks/bench_replay_batch.py                    # 200 whole fixtures
    .venv/bin/python benchmarks/bench_replay_batch.py --files 1000 --slice 3 9 --jobs 2
    .venv/bin/python benchmarks/bench_replay_batch.py --files 28 --engine none --jobs 1 2
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "audio_fixtures"
AUDIO_LINE = re.compile(r"^\s+([0-9.]+) s of audio in ([0-9.]+) s")


@dataclass
class Run:
    jobs: int
    files: int
    ok: int
    audio_s: float
    wall_s: float
    cpu_s: float
    rss_mb: float
    failed: int

    @property
    def speed(self) -> float:
        return self.audio_s / self.wall_s

    @property
    def files_per_s(self) -> float:
        return self.files / self.wall_s

    @property
    def per_core(self) -> float:
        return self.speed / min(self.jobs, os.cpu_count() or 1)


def make_batch(folder: Path, files: int, cut: tuple[float, float] | None = None, seed: int = 14) -> None:
    """``files`` recordings in ``folder``: the fixtures copied in turn, or (``cut``) random
    stretches of ``cut[0]``-``cut[1]`` s of random fixtures, each kept in its source's format."""
    sources = sorted(FIXTURES.glob("*.wav"))
    if cut is None:
        for i in range(files):
            src = sources[i % len(sources)]
            shutil.copy(src, folder / f"{i:05d}-{src.name}")
        return
    rng = random.Random(seed)
    audio = {src: sf.read(str(src), dtype="int16", always_2d=True) for src in sources}
    subtype = {src: sf.info(str(src)).subtype for src in sources}
    for i in range(files):
        src = rng.choice(sources)
        data, rate = audio[src]
        length = min(len(data), int(rng.uniform(*cut) * rate))
        start = rng.randrange(0, len(data) - length + 1)
        sf.write(str(folder / f"{i:05d}-{src.stem}.wav"), data[start : start + length], rate, subtype=subtype[src])


class TreeMeter:
    """CPU seconds and summed RSS of a process and all its descendants, sampled."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.cpu: dict[int, float] = {}
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            rss = 0
            for p in procs:
                try:
                    t = p.cpu_times()
                    self.cpu[p.pid] = t.user + t.system  # own time only: a reaped child is sampled itself
                    rss += p.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            self._stop.wait(self.interval_s)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self.cpu.values())


def run(folder: Path, data_dir: Path, jobs: int, engine: str | None, partials: bool) -> Run:
    cmd = [sys.executable, "-m", "callcenter", "--data-dir", str(data_dir), "replay", "--jobs", str(jobs),
           *(["--engine", engine] if engine else []), *(["--partials"] if partials else []), str(folder)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    meter = TreeMeter(proc.pid)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    cpu = meter.stop()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"replay --jobs {jobs} exited {proc.returncode}:\n{err[-3000:]}")
    audio = [float(m[1]) for line in out.splitlines() if (m := AUDIO_LINE.match(line))]
    failed = sum(1 for ln in err.splitlines() if ln.startswith("error: "))
    return Run(jobs, sum(1 for ln in out.splitlines() if ln.startswith("== ")), len(audio), sum(audio), wall,
               cpu, meter.peak_rss / 2**20, failed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=200, help="recordings in the batch (1000 for the issue's run)")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, os.cpu_count() or 1], help="--jobs values compared")
    ap.add_argument("--engine", help="recognizer (default: the settings' own, whisper)")
    ap.add_argument("--partials", action="store_true",
                    help="replay --partials: live re-decodes too (off by default in a batch: nobody watches them)")
    ap.add_argument("--slice", type=float, nargs=2, metavar=("MIN_S", "MAX_S"),
                    help="varied cuts of MIN_S-MAX_S seconds instead of whole fixtures")
    args = ap.parse_args()
    cut = (args.slice[0], args.slice[1]) if args.slice else None
    with tempfile.TemporaryDirectory(prefix="bench-replay-batch-") as tmp:
        folder = Path(tmp) / "calls"
        folder.mkdir()
        make_batch(folder, args.files, cut)
        runs = [run(folder, Path(tmp) / f"var-{jobs}", jobs, args.engine, args.partials) for jobs in args.jobs]
    cores = os.cpu_count() or 1
    made = f"{cut[0]:g}-{cut[1]:g} s cuts of" if cut else "copies of"
    print(f"replay batch: {args.files} files, {made} audio_fixtures/, engine {args.engine or 'default'}, "
          f"partials {'on' if args.partials else 'off'}, {cores} cores, load avg {os.getloadavg()[0]:.1f} at the end")
    print("| --jobs | files OK | failed | audio | wall | files/s | x real time | x real time per core | CPU s | "
          "CPU s per audio s | peak RSS (tree) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r.jobs} | {r.ok}/{r.files} | {r.failed} | {r.audio_s / 60:.1f} min | {r.wall_s:.1f} s | "
              f"{r.files_per_s:.2f} | {r.speed:.1f} | {r.per_core:.1f} | {r.cpu_s:.0f} | {r.cpu_s / r.audio_s:.3f} | "
              f"{r.rss_mb:.0f} MB |")
    if len(runs) > 1:
        print(f"speed-up --jobs {runs[-1].jobs} over --jobs {runs[0].jobs}: {runs[-1].speed / runs[0].speed:.2f}x")


if __name__ == "__main__":
    main()
