"""Spoken IVR menu choices: right / wrong / no-match, and false accepts from off-menu speech.

    .venv/bin/python benchmarks/bench_menu.py [--engine whisper|pocketsphinx] [--quick] [--show]

The main menu of the shipped flow (``ivr/flows/contact_center.yaml``): its phrases given to the
engine as hints (whisper) or as the grammar (pocketsphinx), as the IVR does, and the recognized
text matched to the choices by the one shared matcher (``ivr.matching.match_speech``). Answers are
the phrases themselves and natural wrappers ("billing please", "um technical support"); off-menu
speech is complaints, questions, names and numbers. Each is spoken by espeak-ng in several voices
and speeds, then decoded at 16 kHz and after an 8 kHz G.711 µ-law round trip (sox, no dither).

Per condition: answers right / wrong (another choice) / no match, and off-menu false accepts.
``--show`` prints what the engine heard for every answer it got wrong and every false accept.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import corpus  # noqa: E402
from ivr.flow import load_flow  # noqa: E402
from ivr.matching import match_speech  # noqa: E402
from ivr.model import Choice, MenuNode  # noqa: E402

ANSWERS: dict[str, str] = {
    # the phrases themselves
    "billing": "billing",
    "technical support": "technical support",
    "tech support": "technical support",
    "cancel service": "cancel service",
    "cancel my service": "cancel service",
    "agent": "agent",
    "representative": "agent",
    "operator": "agent",
    # as callers wrap them
    "billing please": "billing",
    "i need billing please": "billing",
    "um technical support": "technical support",
    "i need tech support please": "technical support",
    "i'd like to cancel my service": "cancel service",
    "i want to cancel my service": "cancel service",
    "can i talk to an agent": "agent",
    "a representative please": "agent",
    "operator please": "agent",
    "support": "technical support",
}
"""What a caller says → the choice (its ``name`` in the flow) it means."""

OFF_MENU = [
    "this is completely unacceptable",
    "what are your opening hours",
    "hello i am calling again about my internet connection",
    "my name is john smith",
    "four one one one two two two two",
    "my account number is five five three nine",
    "why is my bill so high this month",
    "i have been waiting for twenty minutes",
    "the weather is lovely today",
    "can you hear me",
    "i moved to a new address last week",
    "my phone keeps dropping calls",
]
"""Speech that is none of the choices: it must be a no-match (a reprompt), never a choice."""

VOICES = ["en-us", "en-gb-x-rp", "en-gb-scotland", "en-us+f3"]
SPEEDS = [140, 160, 180]
QUICK_VOICES = ["en-us", "en-gb-x-rp"]
QUICK_SPEEDS = [150]


@dataclass
class Tally:
    right: int = 0
    wrong: int = 0
    no_match: int = 0
    false_accepts: int = 0
    off_menu: int = 0
    seconds: float = 0.0
    misses: list[str] = field(default_factory=list)

    @property
    def answers(self) -> int:
        return self.right + self.wrong + self.no_match


def menu_choices(flow_path: Path | None = None, node: str = "main_menu") -> tuple[Choice, ...]:
    flow = load_flow(flow_path)
    menu = flow.nodes[node]
    assert isinstance(menu, MenuNode), f"{node} is not a menu"
    return menu.choices


def speak(text: str, voice: str, speed: int, cache: Path) -> np.ndarray:
    """espeak-ng → 16 kHz float mono, 0.3 s silence before and 0.4 s after (cached by args)."""
    key = hashlib.sha1(repr((text, voice, speed)).encode()).hexdigest()[:16]
    out = cache / f"{key}.wav"
    if not out.exists():
        raw = cache / f"{key}.raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True, capture_output=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out), "pad", "0.3", "0.4"],
                       check=True, capture_output=True)
    x, _ = sf.read(str(out), dtype="float32")
    return np.asarray(x, dtype=np.float32)


Recognize = Callable[[np.ndarray, Sequence[str]], str]


def whisper_recognizer() -> Recognize:
    from speech.asr.whisper_engine import WhisperEngine
    from speech.settings import AsrSettings

    engine = WhisperEngine(AsrSettings())
    engine.warm_up()
    return lambda audio, hints: engine.decode(audio, final=True, hints=hints).text


def pocketsphinx_recognizer() -> Recognize:
    from speech.asr.pocketsphinx_engine import PocketsphinxEngine

    engine = PocketsphinxEngine()

    def recognize(audio: np.ndarray, hints: Sequence[str]) -> str:
        session = engine.open_session(list(hints))
        pcm = (np.clip(audio, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()
        for i in range(0, len(pcm), 640):
            session.accept(pcm[i : i + 640])
        text = session.finish().text
        session.close()
        return text

    return recognize


def run(recognize: Recognize, voices: Sequence[str], speeds: Sequence[int], show: bool) -> dict[str, Tally]:
    choices = menu_choices()
    hints = [phrase for choice in choices for phrase in choice.say]
    tallies = {"16 kHz": Tally(), "8 kHz G.711": Tally()}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        for voice in voices:
            for speed in speeds:
                items = [(s, k) for s, k in ANSWERS.items()] + [(s, None) for s in OFF_MENU]
                for said, key in items:
                    wide = speak(said, voice, speed, cache)
                    for cond, audio in (("16 kHz", wide), ("8 kHz G.711", corpus.g711_roundtrip(wide))):
                        tally = tallies[cond]
                        t0 = time.process_time()
                        heard = recognize(audio, hints)
                        tally.seconds += time.process_time() - t0
                        match = match_speech(heard, choices)
                        got = None if match is None else match.choice.name
                        where = f"{cond:11} {voice:14} {speed}  {said!r:40} heard {heard!r}"
                        if key is None:
                            tally.off_menu += 1
                            if got is not None:
                                tally.false_accepts += 1
                                tally.misses.append(f"FALSE ACCEPT {got!r:22} {where}")
                        elif got == key:
                            tally.right += 1
                        elif got is None:
                            tally.no_match += 1
                            tally.misses.append(f"no match                  {where}")
                        else:
                            tally.wrong += 1
                            tally.misses.append(f"WRONG {got!r:20}    {where}")
    if show:
        for tally in tallies.values():
            for line in tally.misses:
                print(line)
    return tallies


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=["whisper", "pocketsphinx"], default="whisper")
    ap.add_argument("--quick", action="store_true", help="two voices at one speed")
    ap.add_argument("--show", action="store_true", help="print what was heard for every miss")
    args = ap.parse_args(argv)
    recognize = whisper_recognizer() if args.engine == "whisper" else pocketsphinx_recognizer()
    voices, speeds = (QUICK_VOICES, QUICK_SPEEDS) if args.quick else (VOICES, SPEEDS)
    tallies = run(recognize, voices, speeds, args.show)
    print(f"\n{args.engine}: {len(ANSWERS)} answers, {len(OFF_MENU)} off-menu sentences, "
          f"voices {', '.join(voices)}, speeds {', '.join(map(str, speeds))}\n")
    print("| condition | right | wrong | no match | right % | false accepts | CPU-s per decode |")
    print("|---|---|---|---|---|---|---|")
    for cond, t in tallies.items():
        decodes = t.answers + t.off_menu
        print(f"| {cond} | {t.right}/{t.answers} | {t.wrong} | {t.no_match} | {100 * t.right / t.answers:.1f} | "
              f"{t.false_accepts}/{t.off_menu} | {t.seconds / decodes:.3f} |")


if __name__ == "__main__":
    main()
