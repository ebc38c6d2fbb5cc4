"""Run ``telephony.test_caller`` in another process (pjsua2 allows one endpoint per process)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def start_caller(uri: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "telephony.test_caller", uri, "--json", *args,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )


async def caller_result(proc: asyncio.subprocess.Process, timeout_s: float = 30.0) -> dict:
    """The caller's JSON result (the stdout line that is a JSON object)."""
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        raise
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.startswith("{")]
    assert lines, f"test caller printed no result; rc={proc.returncode} stderr={err.decode()[-2000:]}"
    return json.loads(lines[-1])
