"""Agreement of the standard QA form's automatic answers with the hand labels, per question, with
a confusion table: on a 16 kHz render of every labelled call and on its 8 kHz G.711 µ-law copy.

Run: ``.venv/bin/python benchmarks/bench_qa_agreement.py [--variants 16k g711 stored] [--only NAME ...]``.
Each call is re-rendered by ``audio_fixtures/render.py`` (deterministic) into a temporary folder
at 16 kHz, and sox makes its G.711 µ-law copy; ``stored`` scores the files in the repository
(8 kHz PCM, what ``tests/test_qa_agreement.py`` scores). Every file goes through the real
pipeline with default settings (``callcenter qa score``). Needs espeak-ng and sox. Several
minutes per variant on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callcenter.qa_cli import score_files  # noqa: E402
from callcenter.settings import Settings  # noqa: E402
from qa.forms import load_form  # noqa: E402
from qa.labels import Agreement, agreement, format_disagreements, load_labels  # noqa: E402
from tests.test_fixtures_render import load_render_script  # noqa: E402

LABELS = ROOT / "audio_fixtures" / "qa_calls" / "labels.yaml"
ANSWERS = ("yes", "no", "na")


def render_variants(names: list[str], workdir: Path) -> dict[str, dict[str, Path]]:
    """name → {"16k": stereo 16 kHz PCM WAV, "g711": its 8 kHz µ-law copy}."""
    render = load_render_script()
    calls = {c.name: c for c in (*render.CALLS, *render.QA_CALLS)}
    out: dict[str, dict[str, Path]] = {}
    for name in names:
        call = calls[name]
        r = render.render_call(call, workdir)
        data = np.stack([r.tracks[c] for c in ("agent", "caller")], axis=1) if call.stereo else r.tracks["caller"]
        wide = workdir / f"{name}.wav"
        sf.write(str(wide), data, render.RATE, subtype="PCM_16")
        law = workdir / f"{name}_8k_ulaw.wav"
        subprocess.run(["sox", "-R", "-D", str(wide), "-r", "8000", "-e", "u-law", "-b", "8", str(law)],
                       check=True, capture_output=True)
        out[name] = {"16k": wide, "g711": law}
    return out


def report(variant: str, result: Agreement, seconds: float) -> None:
    print(f"\n== {variant}: agreement {result.agreed}/{result.pairs} = {result.rate:.1%} ({seconds:.0f} s)")
    print(f"{'question':26s} agreed")
    for qid, (agreed, pairs) in result.per_question.items():
        print(f"{qid:26s} {agreed:2d}/{pairs:2d} {agreed / pairs:6.1%}")
    print("\nconfusion (rows: label, columns: engine)")
    print("label  " + "".join(f"{a:>6s}" for a in ANSWERS))
    for label in ANSWERS:
        print(f"{label:6s} " + "".join(f"{result.confusion.get((label, got), 0):6d}" for got in ANSWERS))
    print("\ndisagreements:\n" + (format_disagreements(result) or "none"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", choices=("16k", "g711", "stored"), default=["16k", "g711"])
    ap.add_argument("--only", nargs="*", help="score only these labelled calls")
    args = ap.parse_args(argv)
    form = load_form("standard")
    labels = load_labels(LABELS, form)
    names = [n for n in labels.calls if not args.only or n in args.only]
    with tempfile.TemporaryDirectory(prefix="bench-qa-") as tmp:
        work = Path(tmp)
        files = render_variants(names, work) if set(args.variants) - {"stored"} else {}
        settings = Settings(data_dir=work / "var")
        for variant in args.variants:
            paths = [labels.path_of(n) if variant == "stored" else files[n][variant] for n in names]
            start = time.perf_counter()
            results = asyncio.run(score_files(form, paths, settings))
            cards = {n: card for n, (_, card) in zip(names, results, strict=True) if not isinstance(card, str)}
            for n, (_, card) in zip(names, results, strict=True):
                if isinstance(card, str):
                    print(f"{n}: error: {card}", file=sys.stderr)
            subset = dataclasses.replace(labels, calls={n: labels.calls[n] for n in names})
            report(variant, agreement(subset, cards), time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
