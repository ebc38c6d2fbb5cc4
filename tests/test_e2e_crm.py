"""End-to-end CRM: a replayed call that holds a card number leaves a complete, redacted,
evidence-linked record in SQLite and PostgreSQL, readable by `callcenter calls show` and the REST
API (`callcenter api` in a subprocess), and is delivered to a real webhook receiver process;
receiver and database outages lose nothing (`callcenter deliver`).

The card is typed on the keypad (in-band DTMF in the recording): that path is exact. Read aloud
by espeak-ng, pocketsphinx hears only fragments of it ("four five three i well you for ..."), so
spoken digits would test nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from audio_fixtures.render import DTMF_FREQS, DTMF_GAP_S, DTMF_LEVEL_DB, DTMF_TONE_S, NOISE_FLOOR_DB
from summaries.redact import MASKED_DIGIT
from summaries.spoken import luhn_ok
from summaries.store import CrmStore
from summaries.summary import REASONS, RESOLUTIONS
from tests.e2e_crm_support import TOKEN, ApiProcess, dump_database, original_dtmf, outbox_rows
from tests.test_replay_cli import cli
from tests.test_store_durable import TmpPostgres, _pg_bin
from tests.test_webhook import Receiver

pytestmark = pytest.mark.slow

RATE = 16000
CARD = "4539148803436467"
SECRET = "e2e-hook-secret"
TONES = ("calm", "neutral", "tense", "angry", "unknown")


# -- the call ------------------------------------------------------------------------------------


def _keys(digits: str) -> np.ndarray:
    """In-band DTMF like audio_fixtures/render.py: two sines per key, tone then gap."""
    t = np.arange(int(DTMF_TONE_S * RATE)) / RATE
    amp = 10 ** (DTMF_LEVEL_DB / 20)
    gap = np.zeros(int(DTMF_GAP_S * RATE))
    out = []
    for key in digits:
        lo, hi = DTMF_FREQS[key]
        out += [amp * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t)), gap]
    return np.concatenate(out)


@pytest.fixture(scope="module")
def pii_call(tts, tmp_path_factory) -> Path:
    """~11 s: the caller asks to pay by card, types it (then #) and says goodbye; no IVR."""
    assert luhn_ok(CARD)

    def say(words: str) -> np.ndarray:
        audio, rate = sf.read(tts(words, speed=130), dtype="float64")
        assert rate == RATE
        return audio

    def pause(s: float) -> np.ndarray:
        return np.zeros(int(s * RATE))

    audio = np.concatenate([
        pause(0.5), say("Hello, I want to pay my bill with my credit card."), pause(0.8),
        _keys(CARD + "#"), pause(0.8), say("Thank you, goodbye."), pause(0.6),
    ])
    audio += np.random.default_rng(7).normal(0, 10 ** (NOISE_FLOOR_DB / 20), len(audio))
    path = tmp_path_factory.mktemp("calls") / "card_payment.wav"
    sf.write(path, audio, RATE, subtype="PCM_16")
    return path


# -- helpers -------------------------------------------------------------------------------------


def leaks(blob: str) -> bool:
    """The card in ``blob``, also when written with spaces or dashes between digit groups."""
    return CARD in re.sub(r"(?<=\d)[ -](?=\d)", "", blob)


def typed(events: list[dict]) -> str:
    """The DTMF keys of stored event dicts, in order."""
    return "".join(e["digit"] for e in events if e.get("type") == "dtmf")


def replay(wav: Path, data_dir: Path, env: dict[str, str], *extra: str) -> tuple[str, subprocess.CompletedProcess]:
    res = cli("replay", "--json", *extra, str(wav), data_dir=data_dir, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    # the live stream (what MQTT and the console get) never carries the whole card either
    live_keys = "".join(json.loads(line).get("digit", "") for line in res.stdout.splitlines())
    assert CARD not in live_keys and not leaks(res.stdout), live_keys
    call_id = json.loads(res.stdout.splitlines()[0])["call_id"]
    return call_id, res


def base_env(**extra: str) -> dict[str, str]:
    env = {"CALLCENTER_CONSOLE__TOKEN": TOKEN, "CALLCENTER_STORE__WEBHOOK_SECRET": SECRET}
    env.update({f"CALLCENTER_{k.upper()}": v for k, v in extra.items()})
    return env


@pytest.fixture
def receiver(tmp_path):
    r = Receiver(tmp_path, secret=SECRET)
    r.start()
    yield r
    r.stop()


# -- 1 + 2: replay → store, API, CLI, webhook ----------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "keep_original"),
    [
        ("sqlite", False),
        pytest.param("postgres", False, marks=pytest.mark.postgres),
        ("sqlite", True),
    ],
    ids=["sqlite", "postgres", "sqlite-keep-original"],
)
def test_replayed_card_call_leaves_a_complete_redacted_delivered_record(
    request, pii_call, tmp_path, receiver, backend, keep_original
):
    var = tmp_path / "var"
    url = request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{var / 'callcenter.db'}"
    env = base_env(store__url=url, store__webhook_url=receiver.url,
                   store__keep_original_pii=str(keep_original).lower())
    call_id, _ = replay(pii_call, var, env)

    # -- the stored record is complete and evidence-linked
    store = CrmStore(url)
    store.start()
    try:
        call = store.get_call(call_id)
    finally:
        store.stop()
    assert call is not None
    s = call.summary
    assert s is not None and s.call_id == call_id
    assert s.reason in REASONS and s.resolution in RESOLUTIONS
    assert s.tone_end in TONES and s.tone_arc, "no tone marks"
    assert 10 < s.duration < 13 and call.call.end_reason == "end_of_recording"
    assert s.dead_air_count == 0 and s.dead_air_total_s == 0.0  # no pause reaches the 5 s threshold
    assert 0 < s.talk_ratio["caller"] <= 1
    assert isinstance(s.entities, tuple)
    assert s.dtmf == MASKED_DIGIT * len(CARD) + "#"
    assert s.evidence and all(0 <= e.t_start <= e.t_end <= s.duration + 0.5
                              for spans in s.evidence.values() for e in spans)
    utterances = [u for u in call.transcript if u.text]
    assert len(utterances) >= 2 and {u.party for u in utterances} == {"caller"}
    assert all(u.t_start < u.t_end for u in utterances)
    for e in (e for spans in s.evidence.values() for e in spans):  # each quotes a stored utterance
        assert any(e.text == u.text and abs(e.t_start - u.t_start) < 0.05 for u in utterances), e
    types = [e["type"] for e in call.events]
    assert types[0] == "call.started" and types[-1] == "call.ended"
    assert types.count("transcript.final") >= len(utterances) and "tone.update" in types
    assert typed(call.events) == MASKED_DIGIT * len(CARD) + "#"

    # -- the card is nowhere but (with keep_original) the original columns
    assert not leaks(dump_database(url)) or keep_original
    data_keys, original_keys = original_dtmf(url, call_id)
    assert not leaks(data_keys)
    assert original_keys == (CARD if keep_original else "")
    assert not leaks(json.dumps(call.to_dict()))

    shown = cli("calls", "show", call_id, data_dir=var, env=env)
    assert shown.returncode == 0, shown.stderr
    assert call_id in shown.stdout and "Reason:" in shown.stdout and not leaks(shown.stdout)

    # -- the REST API serves the same record, and refuses bad input
    api = ApiProcess(var, env)
    try:
        got = api.get(f"/api/calls/{call_id}")
        assert got.status_code == 200
        body = got.json()
        assert body["summary"]["dtmf"] == s.dtmf and body["summary"]["evidence"]
        assert len(body["transcript"]) == len(call.transcript) and not leaks(got.text)
        assert call_id in [c["call_id"] for c in api.get("/api/calls").json()["items"]]
        assert api.get("/api/calls/no-such-call").status_code == 404
        assert api.get("/api/contacts/+10000000000").status_code == 404
        assert api.get("/api/calls", limit="many").status_code == 422
        assert api.get("/api/calls", tone="furious").status_code == 422
        assert api.get("/api/calls", date_from="2026-02-01T00:00:00Z",
                       date_to="2026-01-01T00:00:00Z").status_code == 400
        assert api.get(f"/api/calls/{call_id}", token=None).status_code == 401
        assert api.get(f"/api/calls/{call_id}", token="wrong").status_code == 401
        huge = httpx.post(api.base + "/api/calls", content=b"x" * (3 * 1024 * 1024),
                          headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
                          timeout=30)
        assert huge.status_code == 413
        bad = httpx.post(api.base + "/api/calls", content=b'{"events": [{"type": "nope"}]}',
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert bad.status_code == 422
    finally:
        api.stop()

    # -- delivered once to the webhook, signed (the receiver refuses a bad HMAC), keyed by call id
    (rec,) = receiver.records()
    assert rec["key"] == call_id and rec["call_id"] == call_id and not rec["duplicate"]
    ((key, status, sent),) = outbox_rows(var)
    assert (key, status) == (call_id, "delivered")
    hook = json.loads(sent)
    assert hook["summary"]["call_id"] == call_id and hook["summary"]["dtmf"] == s.dtmf
    assert not leaks(sent.decode())


# -- 2 + 3: receiver down, then `callcenter deliver` ---------------------------------------------


def test_webhook_receiver_down_then_deliver_sends_exactly_once(pii_call, tmp_path):
    var = tmp_path / "var"
    rcv = Receiver(tmp_path, secret=SECRET)  # not started: nothing listens on its port
    env = base_env(store__webhook_url=rcv.url)
    # The ASR is beside the point here; without it the replay takes a few seconds.
    call_id, _ = replay(pii_call, var, env, "--engine", "none")
    ((key, status, _),) = outbox_rows(var)
    assert (key, status) == (call_id, "pending")

    down = cli("deliver", "--timeout", "5", data_dir=var, env=env)
    assert down.returncode == 1
    assert "webhook: 0 delivered, 1 waiting (ConnectError" in down.stdout, down.stdout + down.stderr
    assert "crm: 0 written, 0 waiting" in down.stdout

    rcv.start()
    try:
        up = cli("deliver", data_dir=var, env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "webhook: 1 delivered, 0 waiting" in up.stdout
        again = cli("deliver", data_dir=var, env=env)
        assert again.returncode == 0 and "webhook: 0 delivered, 0 waiting" in again.stdout
        (rec,) = rcv.records()
        assert rec["key"] == call_id and not rec["duplicate"]
        assert outbox_rows(var)[0][1] == "delivered"
    finally:
        rcv.stop()


# -- 3: database outage --------------------------------------------------------------------------


@pytest.mark.postgres
def test_database_down_during_replay_then_deliver_writes_the_whole_call(pii_call, tmp_path):
    if _pg_bin() is None or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL server binaries (pg_ctl, initdb) or runuser not installed")
    pg = TmpPostgres()
    var = tmp_path / "var"
    env = base_env(store__url=pg.url)
    try:
        call_id, res = replay(pii_call, var, env)  # nothing listens on pg.port: the server is down
        assert "CRM store unavailable" in res.stderr and "spool" in res.stderr
        spooled = list((var / "crm-spool").glob("*.call.json"))
        assert len(spooled) == 1
        payload = json.loads(spooled[0].read_text())
        assert payload["call_id"] == call_id and not leaks(spooled[0].read_text())

        still_down = cli("deliver", data_dir=var, env=env)
        assert still_down.returncode == 1
        assert "crm: 0 written, 1 waiting (OperationalError" in still_down.stdout, still_down.stdout

        pg.start()
        store = CrmStore(pg.url)
        store.start()
        try:
            assert store.count_calls() == 0  # nothing half-written while it was down
            done = cli("deliver", data_dir=var, env=env)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "crm: 1 written, 0 waiting" in done.stdout
            call = store.get_call(call_id)
            cards = store.get_scorecards(call_id)
        finally:
            store.stop()
        assert call is not None and call.summary is not None
        assert json.loads(json.dumps(call.summary.to_dict())) == payload["summary"]
        final = [e for e in payload["events"] if e["type"] == "qa.scorecard" and e["final"]]
        assert call.events == [e for e in payload["events"] if e not in final]  # finals: their own table
        assert [c["form_id"] for c in cards] == [e["form_id"] for e in final] == ["standard"]
        finals = [e for e in payload["events"] if e["type"] == "transcript.final" and e["text"].strip()]
        assert len(call.transcript) == len(finals) >= 2
        assert not list((var / "crm-spool").glob("*.call.json"))
        assert not leaks(dump_database(pg.url))
    finally:
        pg.cleanup()


# -- 4: a live SIP call ----------------------------------------------------------------------------


@pytest.mark.sip
@pytest.mark.postgres
async def test_live_sip_call_lands_in_postgres_and_at_the_webhook(pg_url, tmp_path, receiver):
    from callcenter.serve import start_service, stop_service
    from tests.test_serve_calls import (
        consecutive_free_ports,
        place_call,
        service_settings,
        wait_record,
    )

    settings = service_settings(
        tmp_path, **{"sip.workers": 1, "sip.front": "none", "sip.worker_base_port": consecutive_free_ports(1),
                     "store.url": pg_url, "store.webhook_url": receiver.url, "store.webhook_secret": SECRET},
    )
    svc = await start_service(settings, log_dir=tmp_path / "logs")
    try:
        res = await place_call(svc.sip_uri, "--dtmf", "1", "--dtmf", "123456#", "--dtmf-delay", "2",
                               "--hangup-after", "13")
        assert res["answered"], res
        call_id = res["call_id"]
        record = await wait_record(svc, call_id)
        assert record["ivr"]["path"][:3] == ["welcome", "main_menu", "billing_account"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if receiver.records():
                break
            await asyncio.sleep(0.1)
    finally:
        await stop_service(svc)

    store = CrmStore(pg_url)
    store.start()
    try:
        call = store.get_call(call_id)
    finally:
        store.stop()
    assert call is not None and call.summary is not None
    assert call.summary.ivr_path[:3] == ("welcome", "main_menu", "billing_account")
    assert typed(call.events) == "1123456#"
    assert [e["type"] for e in call.events][-1] == "call.ended"
    (rec,) = receiver.records()
    assert rec["key"] == call_id and rec["call_id"] == call_id and not rec["duplicate"]
