"""Call review: a stored call's recording, served by the console to those who may hear it.

Real parts: the CRM store (SQLite) written through the real after-call chain, the store's own
redaction of a spoken card number, the ACD's agents file for logins, the encrypted-at-rest
container, and the console app. The recording is a synthetic stereo tone pair (agent 440 Hz,
caller 660 Hz) so that every sample can be checked exactly.
"""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from callcenter.aftercall import AfterCall
from callcenter.agent_console import build_agent_console
from callcenter.recordings import KEY_TONE_S, REDACTION_PAD_S, StoreRecordings
from callcenter.settings import Settings
from live.console import create_console_app
from live.console.review import ranged
from speech.events import CallEnded, CallStarted, DtmfDigit, FinalTranscript, PartyJoined, Word
from speech.frames import Party
from summaries.store import CrmStore
from telephony.recording_crypto import KEY_BYTES, EncryptedWav
from telephony.wav_writer import IncrementalWav
from tests.console_agents_support import PASSWORDS, agents_settings

TOKEN = "review-token"
RATE = 8000
SECONDS = 4.0
CALL_ID = "review-call-1"
CARD_AT = (2.0, 3.0)
"""Where the caller speaks the card number (call seconds): the store redacts these words."""


def tones() -> np.ndarray:
    t = np.arange(int(RATE * SECONDS)) / RATE
    agent = 3000 * np.sin(2 * np.pi * 440 * t)
    caller = 5000 * np.sin(2 * np.pi * 660 * t)
    return np.column_stack((agent, caller)).astype("<i2")


def write_recording(path: Path, key: bytes | None = None) -> Path:
    samples = tones()
    wav = (EncryptedWav(path, sample_rate=RATE, channels=2, key=key) if key
           else IncrementalWav(path, sample_rate=RATE, channels=2))
    wav.write(samples.reshape(-1))
    wav.close()
    return path


def call_events() -> list:
    card = ["4111", "1111", "1111", "1111"]
    step = (CARD_AT[1] - CARD_AT[0]) / len(card)
    words = (Word("my", 1.2, 1.4), Word("card", 1.4, 1.7), Word("number", 1.7, 1.85), Word("is", 1.85, 2.0),
             *(Word(w, CARD_AT[0] + i * step, CARD_AT[0] + (i + 1) * step) for i, w in enumerate(card)))
    return [
        CallStarted(call_id=CALL_ID, t=0.0, source="sip", caller="+15550100", callee="support",
                    started_at="2026-12-07T08:00:00+00:00", parties=("caller", "agent")),
        PartyJoined(call_id=CALL_ID, t=0.5, party=Party.AGENT, agent_id="alice", queue="billing"),
        FinalTranscript(call_id=CALL_ID, t=0.9, party=Party.AGENT, text="thank you for calling",
                        start=0.3, end=0.9, words=(Word("thank", 0.3, 0.5), Word("you", 0.5, 0.6),
                                                   Word("for", 0.6, 0.7), Word("calling", 0.7, 0.9))),
        FinalTranscript(call_id=CALL_ID, t=3.0, party=Party.CALLER,
                        text="my card number is " + " ".join(card), start=1.2, end=3.0, words=words),
        CallEnded(call_id=CALL_ID, t=SECONDS, reason="hangup", duration=SECONDS),
    ]


@pytest.fixture
def settings(tmp_path) -> Settings:
    return agents_settings(tmp_path)


async def store_call(settings: Settings, recording: Path, events: list | None = None) -> None:
    """The live path: the after-call chain gets the recording as the sessions pass it."""
    after = AfterCall(settings)
    await after.start()
    try:
        await after.complete(CALL_ID, events or call_events(), recording=str(recording))
    finally:
        await after.stop()


@pytest.fixture
def stored(settings, tmp_path) -> Path:
    path = write_recording(tmp_path / "recordings" / "call.wav")
    asyncio.run(store_call(settings, path))
    return path


def client_for(settings: Settings, key: bytes | None = None) -> TestClient:
    app = create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc",
                             agents=build_agent_console(settings),
                             recordings=StoreRecordings(settings.store_url, key=key))
    return TestClient(app)


def as_token(client: TestClient) -> TestClient:
    client.get("/", params={"token": TOKEN}, follow_redirects=False)  # sets the token cookie
    return client


def url(party: str = "both") -> str:
    return f"/api/calls/{CALL_ID}/recording?party={party}"


def samples_of(body: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(body)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        return data, w.getframerate()


def silent_window() -> slice:
    """Samples the redaction must zero: the card words' span, padded."""
    return slice(int((CARD_AT[0] - REDACTION_PAD_S) * RATE), int((CARD_AT[1] + REDACTION_PAD_S) * RATE))


def test_the_recording_path_reaches_the_store(settings, stored):
    store = CrmStore(settings.store_url)
    store.start()
    try:
        rec = store.recording_of(CALL_ID)
    finally:
        store.stop()
    assert rec is not None and rec.path == str(stored) and rec.agent_id == "alice"
    caller = next(u for u in rec.utterances if u.party == "caller")
    assert "4111" not in caller.text and "[CARD]" in caller.text  # the store redacted it
    assert [(w, s, e) for w, s, e in caller.words if w == "[CARD]"] == [("[CARD]", *CARD_AT)]


def test_only_the_token_a_supervisor_or_the_calls_agent_may_listen(settings, stored):
    with client_for(settings) as client:
        assert client.get(url()).status_code == 401
        assert client.post("/api/agent/login", json={"agent_id": "bob", "password": PASSWORDS["bob"]}).status_code == 200
        refused = client.get(url())
        assert refused.status_code == 403 and refused.json()["detail"] == "not your call"
        assert client.get(f"/api/calls/{CALL_ID}").status_code == 401  # the rest of the call stays shut
        for agent in ("alice", "sue"):  # the call's agent; a supervisor
            client.post("/api/agent/logout")
            client.post("/api/agent/login", json={"agent_id": agent, "password": PASSWORDS[agent]})
            r = client.get(url())
            assert r.status_code == 200 and r.headers["content-type"] == "audio/wav", agent
        client.post("/api/agent/logout")
        client.cookies.clear()
        assert as_token(client).get(url()).status_code == 200
        assert client.get("/api/calls/no-such-call/recording").status_code == 404


def test_byte_ranges_are_exact(settings, stored):
    with as_token(client_for(settings)) as client:
        full = client.get(url())
        assert full.status_code == 200 and full.headers["accept-ranges"] == "bytes"
        body, size = full.content, len(full.content)
        for header, (start, end) in {"bytes=0-0": (0, 0), "bytes=100-4099": (100, 4099),
                                     f"bytes={size - 10}-": (size - 10, size - 1),
                                     "bytes=-64": (size - 64, size - 1),
                                     f"bytes=1000-{size + 500}": (1000, size - 1)}.items():
            part = client.get(url(), headers={"Range": header})
            assert part.status_code == 206, header
            assert part.headers["content-range"] == f"bytes {start}-{end}/{size}", header
            assert part.content == body[start:end + 1], header
        outside = client.get(url(), headers={"Range": f"bytes={size}-"})
        assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{size}"


def test_multiple_ranges_get_the_whole_file():
    r = ranged(b"0123456789", "bytes=0-1,4-5", media_type="audio/wav")
    assert r.status_code == 200 and r.body == b"0123456789"


def test_one_party_is_one_channel_and_a_redacted_span_is_silent(settings, stored):
    source = tones()
    quiet = silent_window()
    with as_token(client_for(settings)) as client:
        both, rate = samples_of(client.get(url("both")).content)
        caller, _ = samples_of(client.get(url("caller")).content)
        agent, _ = samples_of(client.get(url("agent")).content)
    assert rate == RATE and both.shape == source.shape
    assert caller.shape == (len(source), 1) and agent.shape == (len(source), 1)
    assert not both[quiet].any() and not caller[quiet].any() and not agent[quiet].any()
    keep = np.ones(len(source), bool)
    keep[quiet] = False
    assert np.array_equal(both[keep], source[keep])  # everything else is the recording itself
    assert np.array_equal(caller[keep, 0], source[keep, 1])
    assert np.array_equal(agent[keep, 0], source[keep, 0])
    assert np.abs(caller[: quiet.start].astype(float)).mean() > 1000  # the caller is heard before
    assert np.abs(caller[quiet.stop:].astype(float)).mean() > 1000  # and after the card number


def test_an_encrypted_recording_is_served_decrypted(settings, tmp_path):
    key = bytes(range(KEY_BYTES))
    path = write_recording(tmp_path / "recordings" / "call.wav.enc", key=key)
    assert b"RIFF" not in path.read_bytes()[:64]
    asyncio.run(store_call(settings, path))
    with as_token(client_for(settings, key=key)) as client:
        data, rate = samples_of(client.get(url()).content)
    keep = np.ones(len(data), bool)
    keep[silent_window()] = False
    assert rate == RATE and np.array_equal(data[keep], tones()[keep])
    assert not data[silent_window()].any()
    with as_token(client_for(settings, key=None)) as client:  # no key here: said so, not garbage
        r = client.get(url())
    assert r.status_code == 503 and "encrypted" in r.json()["detail"]


def test_keys_of_a_typed_card_number_are_silent(settings, tmp_path):
    """A card number typed on the keypad outside a secure IVR node: the store masks its digits,
    and playback must not give them away as tones either."""
    path = write_recording(tmp_path / "keys.wav")
    card = "4111111111111111"
    keys = [DtmfDigit(call_id=CALL_ID, t=0.5 + 0.15 * i, digit=d, source="inband", duration=0.08)
            for i, d in enumerate(card)]
    first, last = keys[0].t, keys[-1].t
    events = [*call_events()[:2], *keys, call_events()[-1]]
    asyncio.run(store_call(settings, path, events))
    with as_token(client_for(settings)) as client:
        data, _ = samples_of(client.get(url()).content)
    quiet = slice(int((first - REDACTION_PAD_S) * RATE), int((last + KEY_TONE_S + REDACTION_PAD_S) * RATE))
    assert not data[quiet].any()
    assert data[: quiet.start].any() and data[quiet.stop:].any()


def test_a_mono_recording_has_no_agent_channel(settings, tmp_path):
    path = tmp_path / "mono.wav"
    wav = IncrementalWav(path, sample_rate=RATE, channels=1)
    wav.write(tones()[:, 1].copy())
    wav.close()
    asyncio.run(store_call(settings, path))
    with as_token(client_for(settings)) as client:
        caller, _ = samples_of(client.get(url("caller")).content)
        assert caller.shape[1] == 1 and caller[: silent_window().start].any()
        missing = client.get(url("agent"))
        assert missing.status_code == 404 and "caller only" in missing.json()["detail"]
        path.unlink()
        gone = client.get(url())
        assert gone.status_code == 404 and "not on this host" in gone.json()["detail"]


def test_the_route_is_absent_without_recordings(settings):
    app = create_console_app(token=TOKEN, broker_host=None, broker_port=0, topic_prefix="cc")
    with as_token(TestClient(app)) as client:
        assert client.get(url()).status_code == 404
        page = client.get(f"/calls/{CALL_ID}")
        assert 'id="scorecard"' in page.text and "/static/scorecard.js" in page.text
        assert 'id="player"' in page.text
