"""The README's first run, exactly as written, from a fresh clone with default settings.

``scripts/run.sh`` in a clean clone (relative ``var`` data dir, Kamailio front, embedded broker,
console, CRM API on their default ports), the console URL it prints with the token it generated,
then the README's test call from a second "terminal" and ``calls list``, then SIGTERM. It once exited at once: Kamailio changes its working directory,
so a relative data dir pointed it at a pid file it could not create.

The clone gets the committed files plus the current working tree (rsync, so this test checks the
code as it is now) and a ``.venv`` that borrows the project's installed dependencies instead of
installing them again (``setup.sh`` then finds it installed and installs nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from telephony.kamailio import kamailio_binary
from tests.conftest import ROOT, have

pytestmark = [
    pytest.mark.sip,
    pytest.mark.slow,
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
    pytest.mark.skipif(not have("git") or not have("rsync"), reason="git and rsync are needed to clone"),
]

# The README's commands, verbatim.
RUN = ["scripts/run.sh"]
CALL = [".venv/bin/callcenter", "call", "sip:ivr@127.0.0.1:5060", "--play", "audio_fixtures/calm_billing.wav",
        "--dtmf", "1"]
LIST = [".venv/bin/callcenter", "calls", "list"]
DEFAULT_PORTS = {"udp": (5060, 5070, 5071), "tcp": (5060, 8080, 8081, 18830)}


def _port_busy(kind: int, port: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is free
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _clone(dest: Path) -> None:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True, capture_output=True)
    subprocess.run(["rsync", "-a", "--exclude", ".venv", "--exclude", ".git", "--exclude", "var",
                    "--exclude", "__pycache__", "--exclude", ".mypy_cache", "--exclude", ".pytest_cache",
                    "--exclude", ".ruff_cache", f"{ROOT}/", f"{dest}/"], check=True, capture_output=True)
    _borrow_venv(dest)


def _borrow_venv(dest: Path) -> None:
    """A small ``.venv`` in the clone that imports the clone's code and the project's installed
    dependencies, stamped the way ``setup.sh`` checks (``.installed-<sha1(pyproject)[:12]>-``).

    Not a symlink to the project's ``.venv``: its editable install points at the project, so the
    clone's code would not run, and stamping the shared venv could hide a missing install."""
    shared = ROOT / ".venv"
    base = Path(os.path.realpath(shared / "bin" / "python"))
    venv = dest / ".venv"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    shared_site = next(shared.glob("lib/python3*/site-packages"))
    own_site = next(venv.glob("lib/python3*/site-packages"))
    # plain path lines: the shared site's own .pth files (its editable finder) are not run
    (own_site / "callcenter-clone.pth").write_text(f"{dest}\n{shared_site}\n")
    script = venv / "bin" / "callcenter"
    script.write_text(f"#!{venv}/bin/python\nimport sys\nfrom callcenter.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    sha = hashlib.sha1((dest / "pyproject.toml").read_bytes()).hexdigest()[:12]
    (venv / f".installed-{sha}-").touch()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_") and k != "VOSK_MODEL_PATH"}
    env.pop("VIRTUAL_ENV", None)
    return env


def _wait_answering(proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while "callcenter: answering" not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"run.sh exited ({proc.returncode}): {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"not answering after {timeout_s} s: {log.read_text()[-3000:]}"
        time.sleep(0.5)


def test_readme_first_run_from_a_fresh_clone(tmp_path: Path) -> None:
    busy = [p for kind, ports in (("udp", DEFAULT_PORTS["udp"]), ("tcp", DEFAULT_PORTS["tcp"])) for p in ports
            if _port_busy(socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM, p)]
    if busy:
        pytest.skip(f"default ports in use on this machine: {busy}")
    clone = tmp_path / "callcenter"
    _clone(clone)
    env = _env()
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(RUN, cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        _wait_answering(proc, log, timeout_s=180)
        # no default secret: the token was generated owner-only and the printed console URL opens
        token_file = clone / "var" / "secrets" / "console_token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        url = re.search(r"open the console at (\S+)", log.read_text()).group(1)  # type: ignore[union-attr]
        assert url == f"http://127.0.0.1:8080/?token={token_file.read_text().strip()}"
        page = httpx.get(url, follow_redirects=True, timeout=30)
        assert page.status_code == 200 and "token" not in str(page.url)
        assert httpx.get("http://127.0.0.1:8080/", timeout=30).status_code == 401
        call = subprocess.run(CALL, cwd=clone, env=env, capture_output=True, text=True, timeout=120)
        assert call.returncode == 0, call.stdout[-2000:] + call.stderr[-2000:]
        result = json.loads(call.stdout[call.stdout.index("{"):])
        assert result["answered"] and result["call_id"]
        # the record is written after the call ends: poll the README's listing for it
        deadline = time.monotonic() + 60
        while True:
            listing = subprocess.run(LIST, cwd=clone, env=env, capture_output=True, text=True, timeout=60)
            if result["call_id"][:20] in listing.stdout:  # the table may wrap a long id
                break
            assert time.monotonic() < deadline, f"call not listed: {listing.stdout[-1500:]}{listing.stderr[-1500:]}"
            time.sleep(1)
        # everything lives under the clone's own relative data dir
        var = clone / "var"
        assert (var / "callcenter.db").exists()
        assert (var / "kamailio" / "kamailio.cfg").exists()
        assert str(var / "kamailio") in (var / "kamailio" / "kamailio.cfg").read_text()
        assert list((var / "recordings").glob("*.wav"))
        # and the clone's code served it, not the project's
        workers = subprocess.run(["pgrep", "-f", f"{clone}/.venv/bin/python -m callcenter.worker"],
                                 capture_output=True, text=True)
        assert workers.stdout.split(), "no worker runs from the clone"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # run.sh execs serve: this is serve
        try:
            rc = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert rc == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text()[-3000:]
    shutil.rmtree(clone / "var", ignore_errors=True)
