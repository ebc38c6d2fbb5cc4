"""`callcenter replay` and `callcenter calls` as a QA engineer runs them: real files, real
pocketsphinx, real SQLite store, the real console script in a subprocess."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

CALM = FIXTURES / "calm_billing.wav"
DTMF = FIXTURES / "dtmf_menu.wav"


def cli(*args: str, data_dir: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "callcenter", "--data-dir", str(data_dir), *args]
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLCENTER_", "VOSK_"))}
    full_env.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)


def stored_calls(data_dir: Path) -> int:
    db = data_dir / "callcenter.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from calls").fetchone()[0]


def test_bad_files_get_one_clear_line_each_and_the_batch_goes_on(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.wav").write_bytes(b"")
    (bad / "notes.wav").write_text("not audio\n" * 50)
    good = CALM.read_bytes()
    (bad / "truncated.wav").write_bytes(good[: len(good) // 2])
    missing = bad / "missing.wav"
    res = cli("replay", str(bad / "empty.wav"), str(CALM), str(bad / "notes.wav"), str(missing),
              str(bad / "truncated.wav"), data_dir=tmp_path / "var")
    assert res.returncode == 2, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 4, res.stderr
    for name, problem in [("empty.wav", "empty"), ("notes.wav", "not a readable audio file"),
                          ("missing.wav", "not found"), ("truncated.wav", "truncated")]:
        assert any(name in e and problem in e for e in errors), (name, errors)
    assert "1 of 5 recordings OK" in res.stderr
    # the good file was replayed and stored; the bad ones left nothing behind
    assert "call ended" in res.stdout
    assert stored_calls(tmp_path / "var") == 1


def test_json_lines_follow_the_event_schema_and_end_with_the_summary(tmp_path: Path) -> None:
    res = cli("replay", "--json", str(DTMF), data_dir=tmp_path / "var")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert all(line["schema"] == 1 and line["file"] == str(DTMF) for line in lines)
    types = [line["type"] for line in lines]
    assert types[0] == "call.started" and types[-1] == "summary"
    assert types[types.index("call.ended"):] == ["call.ended", "qa.scorecard", "summary"]  # the final QA card
    digits = "".join(line["digit"] for line in lines if line["type"] == "dtmf")
    assert digits == "1234#4512"
    assert [line["t"] for line in lines if line["type"] == "dtmf"] == sorted(
        line["t"] for line in lines if line["type"] == "dtmf")
    summary = lines[-1]["summary"]
    assert summary["dtmf"] and summary["duration"] > 10


def test_expectation_mismatch_exits_1_and_says_what_differs(tmp_path: Path) -> None:
    exp = tmp_path / "wrong.expect.json"
    exp.write_text(json.dumps({"schema": 1, "dtmf": "999", "dead_air": [{"start": 1.0, "end": 9.0}]}))
    res = cli("replay", "--no-store", "--expect", str(exp), str(DTMF), data_dir=tmp_path / "var")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "QA: FAIL" in res.stdout
    assert "dtmf" in res.stdout and "999" in res.stdout and "1234#4512" in res.stdout
    assert stored_calls(tmp_path / "var") == 0  # --no-store


def test_malformed_expectation_file_is_a_clear_error(tmp_path: Path) -> None:
    exp = tmp_path / "broken.expect.json"
    exp.write_text("{not json")
    res = cli("replay", "--no-store", "--expect", str(exp), str(DTMF), data_dir=tmp_path / "var")
    assert res.returncode == 2
    assert "broken.expect.json" in res.stderr


def test_missing_vosk_model_is_one_clear_error(tmp_path: Path) -> None:
    res = cli("replay", str(CALM), data_dir=tmp_path / "var", env={"VOSK_MODEL_PATH": str(tmp_path / "no-model")})
    assert res.returncode == 2
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and str(tmp_path / "no-model") in err[0], res.stderr


def test_calls_list_and_show_read_the_stored_record(tmp_path: Path) -> None:
    var = tmp_path / "var"
    res = cli("replay", "--json", str(DTMF), data_dir=var)
    assert res.returncode == 0, res.stderr
    call_id = json.loads(res.stdout.splitlines()[0])["call_id"]
    listed = cli("calls", "list", data_dir=var)
    assert listed.returncode == 0 and call_id in listed.stdout
    shown = cli("calls", "show", call_id, data_dir=var)
    assert shown.returncode == 0, shown.stderr
    assert call_id in shown.stdout
    unknown = cli("calls", "show", "no-such-call", data_dir=var)
    assert unknown.returncode == 2 and "no-such-call" in unknown.stderr


@pytest.mark.slow
def test_every_committed_fixture_meets_its_expectations(tmp_path: Path) -> None:
    """The QA regression suite itself: `callcenter replay --check audio_fixtures/`."""
    res = cli("replay", "--check", "--no-store", str(FIXTURES), data_dir=tmp_path / "var", timeout=900)
    verdicts = [ln for ln in res.stdout.splitlines() if "QA:" in ln or ln.startswith("     - ")]
    assert res.returncode == 0, "\n".join(verdicts) + res.stderr[-2000:]
    assert res.stdout.count("QA: PASS") == len(list(FIXTURES.glob("*.expect.json"))) * 2
