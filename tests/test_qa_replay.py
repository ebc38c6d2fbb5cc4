"""The standard form end to end on a real bridged recording (whisper): live scorecards during the
replay, the final one stored with the call; and ``callcenter qa score`` (table, CSV, JSON, exit
codes) on event logs."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from callcenter.aftercall import AfterCall
from callcenter.qa_cli import run_qa_score
from callcenter.replay import replay_file
from callcenter.settings import load_settings
from callcenter.wiring import load_asr_engine
from speech.events import Event, QaScorecard
from summaries.store import CrmStore
from tests.conftest import FIXTURES
from tests.test_qa_scorecard import bad_call, good_call

EXPECTED_REFUND = {"greeting": "yes", "verified_identity": "yes", "acknowledged_frustration": "na",
                   "no_long_dead_air": "yes", "no_agent_talk_over": "yes", "summarized_resolution": "yes",
                   "offered_further_help": "no"}
"""bridged_refund by ear: "Thank you for calling, how can I help you today?"; "Let me verify your
order" before the refund; a calm caller; no long silence; one talk-over by the caller; "I have
refunded the extra charge"; nobody offers further help."""


@pytest.mark.slow
def test_bridged_refund_scored_live_and_stored(tmp_path: Path):
    settings = load_settings(environ={}, overrides={"data_dir": str(tmp_path), "mqtt.enabled": False,
                                                    "asr.engine": "whisper"})
    engine = load_asr_engine(settings)
    assert engine is not None

    async def run() -> tuple[list[Event], str]:
        after = AfterCall(settings)
        await after.start()
        seen: list[Event] = []
        try:
            res = await replay_file(FIXTURES / "bridged_refund.wav", settings, engine, sinks=[seen.append],
                                    after_call=after)
        finally:
            await after.stop()
        assert res.error is None and res.call_id
        return seen, res.call_id

    try:
        seen, call_id = asyncio.run(run())
    finally:
        engine.close()
    cards = [e for e in seen if isinstance(e, QaScorecard)]
    live, final = [c for c in cards if not c.final], [c for c in cards if c.final]
    assert live and live[0].t < 10.0  # the greeting shows while the call goes on
    assert len(final) == 1
    answers = {a["question_id"]: a["answer"] for a in final[0].scorecard["answers"]}
    assert answers == EXPECTED_REFUND
    verified = next(a for a in final[0].scorecard["answers"] if a["question_id"] == "verified_identity")
    assert verified["evidence"] and all(ev["party"] == "agent" for ev in verified["evidence"])

    store = CrmStore(settings.store_url)
    store.start()
    try:
        (stored,) = store.get_scorecards(call_id)
    finally:
        store.stop()
    assert stored["final"] and stored["score"] == pytest.approx(100 * 70 / 80, abs=0.1)
    assert {a["question_id"]: a["answer"] for a in stored["answers"]} == EXPECTED_REFUND


def write_log(path: Path, events: list[Event]) -> Path:
    path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events))
    return path


def cli(form: str, files: list[str], fmt: str = "table") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    settings = load_settings(environ={}, overrides={"asr.engine": "none", "mqtt.enabled": False})
    code = asyncio.run(run_qa_score(form, files, settings, out, err, fmt=fmt))
    return code, out.getvalue(), err.getvalue()


def test_cli_table_csv_json_and_exit_codes(tmp_path: Path):
    good = write_log(tmp_path / "good.jsonl", good_call())
    bad = write_log(tmp_path / "bad.jsonl", bad_call())
    code, out, _ = cli("standard", [str(good), str(bad)])
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["file", "greeting", "verified_identity"]
    assert lines[2].split() == ["good.jsonl", *["Y"] * 7, "100", "yes"]
    assert lines[3].split() == ["bad.jsonl", *["N"] * 7, "0", "no"]

    code, out, _ = cli("standard", [str(good)], "csv")
    assert code == 0 and out.splitlines()[1].startswith(f"{good},yes,yes,")
    code, out, _ = cli("standard", [str(bad)], "json")
    assert code == 0 and json.loads(out)["score"] == 0.0

    broken = tmp_path / "broken.yaml"
    broken.write_text("id: x\ntitle: T\nsections:\n  - id: s\n    title: S\n    questions: [{id: q, text: Q}]\n")
    code, out, err = cli(str(broken), [str(good)])
    assert code == 2 and out == ""
    assert f"{broken}: sections[0].questions[0].weight: is required" in err
    assert "sections[0].questions[0].auto: is required" in err

    missing = tmp_path / "gone.wav"
    code, out, err = cli("standard", [str(good), str(missing)])
    assert code == 2 and "good.jsonl" in out and "gone.wav" in out
