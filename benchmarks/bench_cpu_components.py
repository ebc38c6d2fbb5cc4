"""Where a replay's CPU goes, per component: CPU-ms per call-second and share of the total.

Replays the committed fixtures (``audio_fixtures/*.wav``, 16 kHz and G.711 copies of each call)
in this process through ``callcenter.replay.replay_file``, as ``callcenter replay --jobs 1``
does (real pipeline, real stages, summary, redaction and SQLite storage in a temporary data
folder), twice in the same run: with the recognizer (default: whisper) and with none (the
baseline: everything but recognition). Each component's methods are wrapped with a
``time.process_time`` meter; a replay is serial (the pipeline waits for every final before its
clock moves on), so process time measures the component alone. With live partials on
(``--partials``) their re-decodes overlap the other stages, and the recognizer rows then also
hold what ran beside them. What no wrapper covers (the pipeline's queue, asyncio, dispatch,
event objects) is the "frame handling" row: the replay's total minus the measured parts.

Call-second: a second of recording (a 2-channel recording's two parties count once). Model
load and process start-up are not in the table (printed above it).

    .venv/bin/python benchmarks/bench_cpu_components.py                 # fixtures, whisper
    .venv/bin/python benchmarks/bench_cpu_components.py --partials      # live partials on
    .venv/bin/python benchmarks/bench_cpu_components.py --rounds 2 --engine pocketsphinx
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIXTURES = ROOT / "audio_fixtures"

_local = threading.local()


@dataclass
class Meter:
    """CPU seconds per component; nested meters charge only the innermost."""

    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _stack(self) -> list[list[float]]:
        stack: list[list[float]] | None = getattr(_local, "stack", None)
        if stack is None:
            stack = _local.stack = []
        return stack

    def enter(self) -> None:
        self._stack().append([time.process_time(), 0.0])

    def leave(self, name: str) -> None:
        start, inner = self._stack().pop()
        spent = time.process_time() - start
        with self._lock:
            self.cpu[name] += spent - inner
            self.calls[name] += 1
        stack = self._stack()
        if stack:
            stack[-1][1] += spent

    def wrap(self, name: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kw: Any) -> Any:
            self.enter()
            try:
                return fn(*args, **kw)
            finally:
                self.leave(name(*args, **kw) if callable(name) else name)

        return timed

    def wrap_async(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def timed(*args: Any, **kw: Any) -> Any:
            t0 = time.process_time()
            try:
                return await fn(*args, **kw)
            finally:
                with self._lock:
                    self.cpu[name] += time.process_time() - t0
                    self.calls[name] += 1

        return timed

    def wrap_iter(self, name: str, it: Iterator[Any]) -> Iterator[Any]:
        while True:
            self.enter()
            try:
                item = next(it)
            except StopIteration:
                self.leave(name)
                return
            self.leave(name)
            yield item


STAGE_ROWS = {
    "vad": "VAD (webrtcvad + echo gate)",
    "dtmf": "DTMF (Goertzel)",
    "dead_air": "dead air",
    "talk_over": "talk-over",
    "asr": "ASR stage (buffering, resampling, hand-off)",
    "tone": "tone + prosody (librosa yin)",
}


def _stage_row(stage: Any) -> str:
    name = str(getattr(stage, "name", type(stage).__name__))
    if name in STAGE_ROWS:
        return STAGE_ROWS[name]
    return f"assist: {name}"


def instrument_pipeline(meter: Meter) -> Callable[[], None]:
    """Wrap every stage the wiring builds (its frame, event, control and finish handlers), and
    the audio reading; returns the undo."""
    import callcenter.replay as replay_mod

    build = replay_mod.build_pipeline
    opener = replay_mod.open_recording

    def undo() -> None:
        replay_mod.build_pipeline, replay_mod.open_recording = build, opener

    def build_metered(*args: Any, **kw: Any) -> Any:
        pipeline = build(*args, **kw)
        for stage in pipeline.stages:
            row = _stage_row(stage)
            for method in ("process_frame", "process_event", "process_control", "finish"):
                setattr(stage, method, meter.wrap(row, getattr(stage, method)))
        add_sink = pipeline.add_sink
        pipeline.add_sink = lambda sink: add_sink(meter.wrap("event sinks (printer, live redactor)", sink))
        return pipeline

    replay_mod.build_pipeline = build_metered

    def open_metered(*args: Any, **kw: Any) -> Any:
        return _MeteredRecording(meter, meter.wrap(READING, opener)(*args, **kw))

    replay_mod.open_recording = open_metered
    return undo


READING = "reading audio (soundfile, resampling)"


class _MeteredRecording:
    """A ``RecordingStream`` (frozen) whose frames are metered as they are read."""

    def __init__(self, meter: Meter, rec: Any) -> None:
        self._meter, self._rec = meter, rec

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rec, name)

    def frames(self, *args: Any, **kw: Any) -> Iterator[Any]:
        return self._meter.wrap_iter(READING, self._rec.frames(*args, **kw))


def instrument_after_call(meter: Meter, after: Any) -> None:
    chain = after._build_chain()
    after._chain = chain
    chain.redactor.redact_call = meter.wrap("after call: redaction", chain.redactor.redact_call)
    chain.summarizer.asummarize = meter.wrap_async("after call: summary", chain.summarizer.asummarize)
    if chain.writer is not None:
        chain.writer.awrite = meter.wrap_async("after call: storage (SQLite)", chain.writer.awrite)


def instrument_whisper(meter: Meter, engine: Any) -> None:
    """Recognizer rows: feature extraction, encoder, generate, alignment, and what else a decode
    does (guards, numpy), split by kind: finals, partials, IVR menu re-decodes, 30 s fallbacks."""
    from speech.asr.adapter import BufferedStream

    model = engine._model
    model.feature_extractor = _CallableProxy(meter.wrap(_op("features (log-mel)"), model.feature_extractor))
    model.encode = meter.wrap(_op("encoder"), model.encode)
    model.find_alignment = meter.wrap(_op("word alignment"), model.find_alignment)
    engine._run = meter.wrap(_op("generate (decoder)"), engine._run)
    menu = engine._menu_answer

    def menu_metered(*args: Any, **kw: Any) -> Any:
        with _kind("IVR menu re-decode"):
            return menu(*args, **kw)

    engine._menu_answer = menu_metered
    generate = engine._generate

    def generate_metered(x: Any, window: str, prompt: Any = None, **kw: Any) -> Any:
        if _current_kind() == "final":
            _local.generates = getattr(_local, "generates", 0) + 1
            if _local.generates > 1:  # a final's first decode is the final, the next ones fallbacks
                with _kind("30 s fallback" if window == "30s" else "wide-window fallback"):
                    return generate(x, window, prompt, **kw)
        return generate(x, window, prompt, **kw)

    engine._generate = generate_metered
    decode = BufferedStream._decode

    def decode_metered(self: Any, audio: Any, final: bool, hints: Any) -> Any:
        _local.generates = 0
        with _kind("final" if final else "partial"):
            return meter.wrap(_op("guards, numpy, rest"), decode)(self, audio, final, hints)

    BufferedStream._decode = decode_metered  # type: ignore[method-assign]


class _CallableProxy:
    """A callable stand-in for faster-whisper's FeatureExtractor (which other code reads attributes of)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn

    def __call__(self, *args: Any, **kw: Any) -> Any:
        return self._fn(*args, **kw)


class _kind:  # noqa: N801 - used as a context manager
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __enter__(self) -> None:
        kinds = getattr(_local, "kinds", None)
        if kinds is None:
            kinds = _local.kinds = []
        kinds.append(self.kind)

    def __exit__(self, *exc: object) -> None:
        _local.kinds.pop()


def _current_kind() -> str:
    kinds = getattr(_local, "kinds", None)
    return kinds[-1] if kinds else "final"


def _op(op: str) -> Callable[..., str]:
    return lambda *a, **k: f"recognizer: {op} [{_current_kind()}]"


@dataclass
class RunResult:
    label: str
    audio_s: float
    total_cpu: float
    wall: float
    load_s: float
    files: int
    failed: int
    cpu: dict[str, float]


async def replay_all(engine_name: str, partials: bool, rounds: int, files: list[Path]) -> RunResult:
    from callcenter.aftercall import AfterCall
    from callcenter.render import EventPrinter
    from callcenter.replay import replay_file
    from callcenter.settings import Settings
    from callcenter.wiring import prepare_process

    meter = Meter()
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        settings = settings.model_copy(update={"asr": settings.asr.model_copy(
            update={"engine": engine_name, "partials": partials})})
        t0 = time.perf_counter()
        engine = await asyncio.to_thread(prepare_process, settings)
        load_s = time.perf_counter() - t0
        if engine is not None and engine.name == "whisper":
            instrument_whisper(meter, engine)
        undo = instrument_pipeline(meter)
        after = AfterCall(settings, store=True)
        await after.start()
        instrument_after_call(meter, after)
        audio = total = wall = 0.0
        failed = 0
        out = io.StringIO()
        try:
            for _ in range(rounds):
                for path in files:
                    w0, c0 = time.perf_counter(), time.process_time()
                    res = await replay_file(path, settings, engine, sinks=[EventPrinter(out, label=str(path))],
                                            after_call=after)
                    total += time.process_time() - c0
                    wall += time.perf_counter() - w0
                    audio += res.audio_seconds
                    failed += res.error is not None
                    out.seek(0)
                    out.truncate()
        finally:
            undo()
            await after.stop()
            if engine is not None:
                engine.close()
    label = engine_name if engine_name != "none" else "no recognizer"
    return RunResult(label, audio, total, wall, load_s, len(files) * rounds, failed, dict(meter.cpu))


def table(runs: list[RunResult]) -> str:
    rows: list[str] = []
    for r in runs:
        measured = sum(r.cpu.values())
        r.cpu["frame handling (pipeline queue, asyncio, events)"] = max(0.0, r.total_cpu - measured)
    names = sorted({n for r in runs for n in r.cpu}, key=lambda n: -max(r.cpu.get(n, 0.0) for r in runs))
    head = " | ".join(f"{r.label} CPU-ms per call-s | share" for r in runs)
    rows.append(f"| component | {head} |")
    rows.append("|---|" + "---|---|" * len(runs))
    for n in names:
        cells = []
        for r in runs:
            v = r.cpu.get(n, 0.0)
            cells.append(f"{1000 * v / r.audio_s:.2f} | {100 * v / r.total_cpu:.1f} %")
        rows.append(f"| {n} | {' | '.join(cells)} |")
    cells = [f"**{1000 * r.total_cpu / r.audio_s:.1f}** | 100 %" for r in runs]
    rows.append(f"| **total** | {' | '.join(cells)} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", default="whisper", help="recognizer measured (the baseline is always none)")
    ap.add_argument("--partials", action="store_true", help="live partials on (replay's default is off)")
    ap.add_argument("--rounds", type=int, default=1, help="times the fixtures are replayed")
    ap.add_argument("files", nargs="*", type=Path, help="recordings (default: audio_fixtures/*.wav)")
    args = ap.parse_args()
    files = args.files or sorted(FIXTURES.glob("*.wav"))
    runs = [asyncio.run(replay_all(e, args.partials, args.rounds, files)) for e in (args.engine, "none")]
    print(f"replay CPU by component: {len(files)} files x {args.rounds}, partials {'on' if args.partials else 'off'}, "
          f"{os.cpu_count()} cores, load avg {os.getloadavg()[0]:.1f}")
    for r in runs:
        print(f"  {r.label}: {r.audio_s:.0f} call-s in {r.wall:.1f} s wall, {r.total_cpu:.1f} CPU-s = "
              f"{r.total_cpu / r.audio_s:.4f} CPU-s per call-s, {r.audio_s / r.total_cpu:.1f}x real time per core, "
              f"{r.failed} failed (process start-up and model load excluded: {r.load_s:.1f} s)")
    print(table(runs))


if __name__ == "__main__":
    main()
