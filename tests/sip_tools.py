"""Helpers for tests that run real SIP peers (sipp) on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from telephony.kamailio import kamailio_binary, modules_dir
from telephony.net import free_port

__all__ = ["free_port", "needs_kamailio_tls", "sipp_counts", "sipp_uac", "sipp_uas"]

needs_kamailio_tls = pytest.mark.skipif(
    kamailio_binary() is None or not (Path(modules_dir() or "/nonexistent") / "tls.so").exists(),
    reason="kamailio and its tls module are needed (apt-get install kamailio kamailio-tls-modules)")
"""SIP over TLS at the front: Kamailio's tls module is a Debian package of its own."""


def sipp_uas(port: int, workdir: Path, *, max_calls: int = 100) -> subprocess.Popen:
    """A sipp UAS (answers INVITEs, no media) that writes its statistics to workdir."""
    return subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-m", str(max_calls), "-bg"[:0] or "-nostdin",
         "-trace_stat", "-stf", str(workdir / f"uas{port}.csv"), "-fd", "1"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def sipp_uac(target: str, workdir: Path, *, calls: int, rate: int = 5, local_port: int | None = None,
             timeout_s: int = 60, extra: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = ["sipp", "-sn", "uac", target, "-i", "127.0.0.1", "-p", str(local_port or free_port()),
           "-m", str(calls), "-r", str(rate), "-nostdin", "-timeout", f"{timeout_s}s", "-timeout_error",
           "-trace_stat", "-stf", str(workdir / "uac.csv"), "-fd", "1"] + (extra or [])
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout_s + 15)


def sipp_counts(csv: Path) -> dict[str, int]:
    """Last row of a sipp statistics CSV: SuccessfulCall(C), FailedCall(C), TotalCallCreated."""
    lines = [ln for ln in csv.read_text().splitlines() if ln.strip()]
    head = lines[0].split(";")
    last = lines[-1].split(";")
    row = dict(zip(head, last, strict=False))
    return {
        "success": int(row.get("SuccessfulCall(C)", 0)),
        "failed": int(row.get("FailedCall(C)", 0)),
        "created": int(row.get("TotalCallCreated", 0)),
        "incoming": int(row.get("IncomingCall(C)", 0) or 0),
    }
