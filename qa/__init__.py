"""QA of recorded calls: expectation files and the comparison of a replay against them.

``callcenter replay --check`` is the command; this package holds what it checks, so QA rules
grow here and not in the composition root. Imports only the event vocabulary from ``speech``.
"""

from qa.checks import CHECKS, Call, Mismatch, check, compare
from qa.expectation import (
    EXPECT_SUFFIX,
    SCHEMA_VERSION,
    TONE_LABELS,
    Expectation,
    ExpectationError,
    ExpectedTalkOver,
    ExpectedTone,
    Interval,
    expectation_for,
    load_expectation,
    parse_expectation,
)
from qa.wer import normalize, wer  # registers the transcript check (after the others)

__all__ = [
    "CHECKS", "EXPECT_SUFFIX", "SCHEMA_VERSION", "TONE_LABELS", "Call", "Expectation", "ExpectationError",
    "ExpectedTalkOver", "ExpectedTone", "Interval", "Mismatch", "check", "compare", "expectation_for",
    "load_expectation", "normalize", "parse_expectation", "wer",
]
