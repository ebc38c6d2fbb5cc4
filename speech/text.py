"""One text normalizer and one phrase matcher for every recognizer and the IVR.

Before this module there were five normalizers and three ways to map speech to a menu phrase
(pocketsphinx's grammar paths, vosk's phrase spelling, the IVR's matcher), which disagreed on
case, hyphens and ``[unk]``. Now engines in native grammar mode and engines that decode freely
(Whisper) end in the same ``match_phrase``.

Matching rules, in order (the first that gives exactly one option wins; ties between options are
no match: better a reprompt than the wrong queue):

1. *whole phrase*: the answer contains a phrase's words in order ("I need billing please");
2. *prefix*: the answer is the start of exactly one phrase and covers ``min_prefix_coverage`` of it
   (a grammar search cut off at the end of audio: "speak to an" for "speak to an agent");
3. *partial*: the answer's content words cover part of exactly one option ("support").

*Near spellings*: before the rules, a heard word that is not a phrase word but a long near
spelling of exactly one (``fuzzy_min_length`` letters or more, same first letter, at least
``fuzzy_similarity`` alike by edit distance: "technically", "reprensentative", "services") counts
as that word. Recognizers misspell long words they half heard; short words are left alone, since
one letter turns "willing" into "billing".

**Out-of-grammar rejection**: an answer that is mostly about something else is no match, even if
it brushes a menu word ("your service is completely unacceptable" is not "cancel service"). A
whole phrase may come with at most ``max_extra_words`` off-menu content words; a partial match
must also make up at least ``min_answer_share`` of the answer's content words.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from rapidfuzz.distance import Levenshtein

K = TypeVar("K", bound=Hashable)

_NON_WORD = re.compile(r"[^\w' ]+|_")
"""Anything but letters (any script), digits, apostrophes and spaces."""
_UNKNOWN = re.compile(r"\[unk\]|<unk>")

FILLER_WORDS = frozenset(
    "a an the i i'm im to for my me please want would like need uh um er and "
    "of on in it is be can you could speak talk with".split()
)
"""Words that carry no choice on their own: they never make a partial match."""
GLUE_WORDS = FILLER_WORDS | frozenset(
    "hi hello hey yes yeah yep okay ok so just oh well um hmm have has had question about "
    "calling call regarding some do does get help this that there am are was were".split()
)
"""Conversation glue: neither a choice nor evidence of an off-menu answer."""


def normalize(text: str) -> str:
    """Lower case; hyphens, punctuation and ``[unk]``/``<unk>`` to spaces; whitespace collapsed.

    Apostrophes stay ("i'm", "don't"): engines and dictionaries spell contractions that way.
    """
    text = _UNKNOWN.sub(" ", text.lower().replace("\u2019", "'"))
    return " ".join(_NON_WORD.sub(" ", text.replace("-", " ")).split())


def words(text: str) -> list[str]:
    """``normalize(text)`` as a list of words."""
    return normalize(text).split()


@dataclass(frozen=True, slots=True)
class PhraseMatch(Generic[K]):
    """Which option an answer chose, by which of its phrases, and how strongly."""

    key: K
    phrase: str
    score: float
    """> 1: a whole phrase was heard (1 + its length); (0, 1]: share of the phrase heard."""


@dataclass(frozen=True, slots=True)
class MatchRules:
    """Thresholds of ``match_phrase`` (the IVR passes its own from settings)."""

    min_prefix_coverage: float = 0.5
    max_extra_words: int = 3
    min_answer_share: float = 0.5
    fuzzy_min_length: int = 8
    """Heard and phrase words at least this long may be near spellings of each other (0: off)."""
    fuzzy_similarity: float = 0.8
    """1 - edit distance / length of the longer word, for a near spelling."""


DEFAULT_RULES = MatchRules()


def match_phrase(
    text: str, options: Sequence[tuple[K, str]], rules: MatchRules = DEFAULT_RULES
) -> PhraseMatch[K] | None:
    """The one option ``text`` selects among ``(key, phrase)`` pairs, or None.

    Several phrases may share a key (synonyms of one choice); a tie between phrases of the same
    key is that key.
    """
    heard = words(text)
    if not heard:
        return None
    compiled = [(key, phrase, words(phrase)) for key, phrase in options]
    compiled = [c for c in compiled if c[2]]
    vocabulary = {w for _, _, ws in compiled for w in ws}
    heard = [_near_spelling(w, vocabulary, rules) for w in heard]
    extra = [w for w in heard if w not in GLUE_WORDS and w not in vocabulary]
    content = [w for w in heard if w not in FILLER_WORDS]

    whole = [(k, p, 1.0 + len(ws)) for k, p, ws in compiled if _contains(heard, ws)]
    if whole:
        if len(extra) > rules.max_extra_words:
            return None
        return _single(whole)

    prefix = [(k, p, len(heard) / len(ws)) for k, p, ws in compiled if ws[: len(heard)] == heard]
    if len({k for k, _, _ in prefix}) == 1 and max(c for _, _, c in prefix) >= rules.min_prefix_coverage:
        return _single(prefix)

    partial = []
    for key, phrase, ws in compiled:
        wanted = [w for w in ws if w not in FILLER_WORDS] or ws
        hits = sum(1 for w in wanted if w in heard)
        if hits:
            partial.append((key, phrase, hits / len(wanted)))
    if not partial:
        return None
    best = _single(partial)
    if best is None or len(extra) > rules.max_extra_words:
        return None
    chosen = set(next(ws for k, p, ws in compiled if k == best.key and p == best.phrase))
    on_choice = sum(1 for w in content if w in chosen)
    if content and on_choice / len(content) < rules.min_answer_share:
        return None
    return best


def _single(scored: list[tuple[K, str, float]]) -> PhraseMatch[K] | None:
    """The top-scored entry, or None when the top score is shared by different keys."""
    top = max(s for _, _, s in scored)
    best = [(k, p) for k, p, s in scored if s == top]
    if len({k for k, _ in best}) > 1:
        return None
    key, phrase = best[0]
    return PhraseMatch(key=key, phrase=phrase, score=top)


def _near_spelling(word: str, vocabulary: set[str], rules: MatchRules) -> str:
    """The one phrase word ``word`` is a near spelling of, else ``word`` itself."""
    n = rules.fuzzy_min_length
    if not n or len(word) < n or word in vocabulary or word in GLUE_WORDS:
        return word
    near = {
        v for v in vocabulary
        if len(v) >= n and v[0] == word[0]
        and Levenshtein.normalized_similarity(word, v) >= rules.fuzzy_similarity
    }
    return near.pop() if len(near) == 1 else word


def _contains(heard: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return any(heard[i : i + n] == phrase for i in range(len(heard) - n + 1))
