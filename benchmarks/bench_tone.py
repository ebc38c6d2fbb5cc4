"""Cost of the tone stage per audio second: buffering, prosody, words, scoring.

Renders caller speech with espeak-ng (+ sox), feeds it through ``ToneStage`` as the pipeline
would (20 ms frames, VAD and ASR events scripted from the known speech bounds) and prints a table.

    .venv/bin/python benchmarks/bench_tone.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from callcenter.settings import ToneSettings
from speech.events import FinalTranscript, SpeechEnded, SpeechStarted
from speech.frames import FRAME_MS, PIPELINE_RATE, AudioFrame, Party
from speech.lexicon import LexicalScorer
from speech.prosody import analyze
from speech.tone import ToneStage

LINES = [
    ("Hello, I am calling about my internet connection.", 50, 150, 100),
    ("It stopped working yesterday evening and I restarted the router twice.", 55, 160, 110),
    ("It is still not working and I already called about this last week.", 68, 175, 140),
    ("I am really frustrated, this is a complete waste of my time.", 78, 192, 170),
    ("This is the third time I call, it is unacceptable, I want to speak to a manager.", 85, 210, 200),
]
STEP = PIPELINE_RATE * FRAME_MS // 1000


def render(text: str, pitch: int, speed: int, amp: int, folder: Path) -> np.ndarray:
    raw, out = folder / f"{pitch}.raw.wav", folder / f"{pitch}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-p", str(pitch), "-s", str(speed), "-a", str(amp),
                    "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", str(PIPELINE_RATE), "-c", "1", "-b", "16", str(out)],
                   check=True, capture_output=True)
    data, _ = sf.read(str(out), dtype="int16")
    loud = np.flatnonzero(np.abs(data.astype(np.int32)) > 300)
    return data[loud[0] : loud[-1] + 1]


def run_call(utterances: list[np.ndarray], texts: list[str]) -> dict[str, float]:
    """One call through a fresh stage; seconds spent per kind of work, and audio seconds."""
    stage = ToneStage(ToneSettings())
    gap = np.zeros(int(1.0 * PIPELINE_RATE), np.int16)
    track, script, pos = [gap], [], len(gap)
    for speech, text in zip(utterances, texts, strict=True):
        start, end = pos / PIPELINE_RATE, (pos + len(speech)) / PIPELINE_RATE
        script += [(start + 0.1, SpeechStarted(t=start, party=Party.CALLER)),
                   (end + 0.3, SpeechEnded(t=end, start=start, duration=end - start, party=Party.CALLER)),
                   (end + 0.5, FinalTranscript(t=end + 0.5, party=Party.CALLER, text=text, start=start, end=end))]
        track += [speech, gap]
        pos += len(speech) + len(gap)
    audio = np.concatenate(track)
    audio = np.pad(audio, (0, -len(audio) % STEP))
    frames = [AudioFrame(audio[i : i + STEP].tobytes(), PIPELINE_RATE, i / PIPELINE_RATE, Party.CALLER)
              for i in range(0, len(audio), STEP)]
    cost = {"frames": 0.0, "speech_ended": 0.0, "final": 0.0, "other": 0.0}
    for frame in frames:
        while script and script[0][0] <= frame.timestamp:
            event = script.pop(0)[1]
            key = {SpeechEnded: "speech_ended", FinalTranscript: "final"}.get(type(event), "other")
            t0 = time.perf_counter()
            stage.process_event(event)
            cost[key] += time.perf_counter() - t0
        t0 = time.perf_counter()
        stage.process_frame(frame)
        cost["frames"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    stage.finish(len(audio) / PIPELINE_RATE)
    cost["other"] += time.perf_counter() - t0
    cost["audio_s"] = len(audio) / PIPELINE_RATE
    cost["speech_s"] = sum(len(u) for u in utterances) / PIPELINE_RATE
    cost["n_frames"] = len(frames)
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        utterances = [render(text, p, s, a, Path(tmp)) for text, p, s, a in LINES]
    texts = [text for text, *_ in LINES]

    run_call(utterances, texts)  # warm-up: imports, librosa caches
    runs = [run_call(utterances, texts) for _ in range(args.repeat)]
    med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    total = med["frames"] + med["speech_ended"] + med["final"] + med["other"]
    print(f"tone stage, {len(LINES)} caller utterances, {med['audio_s']:.1f} s call "
          f"({med['speech_s']:.1f} s speech), median of {args.repeat} runs\n")
    print(f"{'work':<30}{'total ms':>10}{'ms / audio s':>14}{'per unit':>16}")
    rows = [
        ("buffer frames", med["frames"], f"{med['frames'] / med['n_frames'] * 1e6:.1f} us/frame"),
        ("prosody at SpeechEnded", med["speech_ended"], f"{med['speech_ended'] / len(LINES) * 1e3:.2f} ms/utt"),
        ("words + score at Final", med["final"], f"{med['final'] / len(LINES) * 1e3:.2f} ms/utt"),
        ("other events, finish", med["other"], ""),
        ("all", total, ""),
    ]
    for name, seconds, unit in rows:
        print(f"{name:<30}{seconds * 1e3:>10.2f}{seconds * 1e3 / med['audio_s']:>14.3f}{unit:>16}")

    print(f"\n{'analyze() alone':<30}{'ms':>10}{'ms / audio s':>14}")
    speech = np.concatenate(utterances)
    for seconds in (1, 3, 10, 30):
        x = np.resize(speech, seconds * PIPELINE_RATE)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            analyze(x, PIPELINE_RATE)
            times.append(time.perf_counter() - t0)
        ms = float(np.median(times)) * 1e3
        print(f"{f'{seconds} s utterance':<30}{ms:>10.2f}{ms / seconds:>14.3f}")
    scorer = LexicalScorer()
    t0 = time.perf_counter()
    for _ in range(200):
        for text in texts:
            scorer.score(text)
    per = (time.perf_counter() - t0) / (200 * len(texts)) * 1e3
    print(f"\nLexicalScorer.score: {per:.3f} ms per sentence (VADER + {len(texts)} phrase lists)")


if __name__ == "__main__":
    main()
