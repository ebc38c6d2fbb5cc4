"""Throughput of a QA replay batch: ``callcenter replay`` of one folder with ``--jobs 1`` (one
process, today's path) against ``--jobs`` = the cores (a pool of worker processes), same files,
same run, as a table. The issue's target: replay at least 20x real time per core.

The batch is the committed fixtures (``audio_fixtures/*.wav``: 16 kHz and G.711 copies of each
call) copied over and over into a temporary folder until it holds ``--files`` recordings. Each
run is the real command in a subprocess with its own data folder (records stored in SQLite, as a
QA run stores them), so its wall time includes starting up and loading the model(s). CPU is
summed over the command's whole process tree (sampled; workers are children of a forkserver).

    .venv/bin/python benchmarks/bench_replay_batch.py                    # 200 files, default engine
    .venv/bin/python benchmarks/bench_replay_batch.py --files 1000
    .venv/bin/python benchmarks/bench_replay_batch.py --files 28 --engine none --jobs 1 2
"""

from __future__ import annotations

import argparse
import os
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

    @property
    def speed(self) -> float:
        return self.audio_s / self.wall_s

    @property
    def per_core(self) -> float:
        return self.speed / min(self.jobs, os.cpu_count() or 1)


def make_batch(folder: Path, files: int) -> None:
    sources = sorted(FIXTURES.glob("*.wav"))
    for i in range(files):
        src = sources[i % len(sources)]
        shutil.copy(src, folder / f"{i:05d}-{src.name}")


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
           *(["--engine", engine] if engine else []), str(folder)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    if not partials:
        env["CALLCENTER_ASR__PARTIALS"] = "false"
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    meter = TreeMeter(proc.pid)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    cpu = meter.stop()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"replay --jobs {jobs} exited {proc.returncode}:\n{err[-3000:]}")
    audio = [float(m[1]) for line in out.splitlines() if (m := AUDIO_LINE.match(line))]
    return Run(jobs, sum(1 for ln in out.splitlines() if ln.startswith("== ")), len(audio), sum(audio), wall,
               cpu, meter.peak_rss / 2**20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=200, help="recordings in the batch (1000 for the issue's run)")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, os.cpu_count() or 1], help="--jobs values compared")
    ap.add_argument("--engine", help="recognizer (default: the settings' own, whisper)")
    ap.add_argument("--no-partials", action="store_true",
                    help="asr.partials off: no live re-decodes, which nobody watches in a batch")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replay-batch-") as tmp:
        folder = Path(tmp) / "calls"
        folder.mkdir()
        make_batch(folder, args.files)
        runs = [run(folder, Path(tmp) / f"var-{jobs}", jobs, args.engine, not args.no_partials) for jobs in args.jobs]
    cores = os.cpu_count() or 1
    print(f"replay batch: {args.files} files from audio_fixtures/, engine {args.engine or 'default'}"
          f"{', partials off' if args.no_partials else ''}, "
          f"{cores} cores, load avg {os.getloadavg()[0]:.1f} at the end")
    print("| --jobs | files OK | audio | wall | x real time | x real time per core | CPU s | CPU s per audio s | peak RSS (tree) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r.jobs} | {r.ok}/{r.files} | {r.audio_s / 60:.1f} min | {r.wall_s:.1f} s | {r.speed:.1f} | "
              f"{r.per_core:.1f} | {r.cpu_s:.0f} | {r.cpu_s / r.audio_s:.3f} | {r.rss_mb:.0f} MB |")
    if len(runs) > 1:
        print(f"speed-up --jobs {runs[-1].jobs} over --jobs {runs[0].jobs}: {runs[-1].speed / runs[0].speed:.2f}x")


if __name__ == "__main__":
    main()
