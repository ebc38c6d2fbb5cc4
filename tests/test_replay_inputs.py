"""`callcenter replay` inputs and outcome: a folder picks up every format a single file takes
(``.mp3`` included), and ``--publish`` says so in its exit code when nothing reached the broker.
The real CLI in a subprocess, a real mosquitto for the control case."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from live.broker import EmbeddedBroker, find_mosquitto
from telephony.net import free_port
from tests.test_replay_cli import cli

pytestmark = pytest.mark.slow


def tone(path: Path, seconds: float = 1.5, **kw: str) -> Path:
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * t), 16000, **kw)
    return path


def test_folder_replay_includes_mp3(tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    tone(calls / "a.wav")
    tone(calls / "b.mp3", format="MP3")
    tone(calls / "c.flac")
    (calls / "notes.txt").write_text("not a recording")
    res = cli("replay", "--engine", "none", "--no-store", str(calls), data_dir=tmp_path / "var")
    assert res.returncode == 0, res.stderr[-2000:]
    replayed = [ln[3:] for ln in res.stdout.splitlines() if ln.startswith("== ")]
    assert [Path(p).name for p in replayed] == ["a.wav", "b.mp3", "c.flac"]
    assert "3 of 3 recordings OK" in res.stderr


def test_publish_with_no_broker_exits_non_zero_with_a_clear_line(tmp_path):
    wav = tone(tmp_path / "x.wav")
    port = free_port()  # nothing listens here
    env = {"CALLCENTER_MQTT__HOST": "127.0.0.1", "CALLCENTER_MQTT__PORT": str(port)}
    res = cli("replay", "--publish", "--engine", "none", "--no-store", str(wav), data_dir=tmp_path / "var", env=env)
    assert res.returncode == 3, (res.returncode, res.stderr[-2000:])
    line = next(ln for ln in res.stderr.splitlines() if ln.startswith("error: --publish"))
    assert f"nothing reached the MQTT broker at 127.0.0.1:{port}" in line
    assert "wait in" in line and "mqtt-outbox-replay" in line


@pytest.mark.broker
@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto binary missing (apt-get install mosquitto)")
def test_publish_to_a_running_broker_exits_zero(tmp_path):
    wav = tone(tmp_path / "x.wav")
    port = free_port()

    async def run() -> object:
        async with EmbeddedBroker(port=port, backend="mosquitto"):
            env = {"CALLCENTER_MQTT__HOST": "127.0.0.1", "CALLCENTER_MQTT__PORT": str(port)}
            return await asyncio.to_thread(cli, "replay", "--publish", "--engine", "none", "--no-store", str(wav),
                                           data_dir=tmp_path / "var", env=env)

    res = asyncio.run(run())
    assert res.returncode == 0, res.stderr[-2000:]  # type: ignore[attr-defined]
    assert "error:" not in res.stderr  # type: ignore[attr-defined]
