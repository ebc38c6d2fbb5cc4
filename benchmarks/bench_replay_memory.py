"""Peak memory of replaying long recordings: the whole-file loader (before) against the streamed
one (``speech.audio_io.open_recording``), and the full ``callcenter replay`` command.

Recordings are generated here (8 kHz mono 16-bit WAV, telephone style: bursts of voiced noise and
pauses), written block by block to a temporary folder and deleted afterwards. Each measurement
runs in a fresh child process and reports that process's own peak RSS (``wait4`` rusage), so
one case cannot inflate another.

    .venv/bin/python benchmarks/bench_replay_memory.py                       # 1, 10, 30, 120 min
    .venv/bin/python benchmarks/bench_replay_memory.py --minutes 1 10 --replay-minutes 1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
RATE = 8000

BEFORE = """
import sys
from math import gcd
import numpy as np, soundfile as sf
from scipy.signal import resample_poly
# The loader as it was: read everything, resample each track at once, then frame it.
data, rate = sf.read(sys.argv[1], dtype="float32", always_2d=True)
g = gcd(rate, 16000)
tracks = [np.clip(np.round(resample_poly(data[:, i], 16000 // g, rate // g).astype(np.float32) * 32767.0),
                  -32768, 32767).astype(np.int16) for i in range(data.shape[1])]
n = 0
for start in range(0, len(tracks[0]) - 319, 320):
    for t in tracks:
        t[start:start + 320].astype("<i2").tobytes()
        n += 1
print(n)
"""

AFTER = """
import sys
from speech.audio_io import open_recording
print(sum(1 for _ in open_recording(sys.argv[1]).frames()))
"""


def make_recording(path: Path, minutes: float, rate: int = RATE) -> None:
    """Voiced-noise bursts (0.8-3 s) and pauses (0.3-2 s), written a block at a time."""
    rng = np.random.default_rng(int(minutes * 10))
    total = int(minutes * 60 * rate)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        written, on = 0, True
        while written < total:
            n = min(total - written, int(rng.uniform(0.8, 3.0) if on else rng.uniform(0.3, 2.0)) * rate + 1)
            t = np.arange(n) / rate
            if on:
                x = 0.2 * np.sin(2 * np.pi * rng.uniform(110, 220) * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
                x += 0.05 * rng.standard_normal(n)
            else:
                x = 0.002 * rng.standard_normal(n)
            f.write(x.astype(np.float32))
            written += n
            on = not on


def peak_rss(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(peak RSS MiB, wall seconds, stdout tail) of one child process."""
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:  # a pipe could fill up
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read().decode(), err_f.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}): {err[-1500:]}")
    return usage.ru_maxrss / 1024, wall, out.strip().splitlines()[-1] if out.strip() else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 30, 120])
    ap.add_argument("--replay-minutes", type=float, nargs="*", default=[1, 10, 30, 120],
                    help="lengths also replayed in full (`callcenter replay --engine none --no-store`)")
    ap.add_argument("--skip-before", type=float, default=None,
                    help="skip the whole-file loader above this many minutes (it needs GBs)")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLCENTER_", "VOSK_"))}
    env["PYTHONPATH"] = str(ROOT)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-replay-mem-") as tmp:
        for minutes in args.minutes:
            wav = Path(tmp) / f"call-{minutes:g}min.wav"
            make_recording(wav, minutes)
            size = wav.stat().st_size / 2**20
            before = after = replay = None
            if args.skip_before is None or minutes <= args.skip_before:
                before = peak_rss([sys.executable, "-c", BEFORE, str(wav)], env)
            after = peak_rss([sys.executable, "-c", AFTER, str(wav)], env)
            if before is not None:
                assert before[2] == after[2], f"frame counts differ: {before[2]} vs {after[2]}"
            if minutes in args.replay_minutes:
                replay = peak_rss([sys.executable, "-m", "callcenter", "--data-dir", str(Path(tmp) / "var"), "replay",
                                   "--engine", "none", "--no-store", "--json", str(wav)], env)
            rows.append((minutes, size, before, after, replay))
            wav.unlink()
            print(f"done {minutes:g} min", file=sys.stderr)

    def cell(m: tuple[float, float, str] | None) -> str:
        return "–" if m is None else f"{m[0]:,.0f} MiB ({m[1]:.1f} s)"

    print("| recording | WAV size | decode + frames, whole file (before) | decode + frames, streamed (after) "
          "| `replay --engine none --no-store` (after) |")
    print("|---|---|---|---|---|")
    for minutes, size, before, after, replay in rows:
        print(f"| {minutes:g} min | {size:.0f} MiB | {cell(before)} | {cell(after)} | {cell(replay)} |")
    print(f"\npeak RSS of each child process (wall time); 8 kHz mono 16-bit WAV resampled to 16 kHz; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
