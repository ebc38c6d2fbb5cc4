"""Match what a caller said to a menu choice.

ASR on telephone audio is rough (see FACTS.md: ~1/3 of grammar answers are not exact), so an
answer counts when it contains a whole phrase ("I need billing please" → billing) or, failing
that, when its content words cover part of exactly one choice's phrase ("support" → technical
support). Ties between different choices, ``[unk]`` and empty text are no match: better a
re-prompt than the wrong queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ivr.flow import Choice, normalize_text

FILLER_WORDS = frozenset(
    "a an the i i'm im to for my me please want would like need uh um er and "
    "of on in it is be can you could speak talk with".split()
)
"""Words that carry no choice on their own; ignored by partial matching only."""


@dataclass(frozen=True, slots=True)
class SpeechMatch:
    choice: Choice
    phrase: str
    score: float
    """> 1: a whole phrase was heard; (0, 1]: share of the phrase's content words heard."""


def match_speech(text: str, choices: Sequence[Choice]) -> SpeechMatch | None:
    """The one choice ``text`` selects, or None (no match or ambiguous)."""
    heard = normalize_text(text).split()
    if not heard:
        return None
    best: list[SpeechMatch] = []
    for choice in choices:
        for phrase in choice.say:
            score = _score(heard, normalize_text(phrase).split())
            if score <= 0:
                continue
            if not best or score > best[0].score:
                best = [SpeechMatch(choice, phrase, score)]
            elif score == best[0].score:
                best.append(SpeechMatch(choice, phrase, score))
    if not best or len({id(m.choice) for m in best}) > 1:
        return None
    return best[0]


def _score(heard: list[str], phrase: list[str]) -> float:
    if _contains(heard, phrase):
        return 1.0 + len(phrase)
    content = [w for w in phrase if w not in FILLER_WORDS] or phrase
    hits = sum(1 for w in content if w in heard)
    return hits / len(content)


def _contains(heard: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return any(heard[i : i + n] == phrase for i in range(len(heard) - n + 1))
