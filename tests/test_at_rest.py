"""Recordings and the store at rest: owner-only files, recordings encrypted with a key from the
settings (and read back by replay), silence in the recording while the IVR collects secure input."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callcenter.call_spool import CallSpool
from callcenter.replay import replay_file
from callcenter.settings import SettingsError, load_settings
from live.outbox import Outbox
from summaries.redact import Redactor
from summaries.store import CrmStore
from telephony.recorder import FLUSH_FRAMES, MUTE_TAIL_FRAMES, StereoRecorder
from telephony.recording_crypto import RecordingDecryptError, decrypt_recording, is_encrypted
from telephony.settings import RecordingSettings
from tests.conftest import FIXTURES
from tests.ivr_script import key, run_call, write_prompts

RATE = 16000
TICK = RATE // 50
KEY = bytes(range(32))
KEY_B64 = base64.b64encode(KEY).decode()


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A umask that would leave files world-readable: owner-only must not depend on it."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def ticks(n: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
    rng = np.random.default_rng(seed)
    return [(rng.integers(-8000, 8000, TICK, dtype=np.int16).tobytes(),
             rng.integers(-8000, 8000, TICK, dtype=np.int16).tobytes()) for _ in range(n)]


def record(path: Path, frames: list[tuple[bytes, bytes]], key: bytes | None = None) -> Path:
    rec = StereoRecorder(path, sample_rate=RATE, key=key)
    for played, heard in frames:
        rec.add(played, heard)
    rec.close()
    return path


# -- owner-only files ------------------------------------------------------------------------------


@pytest.mark.parametrize("encrypted", [False, True])
def test_recording_file_0600_and_folder_0700_whatever_the_umask(tmp_path: Path, loose_umask, encrypted) -> None:
    path = record(tmp_path / "recordings" / "call.wav", ticks(60), KEY if encrypted else None)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_an_existing_recording_folder_is_tightened(tmp_path: Path, loose_umask) -> None:
    folder = tmp_path / "recordings"
    folder.mkdir(mode=0o777)
    record(folder / "call.wav", ticks(5))
    assert mode(folder) == 0o700


def test_store_outbox_and_spool_are_owner_only(tmp_path: Path, loose_umask) -> None:
    store = CrmStore(f"sqlite:///{tmp_path / 'callcenter.db'}")
    store.start()
    store.stop()
    assert mode(tmp_path / "callcenter.db") == 0o600
    wal = [p for p in tmp_path.glob("callcenter.db-*")]
    assert all(mode(p) == 0o600 for p in wal), [(p.name, oct(mode(p))) for p in wal]
    box = Outbox(tmp_path / "mqtt-outbox-0.sqlite")
    box.close()
    assert mode(tmp_path / "mqtt-outbox-0.sqlite") == 0o600
    spool = CallSpool(tmp_path, 0)
    spool.open("call-1", recording=None)
    files = list(spool.dir.glob("*.jsonl"))
    spool.close()
    assert len(files) == 1 and mode(files[0]) == 0o600
    assert mode(spool.dir) == 0o700


# -- encryption at rest ----------------------------------------------------------------------------


def test_encrypted_recording_is_no_wav_and_decrypts_to_the_plain_recording(tmp_path: Path) -> None:
    frames = ticks(2 * FLUSH_FRAMES + 7)
    plain = record(tmp_path / "plain.wav", frames)
    enc = record(tmp_path / "call.wav.enc", frames, KEY)
    raw = enc.read_bytes()
    assert not raw.startswith(b"RIFF") and is_encrypted(enc) and not is_encrypted(plain)
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(enc))
    pcm = plain.read_bytes()[44:]
    for i in range(0, len(pcm) - 64, 4096):  # no stretch of the audio is readable in the file
        assert pcm[i:i + 64] not in raw
    out = decrypt_recording(enc, KEY)
    assert out.complete and out.channels == 2 and out.sample_rate == RATE
    assert out.pcm == pcm
    wav, rate = sf.read(io.BytesIO(out.wav_bytes()), dtype="int16")
    ref, _ = sf.read(str(plain), dtype="int16")
    assert rate == RATE and np.array_equal(wav, ref)


def test_a_crash_leaves_every_whole_chunk_readable(tmp_path: Path) -> None:
    rec = StereoRecorder(tmp_path / "live.wav.enc", sample_rate=RATE, key=KEY)
    frames = ticks(3 * FLUSH_FRAMES + 10)
    for played, heard in frames:
        rec.add(played, heard)
    raw = (tmp_path / "live.wav.enc").read_bytes()  # never closed: the process "died" here
    (tmp_path / "cut.wav.enc").write_bytes(raw[:-100])  # and the last write was cut short
    whole = decrypt_recording(tmp_path / "live.wav.enc", KEY)
    cut = decrypt_recording(tmp_path / "cut.wav.enc", KEY)
    assert not whole.complete and len(whole.pcm) == 3 * FLUSH_FRAMES * TICK * 4
    assert not cut.complete and len(cut.pcm) == 2 * FLUSH_FRAMES * TICK * 4
    assert whole.pcm.startswith(cut.pcm)
    rec.close()
    assert decrypt_recording(tmp_path / "live.wav.enc", KEY).complete


def test_wrong_key_tampering_and_reordering_are_refused(tmp_path: Path) -> None:
    enc = record(tmp_path / "call.wav.enc", ticks(2 * FLUSH_FRAMES), KEY)
    with pytest.raises(RecordingDecryptError, match="wrong recording key"):
        decrypt_recording(enc, bytes(32))
    raw = bytearray(enc.read_bytes())
    flipped = bytearray(raw)
    flipped[100] ^= 1
    (tmp_path / "flipped.wav.enc").write_bytes(flipped)
    with pytest.raises(RecordingDecryptError):
        decrypt_recording(tmp_path / "flipped.wav.enc", KEY)
    # swap the two audio chunks: each authenticates its index
    pos = 32
    chunks = []
    while pos < len(raw):
        (length,) = struct.unpack_from("<I", raw, pos)
        chunks.append(bytes(raw[pos:pos + 16 + length]))
        pos += 16 + length
    assert len(chunks) == 3  # two seconds of audio and the end marker
    (tmp_path / "swapped.wav.enc").write_bytes(bytes(raw[:32]) + chunks[1] + chunks[0] + chunks[2])
    with pytest.raises(RecordingDecryptError):
        decrypt_recording(tmp_path / "swapped.wav.enc", KEY)
    (tmp_path / "dropped_end.wav.enc").write_bytes(bytes(raw[:32]) + chunks[0] + chunks[1])
    assert not decrypt_recording(tmp_path / "dropped_end.wav.enc", KEY).complete


def test_key_settings_from_value_file_and_errors(tmp_path: Path) -> None:
    assert RecordingSettings().key() is None
    assert RecordingSettings(encryption_key=KEY_B64).key() == KEY
    key_file = tmp_path / "recording.key"
    key_file.write_text(KEY_B64 + "\n")
    settings = load_settings(overrides={"sip.recording.encryption_key_file": str(key_file)}, environ={})
    assert settings.sip.recording.key() == KEY
    env = load_settings(environ={"CALLCENTER_SIP__RECORDING__ENCRYPTION_KEY": KEY_B64})
    assert env.sip.recording.key() == KEY
    with pytest.raises(SettingsError, match="32 bytes"):
        load_settings(overrides={"sip.recording.encryption_key": base64.b64encode(b"short").decode()}, environ={})
    with pytest.raises(SettingsError, match="not base64"):
        load_settings(overrides={"sip.recording.encryption_key": "not base64!"}, environ={})
    with pytest.raises(ValueError, match="cannot read"):
        RecordingSettings(encryption_key_file=tmp_path / "missing.key").key()


def _encrypt_fixture(src: Path, dst: Path) -> Path:
    """A real call recording rewritten through the encrypting recorder."""
    audio, rate = sf.read(str(src), dtype="int16", always_2d=True)
    if audio.shape[1] == 1:
        audio = np.column_stack((np.zeros(len(audio), np.int16), audio[:, 0]))
    rec = StereoRecorder(dst, sample_rate=rate, key=KEY)
    step = rate // 50
    for i in range(0, len(audio) - step + 1, step):
        rec.add(audio[i:i + step, 0].tobytes(), audio[i:i + step, 1].tobytes())
    rec.close()
    plain = dst.parent / dst.name.removesuffix(".enc")
    sf.write(str(plain), audio[: (len(audio) // step) * step], rate, subtype="PCM_16")
    return plain


def test_replay_reads_an_encrypted_recording_with_the_key_and_fails_clearly_without(tmp_path: Path) -> None:
    enc = tmp_path / "dtmf_menu.wav.enc"
    plain = _encrypt_fixture(FIXTURES / "dtmf_menu.wav", enc)
    base = {"data_dir": str(tmp_path / "data"), "asr.engine": "none", "mqtt.enabled": False}
    keyed = load_settings(overrides={**base, "sip.recording.encryption_key": KEY_B64}, environ={})
    keyless = load_settings(overrides=base, environ={})

    def kinds(res) -> list[tuple[str, str]]:
        return [(e.to_dict()["type"], str(e.to_dict().get("digit", ""))) for e in res.events]

    from_enc = asyncio.run(replay_file(enc, keyed, None))
    from_plain = asyncio.run(replay_file(plain, keyed, None))
    assert from_enc.error is None, from_enc.error
    assert from_enc.audio_seconds == pytest.approx(from_plain.audio_seconds)
    assert kinds(from_enc) == kinds(from_plain)
    assert any(t == "dtmf" for t, _ in kinds(from_enc))
    no_key = asyncio.run(replay_file(enc, keyless, None))
    assert no_key.error is not None and "encrypted" in no_key.error and "encryption_key" in no_key.error
    wrong = load_settings(overrides={**base, "sip.recording.encryption_key": base64.b64encode(bytes(32)).decode()},
                          environ={})
    bad = asyncio.run(replay_file(enc, wrong, None))
    assert bad.error is not None and "wrong recording key" in bad.error


# -- silence while the IVR collects secure input ------------------------------------------------------


def test_muted_recording_is_silent_on_both_channels_with_a_tail(tmp_path: Path) -> None:
    frames = ticks(200)
    rec = StereoRecorder(tmp_path / "call.wav", sample_rate=RATE)
    for i, (played, heard) in enumerate(frames):
        if i == 50:
            rec.mute(True)
        if i == 100:
            rec.mute(False)
        rec.add(played, heard)
    rec.close()
    audio, _ = sf.read(str(tmp_path / "call.wav"), dtype="int16")
    per_tick = audio.reshape(200, TICK, 2)
    silent = [i for i in range(200) if not per_tick[i].any()]
    assert silent == list(range(50, 100 + MUTE_TAIL_FRAMES))
    assert rec.muted_frames == 50 + MUTE_TAIL_FRAMES
    assert np.array_equal(per_tick[10, :, 1], np.frombuffer(frames[10][1], np.int16))


async def test_secure_collect_mutes_the_recording_from_its_start_to_its_end(tmp_path: Path) -> None:
    script = [(2.5, key("4"))] + [(5.0 + i * 0.3, key(d)) for i, d in enumerate("83125#")]
    result, media = await run_call(write_prompts(tmp_path), script)
    assert result.secure_value("pin") == "83125"
    names = [c[0] for c in media.calls if c[0] in ("secure", "play")]
    secure = [c for c in media.calls if c[0] == "secure"]
    assert secure == [("secure", True), ("secure", False)]
    on, off = media.calls.index(("secure", True)), media.calls.index(("secure", False))
    collect_prompts = [c for c in media.calls[on:off] if c[0] == "play"]
    assert collect_prompts, names  # the node's prompt is inside the muted span


def test_operator_decrypts_a_recording_for_listening(tmp_path: Path) -> None:
    frames = ticks(FLUSH_FRAMES + 3)
    enc = record(tmp_path / "call.wav.enc", frames, KEY)
    plain = record(tmp_path / "plain.wav", frames)
    key_file = tmp_path / "recording.key"
    key_file.write_text(KEY_B64)
    out = tmp_path / "listen" / "call.wav"
    done = subprocess.run([sys.executable, "-m", "telephony.recording_crypto", str(enc), str(out),
                           "--key-file", str(key_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == plain.read_bytes() and mode(out) == 0o600
    wrong = tmp_path / "wrong.key"
    wrong.write_text(base64.b64encode(bytes(32)).decode())
    failed = subprocess.run([sys.executable, "-m", "telephony.recording_crypto", str(enc), str(out),
                             "--key-file", str(wrong)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2 and "wrong recording key" in failed.stderr


async def test_secure_node_says_so_on_entry_so_the_live_feed_masks_its_keys(tmp_path: Path) -> None:
    script = [(2.5, key("4"))] + [(5.0 + i * 0.3, key(d)) for i, d in enumerate("83125#")]
    _, media = await run_call(write_prompts(tmp_path), script)
    enter = next(s for s in media.steps("enter") if s.node == "pin")
    assert enter.detail == {"kind": "collect", "secure": True}
    # the live redactor knows no node names (no settings): the entry step alone must switch it
    live = Redactor(keep_original=False)
    typed = [replace(key(d), call_id=enter.call_id, t=5.0 + i * 0.3) for i, d in enumerate("83125#")]
    out = [live.redact_event(e) for e in [enter, *typed]]
    assert [e.digit for e in out[1:]] == ["X"] * 6  # type: ignore[attr-defined]
