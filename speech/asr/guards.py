"""Guards against invented words: what a neural recognizer says when nobody spoke.

Whisper's known failure modes (FACTS.md): text from silence, noise or music ("Thank you."),
repetition loops, and loops fed by the previous text used as a prompt. The engine never uses a
prompt; these checks cover the rest. Each is a pure function with its threshold passed in from
``AsrSettings``, so tests can exercise them on real decodes and on hand-made cases alike.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

WINDOW_S = 0.1
"""Energy gate resolution: the loudest window of this length decides."""


def peak_level_dbfs(audio: np.ndarray, rate: int) -> float:
    """Level of the loudest ``WINDOW_S`` window of float ``audio`` in dBFS (-inf for silence)."""
    n = max(1, int(WINDOW_S * rate))
    if audio.size == 0:
        return float("-inf")
    usable = audio[: audio.size - audio.size % n] if audio.size >= n else audio
    frames = usable.reshape(-1, min(n, usable.size)).astype(np.float64)
    rms = float(np.sqrt((frames**2).mean(axis=1)).max())
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


TONAL_FRAME = 512
"""Samples per spectrum of :func:`tonal_share` (32 ms at 16 kHz: ~31 Hz per bin)."""


def tonal_share(audio: np.ndarray, frame: int = TONAL_FRAME, peaks: int = 3) -> float:
    """How much of ``audio``'s power sits in a few narrow spectral peaks: the median, over its
    frames within 30 dB of the loudest, of the share of a frame's power within one bin of its
    ``peaks`` strongest bins. Dial, busy and DTMF tones and beeps are ~1.0; speech spreads its
    power over harmonics and formants (at most 0.78 on 232 utterances of the fixtures, the QA
    calls and LibriVox, G.711 or not); white and pink noise ~0.1-0.6."""
    n = audio.size // frame
    if n == 0:
        return 0.0
    frames = audio[: n * frame].reshape(n, frame).astype(np.float64) * np.hanning(frame)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    total = power.sum(axis=1)
    loud = total > total.max() * 1e-3
    if not loud.any():
        return 0.0
    power, total = power[loud], total[loud]
    strongest = np.argsort(power, axis=1)[:, -peaks:]
    near = np.zeros(power.shape, dtype=bool)
    rows = np.arange(power.shape[0])[:, None]
    for d in (-1, 0, 1):
        near[rows, np.clip(strongest + d, 0, power.shape[1] - 1)] = True
    return float(np.median((power * near).sum(axis=1) / total))


_DIGIT_WORDS = frozenset("zero oh o one two three four five six seven eight nine ten".split())


def _keys(words: list[str]) -> list[str]:
    """Comparison keys: lower-case letters and digits; "" for numbers, which are never treated
    as loops ("four one one one" is a card number, not a stutter)."""
    keys = ["".join(c for c in w.lower() if c.isalnum()) for w in words]
    return ["" if k.isdigit() or k in _DIGIT_WORDS else k for k in keys]


def compression_ratio(text: str) -> float:
    """How well ``text`` gzips: ~1-2 for language, above ~2.4 for loops (Whisper's measure)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def collapse_repeats(words: list[str], max_repeats: int) -> list[int]:
    """Indices of ``words`` to keep when n-grams (n = 1..4) repeated back to back more than
    ``max_repeats`` times are cut down to ``max_repeats`` (a loop's tail goes, its start stays).

    Compared case- and punctuation-blind: "no, no, no, no" is a repeat of "no"; numbers never.
    """
    keys = _keys(words)
    keep = list(range(len(words)))
    for n in (1, 2, 3, 4):
        out: list[int] = []
        i = 0
        while i < len(keep):
            gram = [keys[k] for k in keep[i : i + n]]
            if len(gram) < n or not all(gram):
                out.append(keep[i])
                i += 1
                continue
            reps = 1
            while [keys[k] for k in keep[i + reps * n : i + (reps + 1) * n]] == gram:
                reps += 1
            take = min(reps, max_repeats) * n if reps > 1 else 1
            out.extend(keep[i : i + take])
            i += reps * n if reps > 1 else 1
        keep = out
    return keep


def repeats_phrase(words: list[str], n: int = 3) -> bool:
    """Whether some ``n`` words come twice in one decode ("I was charged twice ... I was charged
    twice ..."): a loop restarting the sentence, or rarely a speaker repeating themselves, so
    only a reason to re-decode, never to delete."""
    keys = _keys(words)
    seen: dict[tuple[str, ...], int] = {}
    for i in range(len(keys) - n + 1):
        gram = tuple(keys[i : i + n])
        if not all(gram):
            continue
        if gram in seen and i - seen[gram] >= n:
            return True
        seen.setdefault(gram, i)
    return False


def loop_start(words: list[str], max_n: int = 8) -> int | None:
    """Where a loop that runs to the end begins: the smallest ``i + n`` such that from ``i`` on
    the words repeat with period ``n`` (the last repetition may be cut short); else None.

    For decodes that hit the length cap: what follows the first period was never said.
    """
    keys = _keys(words)
    for i in range(len(keys)):
        for n in range(1, max_n + 1):
            if i + 2 * n > len(keys):
                break
            if not any(keys[i : i + n]):
                continue  # numbers only
            if all(keys[j] == keys[j - n] and keys[j] for j in range(i + n, len(keys))):
                return i + n
    return None


def longest_run(words: list[str]) -> int:
    """The most times one word (numbers included) comes back to back."""
    keys = ["".join(c for c in w.lower() if c.isalnum()) for w in words]
    best = run = 0
    for i, k in enumerate(keys):
        run = run + 1 if i and k and k == keys[i - 1] else 1
        best = max(best, run)
    return best


KNOWN_HALLUCINATIONS = frozenset(
    ["you", "thank you", "thanks", "thank you very much", "thanks for watching", "bye",
     "thank you for watching", "i'm", "i", "so", "okay", "oh"]
)
"""What Whisper says to silence, noise and music most often (users' reports, and measured here on
hold music through G.711: "you" at no-speech 0.75)."""


@dataclass(frozen=True, slots=True)
class DecodeScores:
    """What a decode says about itself."""

    no_speech_prob: float
    avg_logprob: float
    text: str


@dataclass(frozen=True, slots=True)
class GuardRules:
    hallucination_no_speech: float = 0.5
    no_speech_hard_threshold: float = 0.8
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    min_avg_logprob: float = -1.6
    compression_ratio_threshold: float = 2.4


def rejection(scores: DecodeScores, rules: GuardRules) -> str | None:
    """Why a decode is not speech (a short reason for counters and tests), or None to keep it."""
    if scores.no_speech_prob > rules.no_speech_hard_threshold:
        return "no_speech"
    said = " ".join("".join(c for c in w if c.isalnum() or c == "'") for w in scores.text.lower().split())
    if said in KNOWN_HALLUCINATIONS and scores.no_speech_prob > rules.hallucination_no_speech:
        return "hallucination"
    if scores.no_speech_prob > rules.no_speech_threshold and scores.avg_logprob < rules.logprob_threshold:
        return "no_speech"
    if scores.avg_logprob < rules.min_avg_logprob:
        return "low_logprob"
    if compression_ratio(scores.text) > rules.compression_ratio_threshold:
        return "repetitive"
    return None
