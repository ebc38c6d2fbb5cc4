"""Every way into the CRM store redacts as a live call does: the REST API, ``CrmStore.save_call``
itself, the durable writer's spool, ``callcenter deliver`` on a spool left by an older run, and
``replay --no-store``'s output. Real SQLite, real uvicorn, the real CLI in a subprocess."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import uvicorn
from fastapi.testclient import TestClient

from audio_fixtures.render import DTMF_FREQS, DTMF_GAP_S, DTMF_LEVEL_DB, DTMF_TONE_S
from speech.events import CallEnded, CallStarted, DtmfDigit, Event, IvrStep
from speech.frames import Party
from summaries.api import create_api
from summaries.durable_writer import SPOOL_SUFFIX, DurableWriter
from summaries.redact import MASKED_DIGIT
from summaries.sample_calls import utterance
from summaries.store import CrmStore
from summaries.summarizer import summarize
from summaries.summary import CallSummary, Entity, Evidence, FollowUp
from telephony.net import free_port
from tests.test_replay_cli import cli, stored_calls

TOKEN = "ingest-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SAID = "my card number is 4111 1111 1111 1111 and my ssn is 123-45-6789 email bob@example.com"
SECRETS = ("4111 1111", "4111111111111111", "123-45-6789", "bob@example.com")
CARD = "4539148803436467"


def pii_call(call_id: str = "pii-1") -> list[Event]:
    return [
        CallStarted(call_id=call_id, t=0.0, caller="+15550177", started_at="2026-03-05T10:00:00+00:00"),
        *utterance(call_id, Party.CALLER, 1.0, SAID),
        IvrStep(call_id=call_id, t=20.0, node="pin", action="enter", detail={"secure": True}),
        *[DtmfDigit(call_id=call_id, t=21.0 + i * 0.3, digit=d, source="rfc4733") for i, d in enumerate("2468")],
        IvrStep(call_id=call_id, t=23.0, node="pin", action="collect", detail={"digits": "2468", "secure": True}),
        CallEnded(call_id=call_id, t=30.0, reason="hangup", duration=30.0),
    ]


def dump(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return "\n".join(conn.iterdump())


def assert_clean(blob: str) -> None:
    for secret in SECRETS:
        assert secret not in blob, secret
    assert "2468" not in blob


@pytest.fixture
def store(tmp_path):
    s = CrmStore(f"sqlite:///{tmp_path / 'crm.db'}")
    s.start()
    yield s
    s.stop()


def test_posted_call_is_redacted_and_not_found_by_its_card_number(store, tmp_path):
    with TestClient(create_api(store, token=TOKEN)) as client:
        r = client.post("/api/calls", json={"events": [e.to_dict() for e in pii_call()]}, headers=AUTH)
        assert r.status_code == 201, r.text
        assert client.get("/api/calls", params={"q": "4111"}, headers=AUTH).json()["items"] == []
        assert client.get("/api/calls", params={"q": "bob@"}, headers=AUTH).json()["items"] == []
        detail = client.get("/api/calls/pii-1", headers=AUTH).json()
    assert "[CARD]" in detail["transcript"][0]["text"] and "[SSN]" in detail["transcript"][0]["text"]
    assert "[EMAIL]" in detail["transcript"][0]["text"]
    assert detail["summary"]["dtmf"] == MASKED_DIGIT * 4  # keyed in a secure IVR node
    assert_clean(json.dumps(detail))
    assert_clean(dump(tmp_path / "crm.db"))


def test_posted_summary_is_redacted_too(store, tmp_path):
    ev = pii_call("pii-2")
    rich = CallSummary(
        call_id="pii-2", reason="billing", reason_phrase=SAID, actions_taken=(f"charged {SAID}",),
        follow_ups=(FollowUp(text=f"email bob@example.com about {SAID}"),),
        entities=(Entity("card_number", "4111111111111111"), Entity("pin", "2468", source="dtmf")),
        key_phrases=("ssn 123-45-6789",), evidence={"reason": (Evidence(1.0, 5.0, "caller", SAID),)},
        dtmf="2468",
    )
    with TestClient(create_api(store, token=TOKEN)) as client:
        body = {"events": [e.to_dict() for e in ev], "summary": json.loads(json.dumps(rich.to_dict()))}
        assert client.post("/api/calls", json=body, headers=AUTH).status_code == 201
        detail = client.get("/api/calls/pii-2", headers=AUTH).json()
    assert detail["summary"]["reason"] == "billing" and detail["summary"]["dtmf"] == "XXXX"
    assert detail["tasks"][0]["text"].startswith("email [EMAIL] about my card number is [CARD]")
    assert_clean(json.dumps(detail))
    assert_clean(dump(tmp_path / "crm.db"))


def test_save_call_itself_redacts(store, tmp_path):
    ev = pii_call("pii-3")
    store.save_call(ev, summarize(ev))
    assert store.search(text="4111") == [] and store.search(text="123-45") == []
    assert_clean(dump(tmp_path / "crm.db"))
    # already-redacted input is stored unchanged (the live chain redacts first)
    red = store.redact(ev)
    assert store.redact(red.events).redacted_count == 0


def test_durable_writer_never_spools_pii(tmp_path):
    down = CrmStore(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    writer = DurableWriter(down, tmp_path / "spool")
    ev = pii_call("pii-4")
    writer.write(ev, summarize(ev))
    [spooled] = writer.spooled()
    assert_clean(spooled.read_text())
    assert "[CARD]" in spooled.read_text()


def test_deliver_redacts_a_spool_left_in_clear(tmp_path):
    """A spool file from an older version (or written by hand) holds PII in clear."""
    var = tmp_path / "var"
    spool = var / "crm-spool"
    spool.mkdir(parents=True)
    ev = pii_call("pii-5")
    raw = {"call_id": "pii-5", "events": [e.to_dict() for e in ev], "summary": summarize(ev).to_dict(),
           "originals": {}}
    (spool / f"pii-5{SPOOL_SUFFIX}").write_text(json.dumps(raw))
    (spool / f"garbage{SPOOL_SUFFIX}").write_text("{not json")
    res = cli("deliver", data_dir=var)
    assert res.returncode == 0, res.stderr
    assert "crm: 1 written, 0 waiting" in res.stdout
    assert (spool / f"garbage{SPOOL_SUFFIX}.bad").exists()  # set aside, not retried forever
    assert_clean(dump(var / "callcenter.db"))
    res = cli("calls", "show", "pii-5", data_dir=var)
    assert res.returncode == 0 and "[CARD]" in res.stdout
    assert_clean(res.stdout)


def test_posted_call_over_the_wire_with_kept_originals(tmp_path):
    """``keep_original_pii``: the clear text goes only to the separate original columns, which
    neither search nor the API read."""
    s = CrmStore(f"sqlite:///{tmp_path / 'k.db'}", keep_original_pii=True)
    s.start()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_api(s, token=TOKEN), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{port}"
        r = httpx.post(f"{base}/api/calls", json={"events": [e.to_dict() for e in pii_call("pii-6")]}, headers=AUTH)
        assert r.status_code == 201
        assert httpx.get(f"{base}/api/calls", params={"q": "4111"}, headers=AUTH).json()["items"] == []
        assert_clean(httpx.get(f"{base}/api/calls/pii-6", headers=AUTH).text)
    finally:
        server.should_exit = True
        thread.join(10)
        s.stop()
    with sqlite3.connect(tmp_path / "k.db") as conn:
        kept = conn.execute("select original_text from transcripts where call_id = 'pii-6'").fetchone()[0]
        text = conn.execute("select text from transcripts where call_id = 'pii-6'").fetchone()[0]
    assert kept == SAID and "4111" not in text


def _keys(digits: str, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(DTMF_TONE_S * rate)) / rate
    amp = 10 ** (DTMF_LEVEL_DB / 20)
    out = []
    for key in digits:
        lo, hi = DTMF_FREQS[key]
        out += [amp * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t)), np.zeros(int(DTMF_GAP_S * rate))]
    return np.concatenate(out)


@pytest.mark.slow
def test_replay_no_store_output_is_redacted(tmp_path):
    wav = tmp_path / "card.wav"
    audio = np.concatenate([np.zeros(8000), _keys(CARD + "#"), np.zeros(16000)])
    sf.write(wav, audio, 16000, subtype="PCM_16")
    res = cli("replay", "--no-store", "--json", "--engine", "none", str(wav), data_dir=tmp_path / "var")
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [json.loads(ln) for ln in res.stdout.splitlines()]
    keys = "".join(e.get("digit", "") for e in lines)
    assert keys.startswith(CARD[:6]) and MASKED_DIGIT in keys, keys  # the detector heard the card
    assert CARD not in keys and CARD not in res.stdout
    summary = next(e for e in lines if e["type"] == "summary")["summary"]
    assert summary["dtmf"] == MASKED_DIGIT * len(CARD) + "#"
    assert stored_calls(tmp_path / "var") == 0  # --no-store: printed (redacted), not stored
