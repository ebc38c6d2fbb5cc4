"""Run sipp against an endpoint on 127.0.0.1, bounded in time, from a folder with a ``pcap`` link."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from telephony.net import free_port

SCENARIOS = Path(__file__).resolve().parent
PCAP_DIR = Path("/usr/share/sip-tester")


def have_sipp() -> bool:
    return shutil.which("sipp") is not None


@dataclass
class SippRun:
    returncode: int
    stdout: str
    stderr: str
    errors: str
    """Unexpected messages sipp logged (``-trace_err``)."""
    messages: str
    """Every message sent and received (``-trace_msg``)."""

    def calls_with_status(self, status: int) -> set[str]:
        """Call-IDs of the dialogs that received ``status`` (retransmissions counted once)."""
        found = set()
        for block in re.split(r"\n(?=-{5,})", self.messages):
            if re.search(rf"^SIP/2\.0 {status} ", block, re.M):
                m = re.search(r"^Call-ID:\s*(\S+)", block, re.M | re.I)
                if m:
                    found.add(m.group(1))
        return found

    def statuses(self) -> list[int]:
        """Status codes of the SIP responses in sipp's message log."""
        return [int(code) for code in re.findall(r"^SIP/2\.0 (\d{3})", self.messages or self.errors, re.M)]


async def run_sipp(
    target_port: int,
    workdir: Path,
    *,
    scenario: str | None = None,
    builtin: str | None = None,
    calls: int = 1,
    limit: int | None = None,
    rate: float | None = None,
    duration_ms: int | None = None,
    transport: str = "u1",
    timeout_s: float = 20.0,
    extra: list[str] | None = None,
    local_port: int | None = None,
) -> SippRun:
    """Run one sipp (client, or server with a uas scenario on ``local_port``).

    It is killed if it outlives ``timeout_s`` plus a margin."""
    err_file, msg_file = _prepare(workdir)
    cmd = ["sipp", f"127.0.0.1:{target_port}", "-i", "127.0.0.1", "-p", str(local_port or free_port()),
           "-mi", "127.0.0.1", "-mp", str(free_port()), "-m", str(calls), "-nostdin",
           "-t", transport, "-timeout", f"{int(timeout_s)}s", "-timeout_error",
           "-trace_err", "-error_file", str(err_file), "-trace_msg", "-message_file", str(msg_file)]
    if builtin:
        cmd += ["-sn", builtin]
    if scenario:
        cmd += ["-sf", str(SCENARIOS / scenario)]
    if limit:
        cmd += ["-l", str(limit)]
    if rate:
        cmd += ["-r", str(rate)]
    if duration_ms is not None:
        cmd += ["-d", str(duration_ms)]
    cmd += extra or []
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s + 10)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    return SippRun(
        returncode=proc.returncode if proc.returncode is not None else -1,
        stdout=out.decode(errors="replace"), stderr=err.decode(errors="replace"),
        errors=_read(err_file), messages=_read(msg_file),
    )


def refused_offer_scenario(path: Path, *, payload: str = "97 X-NOSUCH/8000", size: int = 0,
                           sdp: bool = True) -> Path:
    """Write an INVITE scenario (from ``offer_unknown_dynamic.xml``) that expects 488 or 513.

    ``payload`` is the one offered ``"<pt> <rtpmap>"``; ``size`` pads the SDP with attribute
    lines to about that many bytes; ``sdp=False`` sends no body at all. A 200 is unexpected:
    sipp fails and the response shows in its message log."""
    src = (SCENARIOS / "offer_unknown_dynamic.xml").read_text()
    pt, rtpmap = payload.split(" ", 1)
    pad = "".join(f"      a=x-pad{i}:{'z' * 60}\n" for i in range(size // 70))
    src = src.replace("RTP/AVP 97", f"RTP/AVP {pt}").replace(
        "      a=rtpmap:97 X-NOSUCH/8000\n", f"      a=rtpmap:{pt} {rtpmap}\n{pad}")
    if not sdp:
        head, _, rest = src.partition("      Content-Type: application/sdp\n")
        src = head + "      Content-Length: 0\n\n    ]]>" + rest.split("]]>", 1)[1]
    src = src.replace('<recv response="488"/>', '<recv response="180" optional="true"/>\n'
                      '  <recv response="488" optional="true" next="1"/>\n'
                      '  <recv response="513" next="1"/>\n  <label id="1"/>')
    path.write_text(src)
    return path


def _prepare(workdir: Path) -> tuple[Path, Path]:
    """Make the run folder with the ``pcap`` link sipp's pcap scenarios look for."""
    workdir.mkdir(parents=True, exist_ok=True)
    link = workdir / "pcap"
    if not link.exists():
        os.symlink(PCAP_DIR, link)
    return workdir / "errors.log", workdir / "messages.log"


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
