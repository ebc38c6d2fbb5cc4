"""From what the caller said to search terms: words, minus small talk and anything personal.

Callers wrap the problem in greetings and fillers ("hello, yes, I am calling about..."): those
words are in every article or in none and only add noise to BM25, so they are dropped. Digit runs
(account and card numbers) never become search terms: a query may be logged or benchmarked, and
numbers find nothing useful in articles anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"[a-z][a-z'-]*[a-z]|[a-z]")

STOP_WORDS = frozenset("""
a about above after again against all already also am an and any anyone anything are aren't as
at be because been before being below between both but by can can't cannot could couldn't
did didn't do does doesn't doing don't down during each few for from further get gets getting got
had hadn't has hasn't have haven't having he her here hers herself him himself his how i i'd i'll
i'm i've if in into is isn't it it's its itself just let's me more most much must my myself no nor
not now of off on once only or other our ours ourselves out over own same she should shouldn't so
some such than that that's the their theirs them themselves then there there's these they they're
this those through to too under until up very was wasn't we we're were weren't what what's when
where which while who whom why will with won't would wouldn't you you're your yours yourself
hello hi hey yes yeah yep no nope okay ok oh um uh er erm ah well please thanks thank thankyou
sorry excuse calling call called ring phoned today yesterday tomorrow morning again really actually
like just so bit lot lots need want wanted wants would like'd know think said say says tell told
help helping hoping hope could would see look looking mean sure right great good fine perfect
appreciate much many thing things something someone somebody anybody way time times
""".split())
"""English stop words plus the small talk of phone calls (greetings, fillers, politeness)."""

KEEP = frozenset({"down", "off", "out", "back", "twice", "again"})
"""Stop words that carry meaning on a support line ("internet down", "cut off", "ran out",
"money back", "charged twice")."""


def terms_of(text: str) -> list[str]:
    """Search terms in ``text``, in order, without repeats."""
    out: list[str] = []
    for raw in _WORD.findall(text.lower()):
        word = raw.strip("'-")
        if not word or (word in STOP_WORDS and word not in KEEP) or len(word) < 2:
            continue
        if word.endswith("'s"):
            word = word[:-2]
        if word not in out:
            out.append(word)
    return out


def query_terms(utterances: Iterable[str], max_terms: int = 24) -> list[str]:
    """Terms of the caller's recent finals, newest utterance first (it says what the caller wants
    now), capped at ``max_terms``."""
    out: list[str] = []
    for text in reversed(list(utterances)):
        for term in terms_of(text):
            if term not in out:
                out.append(term)
    return out[:max_terms]
