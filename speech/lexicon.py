"""The words half of the tone signal: sentiment plus contact-center escalation phrases.

VADER alone misses what callers say when they escalate ("I want to speak to a manager" scores
slightly positive) and is thrown by ASR errors, so a phrase list written for contact centers sits
beside it. Phrases match on word stems, case-insensitively, allow a filler word between their
words ("waste of my time") and forgive small misrecognitions of longer words ("manger").
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


@dataclass(frozen=True, slots=True)
class EscalationPhrase:
    """One escalation cue. ``patterns`` are alternatives; a token ending in ``*`` is a stem."""

    label: str
    """What a reason shows: ``escalation phrase: 'manager'``."""
    patterns: tuple[str, ...]
    weight: float
    """How strongly this cue alone signals escalation, in [0, 1]."""


ESCALATION_PHRASES: tuple[EscalationPhrase, ...] = (
    EscalationPhrase("manager", ("manager*", "someone in charge"), 0.7),
    EscalationPhrase("supervisor", ("supervis*",), 0.7),
    EscalationPhrase("escalate", ("escalat*",), 0.6),
    EscalationPhrase("lawyer", ("lawyer*", "attorney*", "legal action", "sue you"), 0.8),
    EscalationPhrase("unacceptable", ("unaccept*", "not acceptable"), 0.7),
    EscalationPhrase("ridiculous", ("ridicul*", "absurd*", "outrageous*"), 0.6),
    EscalationPhrase("complaint", ("complain*",), 0.5),
    EscalationPhrase("cancel", ("cancel*", "close my account", "switch provider*"), 0.5),
    EscalationPhrase("third time", (
        "third time*", "3rd time*", "fourth time*", "4th time*", "fifth time*", "5th time*", "three times",
        "3 times", "so many times",
        "how many times", "every time", "times already",
    ), 0.6),
    EscalationPhrase("waste of time", ("wast* of time", "wast* time"), 0.6),
    EscalationPhrase("still not working", (
        "still not work*", "still doesnt work*", "still isnt work*", "still broken",
        "still not fixed", "still the same problem", "still have the problem",
    ), 0.5),
    EscalationPhrase("fed up", ("fed up", "sick of", "sick and tired", "had enough"), 0.6),
    EscalationPhrase("frustrated", ("frustrat*", "annoy*", "angry", "furious*", "upset"), 0.5),
    EscalationPhrase("useless", ("useless", "incompeten*", "pathetic", "worst", "terrible"), 0.5),
    EscalationPhrase("nobody helps", ("nobody help*", "no one help*", "nobody call* back", "hung up on"), 0.5),
    EscalationPhrase("again", ("again",), 0.3),
)
"""Contact-center escalation cues; weights combine as a noisy-or."""

ROUTINE_WORDS: tuple[str, ...] = (
    "problem", "problems", "error", "errors", "trouble", "fault", "charged", "cancel", "stopped",
)
"""Words that name why someone calls, not how they feel: VADER scores "I have a problem with my
internet" -0.40, which on Whisper's exact transcripts raised rising-tension alerts on calm calls.
Neutral here; anger still shows in escalation phrases ("still broken", "same problem again")."""


@dataclass(frozen=True, slots=True)
class LexiconConfig:
    """How sentiment and phrases become a tension level in [0, 1]."""

    neutral_tension: float = 0.3
    """Tension of plain, neutral words (the same level as an unremarkable voice)."""
    sentiment_deadzone: float = 0.2
    """|VADER compound| below this is noise (ASR slips, "problem" in a calm request)."""
    calm_pull: float = 0.3
    """How far clearly positive words pull tension below neutral."""
    fuzzy_min_len: int = 6
    """Only words this long are matched fuzzily: short words are too easy to confuse."""
    fuzzy_ratio: float = 0.8
    """Similarity (difflib ratio) at which a misrecognized word still matches."""
    max_gap: int = 1
    """Filler words allowed between the words of a phrase."""


@dataclass(frozen=True, slots=True)
class LexicalSignal:
    """What the words of one utterance say about tension."""

    sentiment: float
    """VADER compound in [-1, 1]."""
    escalation: float
    """Noisy-or of matched escalation cues, in [0, 1]."""
    phrases: tuple[str, ...]
    """Labels of the matched cues, in list order."""
    tension: float
    """Combined lexical tension in [0, 1]; ``neutral_tension`` for plain words."""


_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens; apostrophes vanish so "doesn't" is "doesnt" either way ASR spells it
    (Whisper's curly ones too), and punctuation and capitals (Whisper's "Manager!") are dropped."""
    return _TOKEN.findall(text.lower().replace("'", "").replace("\u2019", ""))


def _token_matches(token: str, pattern: str, cfg: LexiconConfig) -> bool:
    if pattern.endswith("*"):
        stem = pattern[:-1]
        if token.startswith(stem):
            return True
        if stem.startswith(token):
            return False  # "manage" is its own word, not a misheard "manager"
        # A stem only says "this word or a longer form": compare like lengths.
        candidate = token[: len(stem) + 2]
        target = stem
    else:
        if token == pattern or (len(pattern) > 3 and token in (pattern + "s", pattern + "es")):
            return True
        candidate, target = token, pattern
    if len(target) < cfg.fuzzy_min_len or len(candidate) < cfg.fuzzy_min_len:
        return False
    if candidate[0] != target[0] or abs(len(candidate) - len(target)) > 2:
        return False  # cheap pre-filter: misrecognitions keep the onset and roughly the length
    return SequenceMatcher(None, candidate, target).ratio() >= cfg.fuzzy_ratio


def _phrase_at(tokens: list[str], start: int, words: list[str], cfg: LexiconConfig) -> bool:
    """Does ``words`` match at ``tokens[start]``, allowing ``max_gap`` fillers between words?"""
    if not _token_matches(tokens[start], words[0], cfg):
        return False
    pos = start
    for word in words[1:]:
        for skip in range(cfg.max_gap + 1):
            nxt = pos + 1 + skip
            if nxt < len(tokens) and _token_matches(tokens[nxt], word, cfg):
                pos = nxt
                break
        else:
            return False
    return True


def find_phrases(
    text: str,
    phrases: tuple[EscalationPhrase, ...] = ESCALATION_PHRASES,
    config: LexiconConfig | None = None,
) -> list[EscalationPhrase]:
    """Escalation cues present in ``text``, each at most once, in list order."""
    cfg = config or LexiconConfig()
    tokens = tokenize(text)
    found: list[EscalationPhrase] = []
    for phrase in phrases:
        for pattern in phrase.patterns:
            words = pattern.split()
            if any(_phrase_at(tokens, i, words, cfg) for i in range(len(tokens))):
                found.append(phrase)
                break
    return found


@functools.cache
def _sentiment_analyzer() -> SentimentIntensityAnalyzer:
    """VADER's analyzer without :data:`ROUTINE_WORDS`, built once per process and shared.

    Building one parses VADER's 7,500-word lexicon (~10 ms of CPU on a quiet core, 50-100 ms on
    a loaded one), and every call built two (caller and agent tone): a burst of calls paid it at
    once on the event loop. After construction the analyzer is only read (``polarity_scores``
    keeps no state), so one serves every call and thread, like a module's constant table."""
    analyzer = SentimentIntensityAnalyzer()
    for word in ROUTINE_WORDS:
        analyzer.lexicon.pop(word, None)
    return analyzer


def warm_up() -> None:
    """Build the shared analyzer now (before a process's first call, off its event loop)."""
    _sentiment_analyzer()


class LexicalScorer:
    """Scores utterance text. One per call; the sentiment word list is the process's one copy."""

    def __init__(
        self,
        config: LexiconConfig | None = None,
        phrases: tuple[EscalationPhrase, ...] = ESCALATION_PHRASES,
    ) -> None:
        self.config = config or LexiconConfig()
        self.phrases = phrases
        self._vader = _sentiment_analyzer()

    def score(self, text: str) -> LexicalSignal:
        cfg = self.config
        compound = float(self._vader.polarity_scores(text)["compound"]) if text.strip() else 0.0
        found = find_phrases(text, self.phrases, cfg)
        calm = 1.0
        for phrase in found:
            calm *= 1.0 - phrase.weight
        escalation = 1.0 - calm
        span = 1.0 - cfg.sentiment_deadzone
        negativity = max(0.0, -compound - cfg.sentiment_deadzone) / span
        positivity = max(0.0, compound - cfg.sentiment_deadzone) / span
        hit = 1.0 - (1.0 - escalation) * (1.0 - negativity)
        tension = cfg.neutral_tension + (1.0 - cfg.neutral_tension) * hit - cfg.calm_pull * positivity
        return LexicalSignal(
            sentiment=compound,
            escalation=escalation,
            phrases=tuple(p.label for p in found),
            tension=min(1.0, max(0.0, tension)),
        )
