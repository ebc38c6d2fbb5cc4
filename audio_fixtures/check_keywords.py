"""Check which expected keywords pocketsphinx hears in the fixtures, 16 kHz and 8 kHz G.711.

Usage: ``python audio_fixtures/check_keywords.py [NAME ...] [--show]``

Decodes every rendered utterance (bounds from the ``rendered`` block of ``<name>.expect.json``,
padded like a VAD pre-roll) with pocketsphinx's shipped US-English model, after loading each
file through ``speech.audio_io.load_recording`` (so the 8 kHz files are resampled to 16 kHz
as the pipeline does), and prints per call which keyword groups were heard in which version.
This is how the keyword groups in render.py were chosen; rerun it after changing a wording.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pocketsphinx import Decoder

from speech.audio_io import load_recording
from speech.frames import PIPELINE_RATE, Party

HERE = Path(__file__).resolve().parent
PADS_S = (0.1, 0.3, 0.5)
"""Audio kept around each utterance (like a VAD pre-roll and hangover); several, since the
pipeline's VAD will not cut where the render did and a keyword must not hinge on the cut."""


def decode_utterances(decoder: Decoder, path: Path, spans: list[dict], pad: float) -> list[str]:
    """One hypothesis per rendered utterance of ``path``, ``pad`` seconds each side."""
    rec = load_recording(path)
    out = []
    for span in spans:
        track = rec.tracks[Party(span["party"])]
        a = max(0, round((span["start"] - pad) * PIPELINE_RATE))
        b = round((span["end"] + pad) * PIPELINE_RATE)
        decoder.start_utt()
        decoder.process_raw(track[a:b].astype("<i2").tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        out.append(hyp.hypstr if hyp is not None else "")
    return out


def decode_tracks(decoder: Decoder, path: Path, party: str | None) -> list[str]:
    """One hypothesis per whole party track (no segmentation at all)."""
    rec = load_recording(path)
    out = []
    for p, track in rec.tracks.items():
        if party and p.value != party:
            continue
        decoder.start_utt()
        decoder.process_raw(track.astype("<i2").tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        out.append(hyp.hypstr if hyp is not None else "")
    return out


def versions(name: str) -> list[Path]:
    return [HERE / f"{name}.wav", *sorted(HERE.glob(f"{name}_8k_*.wav"))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--show", action="store_true", help="print the hypotheses too")
    ap.add_argument("--whole", action="store_true", help="also decode whole tracks unsegmented")
    args = ap.parse_args(argv)
    names = args.names or sorted(p.name.removesuffix(".expect.json") for p in HERE.glob("*.expect.json"))
    decoder = Decoder(samprate=PIPELINE_RATE, loglevel="FATAL")
    weak = 0
    for name in names:
        exp = json.loads((HERE / f"{name}.expect.json").read_text())
        spans = exp["rendered"]["speech"]
        party = exp.get("keywords_party")
        if party:
            spans = [s for s in spans if s["party"] == party]
        groups = exp.get("keywords", [])
        for path in versions(name):
            runs: list[tuple[str, list[str]]] = [
                (f"pad {pad:.1f}s", decode_utterances(decoder, path, spans, pad)) for pad in PADS_S
            ]
            if args.whole:
                runs.append(("whole track", decode_tracks(decoder, path, party)))
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
    print(f"{weak} keyword group(s) not heard in every decode")
    return 1 if weak else 0


if __name__ == "__main__":
    sys.exit(main())
