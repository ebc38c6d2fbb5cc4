"""Check which expected keywords pocketsphinx hears in the fixtures, 16 kHz and 8 kHz G.711.

Usage: ``python audio_fixtures/check_keywords.py [NAME ...] [--show]``

Decodes every rendered utterance (bounds from the ``rendered`` block of ``<name>.expect.json``,
padded like a VAD pre-roll and hangover) with the pipeline's own pocketsphinx engine
(``speech.asr.pocketsphinx_engine``: shipped US-English model, streamed in 20 ms frames, one
session per party so the running cepstral mean carries over utterances as on a live call), after
loading each file through ``speech.audio_io.load_recording`` (the 8 kHz files are resampled to
16 kHz as the pipeline does). Prints, per call and version, how often each keyword group was
heard. This is how the keyword groups in render.py were chosen; rerun it after a wording change.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from speech.asr.pocketsphinx_engine import PocketsphinxEngine
from speech.audio_io import load_recording
from speech.frames import FRAME_MS, PIPELINE_RATE, Party

HERE = Path(__file__).resolve().parent
PADS_S = (0.1, 0.3, 0.5)
"""Audio kept around each utterance (like a VAD pre-roll and hangover); several, since the
pipeline's VAD will not cut where the render did and a keyword must not hinge on the cut."""


def decode_utterances(engine: PocketsphinxEngine, path: Path, spans: list[dict], pad: float) -> list[str]:
    """One final hypothesis per rendered utterance of ``path``, ``pad`` seconds each side."""
    rec = load_recording(path)
    sessions = {party: engine.open_session() for party in rec.tracks}
    step = PIPELINE_RATE * FRAME_MS // 1000
    out = []
    try:
        for span in spans:
            party = Party(span["party"])
            a = max(0, round((span["start"] - pad) * PIPELINE_RATE))
            b = round((span["end"] + pad) * PIPELINE_RATE)
            pcm = rec.tracks[party][a:b].astype("<i2").tobytes()
            for i in range(0, len(pcm), step * 2):
                sessions[party].accept(pcm[i : i + step * 2])
            out.append(sessions[party].finish().text)
    finally:
        for session in sessions.values():
            session.close()
    return out


def decode_tracks(engine: PocketsphinxEngine, path: Path, party: str | None) -> list[str]:
    """One hypothesis per whole party track (no segmentation at all)."""
    rec = load_recording(path)
    spans = [{"party": p.value, "start": 0.0, "end": rec.duration} for p in rec.tracks
             if not party or p.value == party]
    return decode_utterances(engine, path, spans, 0.0)


def versions(folder: Path, name: str) -> list[Path]:
    return [folder / f"{name}.wav", *sorted(folder.glob(f"{name}_8k_*.wav"))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--show", action="store_true", help="print the hypotheses too")
    ap.add_argument("--dir", type=Path, default=HERE, help="folder of rendered calls (default: here)")
    ap.add_argument("--whole", action="store_true", help="also decode whole tracks unsegmented")
    args = ap.parse_args(argv)
    names = args.names or sorted(p.name.removesuffix(".expect.json") for p in args.dir.glob("*.expect.json"))
    engine = PocketsphinxEngine()
    weak = 0
    for name in names:
        exp = json.loads((args.dir / f"{name}.expect.json").read_text())
        spans = exp["rendered"]["speech"]
        party = exp.get("keywords_party")
        if party:
            spans = [s for s in spans if s["party"] == party]
        groups = exp.get("keywords", [])
        for path in versions(args.dir, name):
            runs: list[tuple[str, list[str]]] = [
                (f"pad {pad:.1f}s", decode_utterances(engine, path, spans, pad)) for pad in PADS_S
            ]
            if args.whole:
                runs.append(("whole track", decode_tracks(engine, path, party)))
            rates = []
            for g in groups:
                want = {w.lower() for w in g}
                n = sum(bool(want & set(" ".join(h).lower().split())) for _, h in runs)
                rates.append(f"{g[0]} {n}/{len(runs)}")
                weak += n < len(runs)
            print(f"{path.name:28s} " + ", ".join(rates))
            if args.show:
                for label, hyps in runs:
                    print(f"    [{label}]")
                    for h in hyps:
                        print(f"      > {h}")
    engine.close()
    print(f"{weak} keyword group(s) not heard in every decode")
    return 1 if weak else 0


if __name__ == "__main__":
    sys.exit(main())
