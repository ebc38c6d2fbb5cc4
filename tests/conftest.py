"""Shared fixtures: real speech rendered by espeak-ng, fixture paths, tool checks."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "audio_fixtures"


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


@pytest.fixture(scope="session")
def tts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tts")


@pytest.fixture(scope="session")
def tts(tts_dir: Path):
    """Render speech with espeak-ng (+ sox for the rate): ``tts(text, voice=..., rate=16000)``.

    Returns a mono 16-bit WAV path; results are cached per session by their arguments.
    """
    if not have("espeak-ng") or not have("sox"):
        pytest.skip("espeak-ng and sox are needed to render speech (apt-get install espeak-ng sox)")

    def render(
        text: str,
        *,
        voice: str = "en-us",
        speed: int = 150,
        pitch: int = 50,
        amplitude: int = 100,
        sample_rate: int = 16000,
        pad_before: float = 0.0,
        pad_after: float = 0.0,
    ) -> Path:
        key = hashlib.sha1(repr((text, voice, speed, pitch, amplitude, sample_rate, pad_before, pad_after)).encode()).hexdigest()[:16]
        out = tts_dir / f"{key}.wav"
        if out.exists():
            return out
        raw = tts_dir / f"{key}.raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", str(amplitude), "-w", str(raw), text],
            check=True, capture_output=True,
        )
        # -D: no dither. sox dithers by default when it resamples, with a random seed, so each
        # session heard slightly different audio and a borderline recognition came and went.
        cmd = ["sox", "-D", str(raw), "-r", str(sample_rate), "-c", "1", "-b", "16", str(out)]
        if pad_before or pad_after:
            cmd += ["pad", str(pad_before), str(pad_after)]
        subprocess.run(cmd, check=True, capture_output=True)
        return out

    return render


PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="module")
def pg_url():
    """A throwaway database on the PostgreSQL at 127.0.0.1:5432 (dropped afterwards); skips with
    the reason when no PostgreSQL answers there."""
    import uuid

    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(exc).__name__})")
    name = f"cc_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
