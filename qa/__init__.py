"""QA of calls: expectation files and the comparison of a replay against them; evaluation
forms and their scorecards (``qa.forms``, ``qa.scorecard``, ``qa.live``, ``qa.calibration``).

``callcenter replay --check`` and ``callcenter qa score`` are the commands; this package holds
what they check, so QA rules grow here and not in the composition root. Imports the event
vocabulary from ``speech`` and, for the forms, the YAML loader and phrase matcher of ``assist``.
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
