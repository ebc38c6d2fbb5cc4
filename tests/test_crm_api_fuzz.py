"""schemathesis against the running CRM API (`callcenter api`, real uvicorn on 127.0.0.1, bearer
token, a seeded SQLite store): every check, zero 5xx, zero schema violations.

Bounded (a few examples per operation and a fixed seed) so it stays around a minute; the
settings it needs beyond the command line are in tests/schemathesis.toml.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from summaries.sample_calls import angry_tech_call, billing_call
from summaries.store import CrmStore
from summaries.summarizer import summarize
from telephony.net import free_port

pytestmark = pytest.mark.slow

TOKEN = "fuzz-token"
CONFIG = Path(__file__).with_name("schemathesis.toml")
ST = shutil.which("st", path=str(Path(sys.executable).parent))


@pytest.fixture
def api(tmp_path):
    var = tmp_path / "var"
    var.mkdir()
    store = CrmStore(f"sqlite:///{var / 'callcenter.db'}")
    store.start()
    for ev in (billing_call(), angry_tech_call()):
        store.save_call(ev, summarize(ev))
    store.stop()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLCENTER_", "VOSK_"))}
    env["CALLCENTER_STORE__API_TOKEN"] = TOKEN
    proc = subprocess.Popen(
        [sys.executable, "-m", "callcenter", "--data-dir", str(var), "api", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # generous: a loaded CI machine
    while True:
        try:
            httpx.get(base + "/openapi.json", timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"callcenter api did not start: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.1)
    yield base
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    assert "Traceback" not in err, err[-3000:]


def test_schema_needs_the_token(api):
    assert httpx.get(api + "/openapi.json").status_code == 401
    assert httpx.get(api + "/docs").status_code == 401
    assert httpx.get(api + "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


@pytest.mark.skipif(ST is None, reason="schemathesis not installed (pip install -e .[test])")
def test_schemathesis_finds_no_server_error_and_no_schema_violation(api, tmp_path):
    assert ST is not None
    res = subprocess.run(
        [ST, "--config-file", str(CONFIG), "run", f"{api}/openapi.json",
         "-H", f"Authorization: Bearer {TOKEN}", "--checks", "all", "--max-examples", "3", "--seed", "1",
         "--request-timeout", "30", "--no-color", "--report", "junit", "--report-dir", str(tmp_path / "st")],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    summary = out.split("SUMMARY")[-1]
    selected = re.search(r"Selected: (\d+)/(\d+)", summary)
    assert selected is not None and selected.group(1) == selected.group(2), out[-3000:]
    assert int(selected.group(2)) >= 6, out[-3000:]  # the API's operations, POST /api/tasks/{id}/done included
    assert f"Tested: {selected.group(2)}" in summary, out[-3000:]  # every operation was exercised
    assert " passed" in summary and "errored" not in summary and "Failures:" not in summary, summary
