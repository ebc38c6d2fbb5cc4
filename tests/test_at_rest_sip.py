"""Secure IVR collection and encrypted recordings with real SIP calls through a worker.

The shipped flow with its account-number node marked ``secure``; recordings encrypted with a key
from the settings. Two callers key the menu choice and an account number, one as RFC 4733 events,
one as in-band tones. Checked: the recording on disk is encrypted and owner-only, decrypts to the
call, holds no DTMF tone of the account number (Goertzel, ``speech.dtmf``) while the menu key's
tone is still found in it (the detector works on this very file), and neither the call record nor
the CRM store holds the digits; ``callcenter replay`` reads the file with the key only.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf
import yaml
from scipy.signal import correlate, resample_poly

from callcenter.serve import Service, start_service, stop_service
from callcenter.settings import DtmfSettings, load_settings
from callcenter.worker import call_record_path
from ivr.flow import SAMPLE_FLOW
from speech.audio_io import resample
from speech.dtmf import DtmfStage
from speech.frames import PIPELINE_RATE, Party
from speech.ports import consecutive_free_ports
from telephony.recording_crypto import decrypt_recording
from tests.sip_tools import free_port
from tests.stage_harness import frames_from_tracks, run_stages
from tests.test_serve_calls import place_call, short_timeout_flow, stored, wait_record

pytestmark = [pytest.mark.sip, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

KEY = os.urandom(32)
KEY_B64 = base64.b64encode(KEY).decode()
ACCOUNT = "987654"
"""No key of it is the menu key (1), so any of its tones in the recording is a leak."""


def secure_flow(tmp: Path) -> Path:
    path = short_timeout_flow(tmp)
    data = yaml.safe_load(path.read_text())
    data["nodes"]["billing_account"]["secure"] = True
    path.write_text(yaml.safe_dump(data))
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("at_rest")
    settings = load_settings(overrides={
        "data_dir": str(tmp / "data"), "sip.port": free_port(), "sip.worker_base_port": consecutive_free_ports(1),
        "sip.workers": 1, "sip.front": "none", "mqtt.enabled": False, "console.enabled": False,
        "asr.engine": "whisper", "ivr.flow": str(secure_flow(tmp)),
        "sip.recording.encryption_key": KEY_B64,
    }, environ={})
    svc = await start_service(settings, log_dir=tmp / "logs")
    try:
        yield svc
    finally:
        await stop_service(svc)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def calls(service: Service) -> dict[str, dict[str, Any]]:
    uri = service.sip_uri
    keys = ("--dtmf", "1", "--dtmf", ACCOUNT + "#", "--dtmf-delay", "2", "--hangup-after", "12")
    jobs = {"rfc4733": place_call(uri, *keys), "inband": place_call(uri, *keys, "--inband")}
    results = dict(zip(jobs, await asyncio.gather(*jobs.values()), strict=True))
    out = {}
    for mode, res in results.items():
        assert res["answered"], (mode, res)
        out[mode] = {"caller": res, "record": await wait_record(service, res["call_id"])}
    return out


def tones_in(audio: np.ndarray, rate: int) -> str:
    """Keys the project's Goertzel detector finds on either channel of a stereo recording."""
    found = ""
    for ch in range(audio.shape[1]):
        track = audio[:, ch]
        if rate != PIPELINE_RATE:
            track = resample(track, rate)
        events = run_stages([DtmfStage(DtmfSettings())], frames_from_tracks({Party.CALLER: track}))
        found += "".join(getattr(e, "digit", "") for e in events)
    return found


@pytest.mark.parametrize("mode", ["rfc4733", "inband"])
async def test_secure_collection_routes_and_keeps_the_digits_out_of_record_and_store(
    service: Service, calls, mode: str
) -> None:
    call = calls[mode]
    record = call["record"]
    ivr = record["ivr"]
    assert ivr["outcome"] == "queue" and ivr["queue"] == "billing"
    assert ivr["path"][:3] == ["welcome", "main_menu", "billing_account"]
    assert ivr["collected"] == {"account_number": "*" * len(ACCOUNT)}
    assert ACCOUNT not in json.dumps(record)
    assert record_mode(service, call["caller"]["call_id"]) == 0o600

    detail = stored(service, call["caller"]["call_id"])
    assert detail is not None and detail.summary is not None  # the call is otherwise analyzed
    assert detail.events[-1]["type"] == "call.ended"
    keys = [e for e in detail.events if e["type"] == "dtmf"]
    assert keys[0]["digit"] == "1"
    assert {e["source"] for e in keys} == {mode}
    masked = [e["digit"] for e in keys[1:]]
    assert len(masked) >= len(ACCOUNT) and set(masked) == {"X"}, masked
    collect = [e for e in detail.events if e["type"] == "ivr.step" and e["action"] == "collect"]
    assert collect and collect[0]["detail"] == {"store_as": "account_number", "length": len(ACCOUNT), "secure": True}
    # nothing of the number anywhere in the store's files (events, originals, summary, WAL)
    for data, mode_bits in store_files(service):
        assert ACCOUNT.encode() not in data
        assert mode_bits == 0o600


def encrypted_owner_only_recording(path: Path) -> tuple[np.ndarray, int]:
    """Check the file at rest; its decrypted audio."""
    assert path.name.endswith(".wav.enc")
    raw = path.read_bytes()
    assert not raw.startswith(b"RIFF") and b"WAVE" not in raw[:64]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    plain = decrypt_recording(path, KEY)
    assert plain.complete and plain.channels == 2
    audio, rate = sf.read(io.BytesIO(plain.wav_bytes()), dtype="int16", always_2d=True)
    return audio, rate


def prompt_match(played: np.ndarray, rate: int) -> float:
    """Peak normalized correlation of the welcome prompt's first second with the start of the
    recording's played channel."""
    prompt, prompt_rate = sf.read(str(SAMPLE_FLOW.parent.parent / "prompts" / "welcome.wav"), dtype="float64")
    if prompt_rate != rate:
        prompt = resample_poly(prompt, rate, prompt_rate)
    ref = prompt[:rate]
    head = played[: 3 * rate].astype(np.float64)
    corr = correlate(head, ref, mode="valid")
    energy = np.sqrt(np.convolve(head**2, np.ones(len(ref)), mode="valid") * np.dot(ref, ref))
    return float(np.max(corr / np.maximum(energy, 1e-9)))


def record_mode(service: Service, call_id: str) -> int:
    return stat.S_IMODE(call_record_path(service.settings.data_dir, call_id).stat().st_mode)


def store_files(service: Service) -> list[tuple[bytes, int]]:
    db = Path(service.settings.store_url.removeprefix("sqlite:///"))
    return [(f.read_bytes(), stat.S_IMODE(f.stat().st_mode)) for f in [db, *db.parent.glob(db.name + "-*")]]


@pytest.mark.parametrize("mode", ["rfc4733", "inband"])
async def test_recording_is_encrypted_owner_only_and_silent_while_keys_are_typed(
    service: Service, calls, mode: str
) -> None:
    audio, rate = encrypted_owner_only_recording(Path(calls[mode]["record"]["recording"]))
    assert len(audio) / rate >= 10
    assert prompt_match(audio[:, 0], rate) > 0.9  # decrypted: the welcome prompt as played
    found = await asyncio.to_thread(tones_in, audio, rate)
    assert not set(found) & set(ACCOUNT + "#"), found
    if mode == "inband":
        assert "1" in found  # the menu key (not secure) is heard: the detector works on this file
    # one silent stretch covers the collection (from the node's prompt to after the last key)
    silent = ~np.any(audio.reshape(-1, rate // 50, 2)[: len(audio) // (rate // 50)] != 0, axis=(1, 2))
    longest = run = 0
    for s in silent:
        run = run + 1 if s else 0
        longest = max(longest, run)
    assert longest * 0.02 >= 2.0  # measured: 3.5 s muted, 0.8 s longest pause unmuted


def replay_cli(path: Path, data_dir: Path, key: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLCENTER_", "VOSK_"))}
    if key is not None:
        env["CALLCENTER_SIP__RECORDING__ENCRYPTION_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "callcenter", "--data-dir", str(data_dir), "replay", "--engine", "none", str(path)],
        capture_output=True, text=True, timeout=300, env=env,
    )


async def test_replay_reads_the_encrypted_call_with_the_key_only(service: Service, calls, tmp_path: Path) -> None:
    path = Path(calls["inband"]["record"]["recording"])
    ok = await asyncio.to_thread(replay_cli, path, tmp_path / "with", KEY_B64)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "call.ended" in ok.stdout or "ended" in ok.stdout
    refused = await asyncio.to_thread(replay_cli, path, tmp_path / "without", None)
    assert refused.returncode == 2
    assert "encrypted" in refused.stderr and "encryption_key" in refused.stderr
