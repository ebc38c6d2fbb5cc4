"""Knowledge suggestions on replayed calls: `callcenter replay` of recorded billing/refund calls
(real recognizers, the sample knowledge base indexed on first use) prints them, emits them right
after the caller's finals, and stores them with the call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from summaries.store import CrmStore
from tests.conftest import FIXTURES
from tests.test_replay_cli import cli

pytestmark = pytest.mark.slow

BILLING = {"billing-double-charge", "refunds-policy", "billing-dispute"}


def test_replayed_refund_call_suggests_billing_articles_and_stores_them(tmp_path: Path) -> None:
    var = tmp_path / "var"
    # Whisper (tiny.en, shipped): pocketsphinx hears nothing like "charged" on this 8 kHz G.711 call.
    res = cli("replay", "--json", "--engine", "whisper", str(FIXTURES / "bridged_refund_8k_ulaw.wav"),
              data_dir=var)
    assert res.returncode == 0, res.stderr[-2000:]
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    suggestions = [e for e in events if e["type"] == "assist.suggestion"]
    assert suggestions, "no suggestion on a call about a double charge"
    first = suggestions[0]
    assert BILLING & {a["id"] for a in first["articles"]}, first["articles"]
    assert all(a["matched"] and a["title"] and a["body"] for a in first["articles"])
    # Right after the caller final it answers, at that final's call time.
    i = events.index(first)
    finals = [e for e in events[:i] if e["type"] == "transcript.final" and e["party"] == "caller"]
    assert finals and finals[-1]["t"] == first["t"] == first["final_t"]
    assert all(e["type"] != "transcript.final" or e["party"] != "caller" for e in events[events.index(finals[-1]) + 1:i])
    assert not any(e["type"] == "assist.suggestion" and e["party"] == "agent" for e in events)

    store = CrmStore(f"sqlite:///{var / 'callcenter.db'}")
    store.start()
    try:
        stored = store.get_call(first["call_id"])
    finally:
        store.stop()
    assert stored is not None
    assert [e["articles"] for e in stored.events if e["type"] == "assist.suggestion"] == [
        s["articles"] for s in suggestions]


def test_replay_prints_suggestions_and_kb_off_prints_none(tmp_path: Path) -> None:
    res = cli("replay", "--no-store", "--engine", "pocketsphinx", str(FIXTURES / "calm_billing.wav"),
              data_dir=tmp_path / "var")
    assert res.returncode == 0, res.stderr[-2000:]
    kb_lines = [line for line in res.stdout.splitlines() if "KB: " in line]
    # pocketsphinx misses "bill" in the opening line (an outage article comes first); once the
    # caller says they were charged twice, the billing articles lead.
    assert any(line.split("KB: ")[1].startswith(tuple(BILLING)) for line in kb_lines), res.stdout[-3000:]
    off = cli("replay", "--no-store", "--engine", "pocketsphinx", str(FIXTURES / "calm_billing.wav"),
              data_dir=tmp_path / "var2", env={"CALLCENTER_KNOWLEDGE__ENABLED": "false"})
    assert off.returncode == 0 and "KB: " not in off.stdout
