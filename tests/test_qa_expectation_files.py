"""Broken expectation files on disk: the error names the file, the path inside it and the problem.

Also: the committed fixtures' files all load, the qa package stands alone (no ``callcenter``
import), and a new kind of check is one registered function.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qa import (
    CHECKS,
    Call,
    Expectation,
    ExpectationError,
    Mismatch,
    check,
    compare,
    load_expectation,
)
from speech.events import DtmfDigit
from tests.conftest import FIXTURES

# (case, file text, path in the file, words the message must contain)
CASES = [
    ("group is a word", '{"schema": 1, "keywords": ["bill"]}', "keywords[0]", ["must be a list", "'bill'"]),
    ("empty group", '{"schema": 1, "keywords": [[]]}', "keywords[0]", ["must not be empty"]),
    ("blank keyword", '{"schema": 1, "keywords": [["bill", " "]]}', "keywords[0][1]", ["must not be blank"]),
    ("keywords not a list", '{"schema": 1, "keywords": "bill"}', "keywords", ["must be a list"]),
    ("unknown party", '{"schema": 1, "keywords_party": "boss"}', "keywords_party", ["'caller', 'agent'", "'boss'"]),
    ("interval backwards", '{"schema": 1, "dead_air": [{"start": 5, "end": 2}]}', "dead_air[0]", ["ends before it starts"]),
    ("second interval bad", '{"schema": 1, "dead_air": [{"start": 1, "end": 2}, {"start": "5", "end": 7}]}',
     "dead_air[1].start", ["must be a number", "'5'"]),
    ("interval without end", '{"schema": 1, "dead_air": [{"start": 1}]}', "dead_air[0].end", ["is required"]),
    ("interval typo", '{"schema": 1, "dead_air": [{"start": 1, "ned": 2}]}', "dead_air[0]", ["unknown dead_air key(s): ned"]),
    ("tolerance negative", '{"schema": 1, "dead_air_tolerance": -0.1}', "dead_air_tolerance", [">= 0"]),
    ("tone not an object", '{"schema": 1, "tone": "calm"}', "tone", ["must be an object"]),
    ("tone label", '{"schema": 1, "tone": {"max_label": "furious"}}', "tone.max_label", ["'angry'", "'furious'"]),
    ("tone label in list", '{"schema": 1, "tone": {"final_label_in": ["calm", "happy"]}}', "tone.final_label_in[1]", ["'happy'"]),
    ("tone alert yes", '{"schema": 1, "tone": {"alert": "yes"}}', "tone.alert", ["true or false"]),
    ("tone typo", '{"schema": 1, "tone": {"alerts": true}}', "tone", ["unknown tone key(s): alerts", "allowed: alert"]),
    ("dtmf letters", '{"schema": 1, "dtmf": "12x"}', "dtmf", ["0-9, A-D, * and #"]),
    ("dtmf number", '{"schema": 1, "dtmf": 12}', "dtmf", ["must be a string"]),
    ("talk-over party", '{"schema": 1, "talk_over": [{"started_by": "both", "start": 9}]}', "talk_over[0].started_by", ["'both'"]),
    ("talk-over start", '{"schema": 1, "talk_over": [{"started_by": "agent"}]}', "talk_over[0].start", ["is required"]),
    ("duration bool", '{"schema": 1, "min_duration": true}', "min_duration", ["not True"]),
    ("top-level typo", '{"schema": 1, "dead_aire": []}', "", ["unknown key(s): dead_aire", "allowed:", "dead_air"]),
    ("source is not a key", '{"schema": 1, "source": "x.wav"}', "", ["unknown key(s): source"]),
    ("schema missing", '{"keywords": []}', "schema", ["unsupported schema None"]),
    ("not an object", "[]", "", ["top level must be a JSON object"]),
]


@pytest.mark.parametrize(("case", "text", "path", "words"), CASES, ids=[c[0] for c in CASES])
def test_broken_file_names_file_path_and_problem(tmp_path: Path, case: str, text: str, path: str, words: list[str]) -> None:
    f = tmp_path / "call.expect.json"
    f.write_text(text)
    with pytest.raises(ExpectationError) as info:
        load_expectation(f)
    err = info.value
    assert err.source == f and err.path == path
    assert len(err.problems) == 1, str(err)
    message = str(err)
    assert message.startswith(f"{f}: {path}: " if path else f"{f}: "), message
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_every_problem_on_one_line(tmp_path: Path) -> None:
    f = tmp_path / "call.expect.json"
    f.write_text(json.dumps({"schema": 1, "dtmf": "x", "talk_over": [{"started_by": "boss", "start": -1}]}))
    with pytest.raises(ExpectationError) as info:
        load_expectation(f)
    assert [p for p, _ in info.value.problems] == [("dtmf",), ("talk_over", 0, "started_by"), ("talk_over", 0, "start")]
    assert str(info.value).count("; ") == 2 and "\n" not in str(info.value)


def test_committed_fixture_expectations_load() -> None:
    files = sorted(FIXTURES.glob("*.expect.json"))
    assert len(files) == 7  # five one-party calls, two bridged calls (caller and agent)
    for f in files:
        exp = load_expectation(f)
        assert exp.source == f and exp.keywords and exp.rendered is not None


def test_qa_does_not_import_the_composition_root() -> None:
    code = "import sys, qa; bad = [m for m in sys.modules if m.split('.')[0] == 'callcenter']; print(bad); assert not bad"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_new_check_kind_is_one_registered_function() -> None:
    @check
    def no_star_key(exp: Expectation, call: Call) -> list[Mismatch]:
        stars = sum(e.digit == "*" for e in call.of(DtmfDigit))
        return [Mismatch("no_star", "no * key", f"{stars} * key(s)")] if stars else []

    try:
        assert compare(Expectation(), [DtmfDigit(digit="1")]) == []
        assert compare(Expectation(), [DtmfDigit(digit="*")]) == [Mismatch("no_star", "no * key", "1 * key(s)")]
    finally:
        CHECKS.remove(no_star_key)
    assert compare(Expectation(), [DtmfDigit(digit="*")]) == []
