"""Recognizers side by side on real read speech and on non-speech, alone and through the pipeline.

    .venv/bin/python benchmarks/bench_recognizers.py [--nonspeech-s 600] [--engines ps,stock,30s,utt]

One run, the same audio for every engine:
  * speech: the five LibriVox clips of Debian's ``pocketsphinx-testdata`` (24.7 s, fetched and
    cached by ``benchmarks/corpus.py``), at 16 kHz and through an 8 kHz G.711 µ-law round trip;
  * non-speech: ``--nonspeech-s`` seconds (default 600) of silence, noise, hum, hold music, DTMF,
    comfort noise and IVR-prompt echo, through G.711 and at 16 kHz; the prompt echo also as a
    2-channel recording with the played channel, as a live call has it (caller words counted).
Engines: pocketsphinx (shipped en-us model); Whisper tiny.en through faster-whisper's stock
``transcribe()`` (30 s window, its own thresholds, no extra guards); and the project's whisper
engine with the stock-size window (``asr.whisper_window = 30s``) and as built (``utterance``).

Per engine and sample rate:
  * engine alone: each clip decoded whole (WER, CPU-s per audio second);
  * pipeline on the same files (``callcenter replay``'s ``replay_file``, default settings, as fast
    as it goes): each clip replayed on its own, WER of its finals against the same references;
  * pipeline on one call made of the five clips with 1.5 s pauses and a -60 dB noise floor: WER
    of the concatenated finals, CPU-s per audio s with partials off (the cost of the transcript;
    measured after the same-files replays, so one-time start-up costs such as librosa's first
    call are not counted);
  * paced (the same call fed in real time, live partials on as by default): VAD end of utterance
    (``speech.ended`` emitted) → final transcript emitted, p50/p95 in ms; partials per utterance
    and their median spacing; CPU-s per audio s of the whole process while it ran (recognizer
    with partials, plus the detectors);
  * invented words: normalized words in final transcripts of the non-speech corpus (pipeline).
Prints a markdown table. CPU is process time (all threads) over audio seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import corpus  # noqa: E402
from callcenter.replay import replay_file  # noqa: E402
from callcenter.settings import Settings, load_settings  # noqa: E402
from callcenter.wiring import build_pipeline, prepare_process  # noqa: E402
from speech.asr.base import AsrEngine, BatchEngine, Hypothesis  # noqa: E402
from speech.audio_io import load_recording  # noqa: E402
from speech.events import CallStarted, Event, FinalTranscript, PartialTranscript, SpeechEnded  # noqa: E402
from speech.frames import Party  # noqa: E402

GAP_S = 1.5
"""Pause between the clips of the benchmark call (noise floor only)."""


class StockWhisper(BatchEngine):
    """faster-whisper's own ``transcribe()`` as a batch engine: the 30 s window, its default
    thresholds and temperature fallback, no project guards. The baseline, here only."""

    name = "whisper-stock"
    concurrency = 1

    def __init__(self, beam_size: int = 1) -> None:
        from faster_whisper import WhisperModel

        from speech.asr.whisper_engine import resolve_whisper_model
        from speech.settings import AsrSettings

        self._model = WhisperModel(resolve_whisper_model(AsrSettings()), device="cpu", compute_type="int8",
                                   cpu_threads=1)
        self._beam = beam_size

    def decode(self, audio: np.ndarray, *, final: bool, hints: Sequence[str] | None = None) -> Hypothesis:
        segments, _ = self._model.transcribe(audio.astype(np.float32), language="en", beam_size=self._beam,
                                             condition_on_previous_text=False)
        text = " ".join(s.text.strip() for s in segments).strip()
        return Hypothesis(text=text, final=final)


@dataclass
class Row:
    engine: str
    version: str
    alone_wer: float = float("nan")
    alone_cpu: float = float("nan")
    same_wer: float = float("nan")
    pipe_wer: float = float("nan")
    pipe_cpu: float = float("nan")
    lat_p50: float = float("nan")
    lat_p95: float = float("nan")
    partials_per_utt: float = float("nan")
    partial_gap: float = float("nan")
    paced_cpu: float = float("nan")
    invented: int = -1
    nonspeech_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def settings_for(data_dir: Path, engine: str, **asr: object) -> Settings:
    overrides: dict[str, object] = {"data_dir": str(data_dir), "mqtt.enabled": False, "asr.engine": engine}
    overrides.update({f"asr.{k}": v for k, v in asr.items()})
    return load_settings(environ={}, overrides=overrides)


def alone(engine: AsrEngine, wavs: list[Path], refs: list[str]) -> tuple[float, float]:
    """Each file decoded whole by the engine itself: (WER, CPU-s per audio second)."""
    hyps, audio_s, cpu = [], 0.0, 0.0
    for wav in wavs:
        pcm = next(iter(load_recording(wav).tracks.values()))
        audio_s += len(pcm) / corpus.RATE
        t0 = time.process_time()
        if isinstance(engine, BatchEngine):
            hyp = engine.decode(pcm.astype(np.float32) / 32768.0, final=True)
        else:
            session = engine.open_session()
            data = pcm.astype("<i2").tobytes()
            for i in range(0, len(data), 3200):
                session.accept(data[i : i + 3200])
            hyp = session.finish()
            session.close()
        cpu += time.process_time() - t0
        hyps.append(hyp.text)
    return corpus.wer(refs, hyps).wer, cpu / audio_s


def finals_text(events: list[Event]) -> str:
    return " ".join(e.text for e in events if isinstance(e, FinalTranscript) and e.text.strip())


def through_replay(path: Path, settings: Settings, engine: AsrEngine) -> tuple[str, float, list[Event]]:
    res = asyncio.run(replay_file(path, settings, engine))
    if res.error:
        raise RuntimeError(res.error)
    return finals_text(res.events), res.cpu_seconds / res.audio_seconds, res.events


async def paced(path: Path, settings: Settings, engine: AsrEngine) -> tuple[list[float], list[int], list[float], float]:
    """Feed in real time; (end-of-utterance → final ms, partials per utterance, partial gaps s,
    process CPU-s per audio second)."""
    rec = load_recording(path)
    cpu0 = time.process_time()
    pipeline = build_pipeline("bench-paced", settings, engine)
    stamps: list[tuple[float, Event]] = []
    pipeline.add_sink(lambda e: stamps.append((time.perf_counter(), e)))
    await pipeline.start(CallStarted(t=0.0))
    t0 = time.perf_counter()
    for frame in rec.frames():
        delay = t0 + frame.timestamp - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pipeline.push_frame(frame)
    await pipeline.end()
    cpu = (time.process_time() - cpu0) / rec.duration
    latencies, per_utt, gaps = [], [], []
    ended_at: float | None = None
    partial_times: list[float] = []
    for at, ev in stamps:
        if isinstance(ev, SpeechEnded):
            ended_at = at
        elif isinstance(ev, PartialTranscript):
            partial_times.append(at)
        elif isinstance(ev, FinalTranscript):
            if ended_at is not None and ev.text.strip():
                latencies.append((at - ended_at) * 1000)
            per_utt.append(len(partial_times))
            gaps += [b - a for a, b in zip(partial_times, partial_times[1:], strict=False)]
            ended_at, partial_times = None, []
    return latencies, per_utt, gaps, cpu


def invented_words(files: list[Path], settings: Settings, engine: AsrEngine) -> tuple[int, dict[str, int]]:
    """Words in the caller's finals (a 2-channel case's played channel is our own prompt)."""
    total, by_case = 0, {}
    for f in files:
        _, _, events = through_replay(f, settings, engine)
        text = " ".join(e.text for e in events if isinstance(e, FinalTranscript) and e.party == Party.CALLER)
        n = len(corpus.normalize(text).split())
        total += n
        if n:
            by_case[f.stem] = n
    return total, by_case


def nonspeech_set(folder: Path, g711_seconds: float) -> dict[str, list[Path]]:
    """The non-speech corpus: ``g711_seconds`` through µ-law, a third of it at 16 kHz."""
    n_cases = len(corpus.nonspeech_corpus(1.0, g711=False))
    fixed = 91.0  # the prompt-echo case has its own length
    out: dict[str, list[Path]] = {"16 kHz": [], "8 kHz µ-law": []}
    for version, total in (("8 kHz µ-law", g711_seconds), ("16 kHz", g711_seconds / 3)):
        short = total < 2 * fixed  # a short run: the prompt echo cut to the length of the others
        each = max(3.0, total / n_cases if short else (total - fixed) / (n_cases - 1))
        cases = corpus.nonspeech_corpus(each, g711=False)
        if short:
            cases = [corpus.NonSpeech(c.name, c.audio[: int(each * corpus.RATE)]) for c in cases]
        for case in cases:
            src = corpus.write_wav(folder / f"{version[:2]}-{case.name}.wav", case.audio)
            out[version].append(src if version == "16 kHz" else corpus.g711_file(src, folder / "g711"))
        # The same echo as a live call has it: with the played channel (2-channel recording).
        played, heard = corpus.prompt_echo_call(-25.0, g711=version != "16 kHz")
        if short:
            played, heard = played[: int(each * corpus.RATE)], heard[: int(each * corpus.RATE)]
        out[version].append(corpus.write_stereo(folder / f"{version[:2]}-prompt_echo_-25dB_played.wav",
                                                played, heard))
    return out


def build_call(clips: list[corpus.Clip], out: Path) -> Path:
    rng = np.random.default_rng(11)
    parts = [corpus.white(0.5, -60.0, rng)]
    for c in clips:
        parts += [c.audio() + corpus.white(len(c.audio()) / corpus.RATE, -60.0, rng)[: len(c.audio())],
                  corpus.white(GAP_S, -60.0, rng)]
    return corpus.write_wav(out, np.concatenate(parts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nonspeech-s", type=float, default=600.0,
                    help="seconds of G.711 non-speech for the engine as built (16 kHz: a third)")
    ap.add_argument("--baseline-nonspeech-s", type=float, default=120.0, help="the same for the baselines")
    ap.add_argument("--engines", default="utt,ps,stock", help="of utt, ps, stock, 30s")
    ap.add_argument("--no-paced", action="store_true")
    args = ap.parse_args()
    clips = corpus.librivox_clips()
    refs = [c.reference for c in clips]
    work = Path(tempfile.mkdtemp(prefix="bench-asr-"))
    data = work / "data"
    versions: dict[str, tuple[list[Path], Path]] = {}
    call16 = build_call(clips, work / "librivox_call.wav")
    versions["16 kHz"] = ([c.path for c in clips], call16)
    versions["8 kHz µ-law"] = ([corpus.g711_file(c.path, work / "g711") for c in clips],
                               corpus.g711_file(call16, work))
    nonspeech = {"utt": nonspeech_set(work / "ns", args.nonspeech_s),
                 "baseline": nonspeech_set(work / "ns-baseline", args.baseline_nonspeech_s)}

    specs: dict[str, tuple[str, Callable[[], tuple[AsrEngine, Settings]]]] = {
        "ps": ("pocketsphinx", lambda: _load(data, "pocketsphinx")),
        "stock": ("whisper tiny.en, stock transcribe() (30 s window, no partials)",
                  lambda: (StockWhisper(), settings_for(data, "whisper", partials=False))),
        "30s": ("whisper tiny.en, engine, 30 s window", lambda: _load(data, "whisper", whisper_window="30s")),
        "utt": ("whisper tiny.en, engine as built (utterance window)", lambda: _load(data, "whisper")),
    }
    rows: list[Row] = []
    for key in args.engines.split(","):
        label, load = specs[key]
        engine, settings = load()
        for version, (wavs, call) in versions.items():
            row = Row(label, version)
            row.alone_wer, row.alone_cpu = alone(engine, wavs, refs)
            _progress(f"{key} {version}: alone")
            same = [through_replay(w, settings, engine)[0] for w in wavs]
            row.same_wer = corpus.wer(refs, same).wer
            _progress(f"{key} {version}: pipeline, same files")
            finals_only = settings.model_copy(update={"asr": settings.asr.model_copy(update={"partials": False})})
            text, row.pipe_cpu, _ = through_replay(call, finals_only, engine)  # warm: after the same-files pass
            row.pipe_wer = corpus.wer([" ".join(refs)], [text]).wer
            _progress(f"{key} {version}: pipeline")
            if not args.no_paced:
                lat, per_utt, gaps, row.paced_cpu = asyncio.run(paced(call, settings, engine))
                row.lat_p50, row.lat_p95 = pct(lat, 0.5), pct(lat, 0.95)
                row.partials_per_utt = statistics.mean(per_utt) if per_utt else 0.0
                row.partial_gap = statistics.median(gaps) if gaps else float("nan")
                _progress(f"{key} {version}: paced")
            files = nonspeech["utt" if key == "utt" else "baseline"][version]
            row.invented, by_case = invented_words(files, settings, engine)
            row.nonspeech_s = sum(load_recording(p).duration for p in files)
            row.notes = [f"{k}: {v}" for k, v in by_case.items()]
            rows.append(row)
            print(_line(row), flush=True)
        engine.close()
    print_table(rows)


def _progress(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def _load(data: Path, name: str, **asr: object) -> tuple[AsrEngine, Settings]:
    settings = settings_for(data, name, **asr)
    engine = prepare_process(settings)  # as a worker does: first-use costs paid before the first call
    assert engine is not None
    return engine, settings


def _f(x: float, fmt: str = "{:.3f}") -> str:
    return "–" if x != x else fmt.format(x)


def _line(r: Row) -> str:
    return (f"| {r.engine} | {r.version} | {_f(r.alone_wer)} | {_f(r.same_wer)} | {_f(r.pipe_wer)} | "
            f"{_f(r.alone_cpu)} | {_f(r.pipe_cpu)} | {_f(r.paced_cpu)} | "
            f"{_f(r.lat_p50, '{:.0f}')} / {_f(r.lat_p95, '{:.0f}')} | "
            f"{_f(r.partials_per_utt, '{:.1f}')} / {_f(r.partial_gap, '{:.2f}')} | {r.invented} in "
            f"{r.nonspeech_s / 60:.1f} min |"
            + (f" {'; '.join(r.notes)}" if r.notes else ""))


def print_table(rows: list[Row]) -> None:
    print("\nLibriVox clips (24.7 s, 5 utterances, 1.5 s pauses in the pipeline call)\n")
    print("| engine | audio | WER alone | WER pipeline, same files | WER pipeline, call | CPU-s/audio-s alone "
          "| CPU-s/audio-s pipeline (finals) | CPU-s/audio-s paced (with partials) "
          "| end of utterance → final p50 / p95 ms | partials per utterance / spacing s | invented words |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(_line(r))


if __name__ == "__main__":
    main()
