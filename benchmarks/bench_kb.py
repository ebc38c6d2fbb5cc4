"""Knowledge suggestion latency: index build, query time, and final → suggestion on a live pipeline.

Three tables:
1. index: building the FTS5 index of a knowledge base, and the no-change re-sync every call
   start pays with ``auto_index`` (size/mtime only), for the sample KB and a synthetic 2,000-article one;
2. query: ``assist.suggestions.suggest`` (two BM25 searches, fused) over the labelled sample
   questions, each as the newest of two caller finals;
3. live: a real ``CallPipeline`` with the real ``SuggestionStage``, caller finals pushed on the
   wall clock as a live call's recognizer does; the time from the push to the sink getting the
   ``assist.suggestion``, with, as the baseline in the same run, the time to the sink getting
   the final itself. The first final of a call also opens (and syncs) the index.

    .venv/bin/python benchmarks/bench_kb.py [--calls 20] [--big 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from assist.evaluate import load_questions
from assist.index import KnowledgeIndex
from assist.kb_settings import SAMPLE_KB, KnowledgeSettings
from assist.suggestions import SuggestionStage, index_opener, suggest
from speech.events import AssistSuggestion, Event, FinalTranscript
from speech.frames import Party
from speech.pipeline import CallPipeline


def ms(values: list[float]) -> str:
    v = sorted(values)
    p95 = v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]
    return f"{statistics.median(v) * 1e3:8.2f} | {p95 * 1e3:8.2f} | {v[-1] * 1e3:8.2f}"


def synthetic_kb(folder: Path, n: int) -> Path:
    """``n`` articles made of the sample's words, shuffled (a larger, realistic vocabulary)."""
    rng = random.Random(7)
    words = " ".join(p.read_text().split("---", 2)[2] for p in SAMPLE_KB.glob("*.md")).split()
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        meta = {"title": " ".join(rng.sample(words, 6)), "tags": rng.sample(words, 5)}
        body = " ".join(rng.choices(words, k=rng.randint(80, 250)))
        (folder / f"a{i:05d}.md").write_text(f"---\n{yaml.safe_dump(meta)}---\n{body}\n")
    return folder


def bench_index(kb: Path, db: Path) -> tuple[int, float, float]:
    with KnowledgeIndex(db) as index:
        t0 = time.perf_counter()
        index.sync(kb)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        index.sync(kb)
        resync = time.perf_counter() - t0
        return index.count(), build, resync


def bench_queries(db: Path, rounds: int = 5) -> list[float]:
    questions = [q.q for q in load_questions()]
    settings = KnowledgeSettings()
    times = []
    with KnowledgeIndex(db) as index:
        for _ in range(rounds):
            for prev, q in zip(questions, questions[1:], strict=False):
                t0 = time.perf_counter()
                suggest(index, [prev, q], "billing", settings)
                times.append(time.perf_counter() - t0)
    return times


async def bench_live(kb: Path, db: Path, calls: int) -> tuple[list[float], list[float], list[float]]:
    """(final → sink, final → suggestion on a warm index, first final → suggestion incl. opening)."""
    questions = [q.q for q in load_questions()]
    to_final: list[float] = []
    warm: list[float] = []
    cold: list[float] = []
    for c in range(calls):
        pushed: dict[float, float] = {}
        got_final: dict[float, float] = {}
        got_sugg: dict[float, float] = {}

        def sink(e: Event, got_final: dict[float, float] = got_final, got_sugg: dict[float, float] = got_sugg) -> None:
            if isinstance(e, FinalTranscript):
                got_final[e.t] = time.perf_counter()
            elif isinstance(e, AssistSuggestion):
                got_sugg[e.final_t] = time.perf_counter()

        stage = SuggestionStage(index_opener(kb, db, auto_index=True), KnowledgeSettings())
        pipeline = CallPipeline(f"bench-{c}", [stage])
        pipeline.add_sink(sink)
        await pipeline.start()
        for i in range(6):
            t = float(i + 1)
            text = questions[(c * 6 + i) % len(questions)]
            pushed[t] = time.perf_counter()
            pipeline.push_event(FinalTranscript(t=t, party=Party.CALLER, text=text, start=t - 1, end=t))
            await asyncio.sleep(0.2)  # callers pause between utterances; results are in by then
        await pipeline.end()
        for t, at in pushed.items():
            if t in got_final:
                to_final.append(got_final[t] - at)
            if t in got_sugg:
                (cold if t == 1.0 else warm).append(got_sugg[t] - at)
    return to_final, warm, cold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--big", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big = synthetic_kb(folder / "big", args.big)
        print("| knowledge base | articles | build (ms) | re-sync, nothing changed (ms) |")
        print("|---|---:|---:|---:|")
        for name, kb, db in (("sample", SAMPLE_KB, folder / "s.sqlite"), ("synthetic", big, folder / "b.sqlite")):
            n, build, resync = bench_index(kb, db)
            print(f"| {name} | {n} | {build * 1e3:.1f} | {resync * 1e3:.2f} |")
        print()
        print("| query (`suggest`, 2 finals) | n | median (ms) | p95 (ms) | max (ms) |")
        print("|---|---:|---:|---:|---:|")
        for name, db in (("sample KB", folder / "s.sqlite"), (f"synthetic {args.big}", folder / "b.sqlite")):
            times = bench_queries(db)
            print(f"| {name} | {len(times)} | {ms(times)} |")
        print()
        to_final, warm, cold = asyncio.run(bench_live(SAMPLE_KB, folder / "live.sqlite", args.calls))
        print("| live pipeline, wall clock from push | n | median (ms) | p95 (ms) | max (ms) |")
        print("|---|---:|---:|---:|---:|")
        print(f"| baseline: final reaches the sink | {len(to_final)} | {ms(to_final)} |")
        print(f"| suggestion reaches the sink (index open) | {len(warm)} | {ms(warm)} |")
        print(f"| suggestion for a call's first final (opens + syncs the index) | {len(cold)} | {ms(cold)} |")


if __name__ == "__main__":
    main()
