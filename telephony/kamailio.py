"""The SIP front: Kamailio's dispatcher spreads calls over endpoint worker processes.

A pjsua2 process holds at most 4 calls, so one dialed address must fan out to several workers.
This module renders ``kamailio_front.cfg`` and runs Kamailio in the foreground as a child
process. The front is the admission control: oversized requests get 513, floods (per source and
in all) and calls beyond every worker's capacity get 503 with Retry-After, so no worker is pushed
past pjlib's limits. It record-routes and tracks dialogs (the dialog module), so it knows each
worker's live calls and can BYE the callers of a worker that died (:meth:`KamailioFront.
end_worker_dialogs`). For UAs that send in-dialog requests to the dialed address without the
route (sipp's stock scenarios), it relays them by Call-ID (an htable entry set on the 2xx). A
full worker (486) or a dead one (timeout, 503) fails over to the next; OPTIONS pings mark dead
workers inactive within about a second, and active again once they answer. RTP flows directly.

It is also the agents' registrar (digest auth against each agent's HA1, contacts in memory) and
routes workers' calls to agents' phones and agents' feature codes to workers; Python fills the
credentials and reads the contacts over JSON-RPC on ``rpc_url`` (``telephony.acd.registrar``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from telephony.net import free_port
from telephony.settings import SipSettings

log = logging.getLogger(__name__)

MODULES_DIRS = (
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib/aarch64-linux-gnu/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/local/lib64/kamailio/modules",
)


class FrontError(RuntimeError):
    """Kamailio is missing, its config is rejected, or it did not start listening."""


@dataclass(frozen=True)
class Worker:
    host: str
    port: int
    transport: str = "udp"

    @property
    def uri(self) -> str:
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{self.host}:{self.port}{suffix}"


def kamailio_binary() -> str | None:
    return shutil.which("kamailio") or (os.path.exists("/usr/sbin/kamailio") and "/usr/sbin/kamailio") or None


def modules_dir() -> str | None:
    return next((d for d in MODULES_DIRS if os.path.isdir(d)), None)


TEMPLATE = Path(__file__).resolve().parent / "kamailio_front.cfg"
DEFAULT_REALM = "callcenter"
"""The digest realm until Python sets the directory's own (``RegistrarRpc.set_credentials``)."""


@dataclass(frozen=True)
class FrontLimits:
    """What the front admits; beyond it callers get 503 with Retry-After (513 when too large)."""

    max_calls_per_worker: int = 4
    """Dialogs one worker holds (the pjsua2 wheel's compiled-in 4); dispatch to BYE."""
    invite_rate: int = 40
    """New calls per second the front lets through in all."""
    source_rate: int = 30
    """New calls one source address may start per second (pike); a flooder is refused, others not."""
    max_message_bytes: int = 3600
    """pjsip handles about 4000 bytes; the front adds a Via and a Record-Route."""
    retry_after_s: int = 2
    keepalive_s: int = 30
    """In-dialog OPTIONS to workers; a dialog the worker does not know any more is ended."""
    tcp_read_buffer: int = 131072
    """Kamailio reads a TCP message whole; larger ones close the connection unanswered."""
    register_failures_max: int = 5
    """Failed digest checks in a row after which an agent id's REGISTERs get 403 unchecked."""
    register_lockout_s: int = 300
    """How long that lockout lasts after the last failure (as the console's agent login)."""


@dataclass(frozen=True)
class FrontTls:
    """SIP over TLS at the front (Kamailio's tls module): a listener on ``host:port`` with
    ``cert``/``key``. ``require``: new calls and registrations that did not arrive over TLS get
    403 "TLS Required" (OPTIONS, in-dialog requests and the workers' own calls to agents, on
    this host, are not refused)."""

    port: int
    cert: Path
    key: Path
    require: bool = False


def front_tls(sip: SipSettings) -> FrontTls | None:
    """The front's TLS from the SIP settings; None when ``sip.tls_port`` is unset."""
    if sip.tls_port is None:
        return None
    if sip.tls_cert is None or sip.tls_key is None:
        raise FrontError("sip.tls_port needs sip.tls_cert and sip.tls_key (callcenter certs makes them)")
    return FrontTls(sip.tls_port, Path(sip.tls_cert), Path(sip.tls_key), sip.require_tls)


def render_tls_config(tls: FrontTls) -> str:
    """Kamailio's tls.cfg: the server presents ``cert``; clients (phones) need no certificate;
    the front connects to agents' TLS phones without verifying them (they are on its own
    registrar, authenticated by digest)."""
    return (
        "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"
        f"certificate = {tls.cert}\nprivate_key = {tls.key}\n\n"
        "[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"
    )


def render_config(
    host: str, port: int, rundir: Path, *, transports: Sequence[str] = ("udp", "tcp"), children: int = 2,
    probing: bool = True, limits: FrontLimits | None = None, rpc_port: int | None = None,
    realm: str = DEFAULT_REALM, tls: FrontTls | None = None,
) -> str:
    """The dispatcher config from ``kamailio_front.cfg`` (admission control, failover, the
    agents' registrar). ``rpc_port``: JSON-RPC over HTTP on 127.0.0.1 (default ``port + 1000``).
    ``tls``: a TLS listener too (its ``tls.cfg`` sits in ``rundir``)."""
    lim = limits or FrontLimits()
    listens = [f"listen={t}:{host}:{port}" for t in transports]
    tls_lines = ""
    if tls is not None:
        listens.append(f"listen=tls:{host}:{tls.port}")
        tls_lines = (f'enable_tls=yes\nalias="{host}:{tls.port}"\nloadmodule "{modules_dir() or MODULES_DIRS[0]}'
                     f'/tls.so"\nmodparam("tls", "config", "{rundir}/tls.cfg")\n')
    values = {
        "TLS": tls_lines, "REQUIRE_TLS": "1" if tls is not None and tls.require else "0",
        "RPC_PORT": str(rpc_port if rpc_port is not None else port + 1000), "REALM": realm,
        "HOST": host, "PORT": str(port), "RUNDIR": str(rundir), "CHILDREN": str(children),
        "LISTENS": "\n".join(listens),
        "MODULES": modules_dir() or MODULES_DIRS[0], "PROBING": "1" if probing else "0",
        "MAX_PER_WORKER": str(lim.max_calls_per_worker), "INVITE_RATE": str(lim.invite_rate),
        "SOURCE_DENSITY": str(lim.source_rate), "MAX_BYTES": str(lim.max_message_bytes),
        "RETRY_AFTER": str(lim.retry_after_s), "TCP_BUF": str(lim.tcp_read_buffer),
        "KA_S": str(lim.keepalive_s), "AUTH_FAILS": str(lim.register_failures_max),
        "AUTH_LOCKOUT_S": str(lim.register_lockout_s),
    }
    text = TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    return text


def render_dispatcher_list(workers: Sequence[Worker]) -> str:
    return "".join(f"1 {w.uri} 0 0\n" for w in workers)


class KamailioFront:
    """Runs Kamailio on ``host:port`` dispatching to ``workers``. ``start``/``stop``."""

    def __init__(self, host: str, port: int, workers: Sequence[Worker], rundir: Path,
                 *, transports: Sequence[str] = ("udp", "tcp"), probing: bool = True,
                 limits: FrontLimits | None = None, rpc_port: int | None = None,
                 tls: FrontTls | None = None) -> None:
        """``probing``: OPTIONS-ping workers and skip dead ones (workers must answer OPTIONS).
        ``rpc_port``: JSON-RPC over HTTP on 127.0.0.1; None: a free port, picked once and kept
        across restarts (Python reaches it through ``rpc_url``). ``tls``: SIP over TLS too
        (the hop to the workers stays UDP on this host)."""
        self.tls = tls
        self.host = host
        self.port = port
        self.workers = list(workers)
        self.rundir = Path(rundir)
        self.transports = tuple(transports)
        self.probing = probing
        self.limits = limits or FrontLimits()
        self.rpc_port = rpc_port or free_port("127.0.0.1")
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def rpc_url(self) -> str:
        """Kamailio's JSON-RPC endpoint (loopback only): htable, usrloc, dispatcher commands."""
        return f"http://127.0.0.1:{self.rpc_port}/RPC"

    @property
    def config_path(self) -> Path:
        return self.rundir / "kamailio.cfg"

    def write_config(self) -> Path:
        self.rundir.mkdir(parents=True, exist_ok=True)
        (self.rundir / "dispatcher.list").write_text(render_dispatcher_list(self.workers))
        if self.tls is not None:
            (self.rundir / "tls.cfg").write_text(render_tls_config(self.tls))
        self.config_path.write_text(render_config(
            self.host, self.port, self.rundir, transports=self.transports, probing=self.probing,
            limits=self.limits, rpc_port=self.rpc_port, tls=self.tls,
        ))
        return self.config_path

    async def check(self) -> None:
        """``kamailio -c``: reject a bad config before starting."""
        binary = kamailio_binary()
        if binary is None:
            raise FrontError("kamailio is not installed (Debian package 'kamailio')")
        proc = await asyncio.create_subprocess_exec(
            binary, "-c", "-f", str(self.config_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise FrontError(f"kamailio rejected {self.config_path}: {out.decode(errors='replace')[-800:]}")

    async def start(self, wait_s: float = 10.0) -> None:
        if self.proc is not None:
            return
        self.write_config()
        await self.check()
        binary = kamailio_binary()
        assert binary is not None
        log_file = open(self.rundir / "kamailio.log", "ab")  # noqa: ASYNC230 - opened once, handed to the child
        try:
            self.proc = await asyncio.create_subprocess_exec(
                binary, "-f", str(self.config_path), "-DD", "-E", "-m", "64", "-M", "8",
                "-Y", str(self.rundir), "-P", str(self.rundir / "kamailio.pid"), "-w", str(self.rundir),
                stdout=log_file, stderr=log_file, start_new_session=True,
            )
        finally:
            log_file.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            if self.proc.returncode is not None:
                raise FrontError(f"kamailio exited ({self.proc.returncode}); see {self.rundir / 'kamailio.log'}")
            if _udp_options_ok(self.host, self.port):
                return
            await asyncio.sleep(0.05)
        await self.stop()
        raise FrontError(f"kamailio did not answer on {self.host}:{self.port} within {wait_s} s")

    async def stop(self) -> None:
        """SIGTERM the process group (main and workers); idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is not None:
            reap_group(proc.pid)  # the main process died: its forked workers may live on
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(proc.wait(), timeout=5)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


    @property
    def ctl_socket(self) -> Path:
        return self.rundir / "kamailio_ctl"

    async def rpc(self, *args: str, timeout_s: float = 5.0) -> str:
        """One ``kamcmd`` command on the front's control socket; its output (FrontError on failure)."""
        kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        proc = await asyncio.create_subprocess_exec(
            kamcmd, "-s", f"unix:{self.ctl_socket}", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise FrontError(f"kamcmd {args[0]} timed out") from None
        text = out.decode(errors="replace")
        if proc.returncode != 0 or text.startswith("error"):
            raise FrontError(f"kamcmd {args[0]} failed: {text.strip()[-300:]}")
        return text

    async def set_worker_active(self, worker: Worker, active: bool) -> None:
        """Take a worker out of the dispatcher (inactive, still probed) or put it back."""
        await self.rpc("dispatcher.set_state", "a" if active else "ip", "1", worker.uri)

    async def worker_dialogs(self, worker: Worker) -> list[FrontDialog]:
        """The dialogs the front counts against ``worker`` (live or early ones)."""
        text = await self.rpc("dlg.profile_list", "worker", worker.uri)
        return [d for d in _parse_dialogs(text) if d.state < DIALOG_DELETED]

    async def agent_legs(self, worker: Worker) -> list[FrontDialog]:
        """The calls ``worker`` placed to agents' phones through the front (its B2BUA legs)."""
        text = await self.rpc("dlg.profile_list", "agent_leg", f"sip:{worker.host}:{worker.port}")
        return [d for d in _parse_dialogs(text) if d.state < DIALOG_DELETED]

    async def end_worker_dialogs(self, worker: Worker) -> list[str]:
        """BYE both sides of every dialog of ``worker`` (its callers, and the agents it bridged
        them to, are not left in a dead call); returns their Call-IDs. Their capacity is
        released at once."""
        ended = []
        for dlg in [*await self.worker_dialogs(worker), *await self.agent_legs(worker)]:
            try:
                await self.rpc("dlg.end_dlg", str(dlg.h_entry), str(dlg.h_id))
                ended.append(dlg.call_id)
            except FrontError as exc:  # the dialog ended meanwhile
                log.debug("could not end a dialog: %s", exc)
        return ended


def reap_group(pgid: int) -> None:
    """SIGKILL what is left of a Kamailio whose main process died (it runs in its own session,
    so its process group is its pid): forked workers would otherwise hold on forever."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


DIALOG_DELETED = 5
"""Kamailio dialog state 5: deleted (kept in the list a moment after the end)."""


@dataclass(frozen=True)
class FrontDialog:
    h_entry: int
    h_id: int
    call_id: str
    state: int


def _parse_dialogs(text: str) -> list[FrontDialog]:
    """``kamcmd dlg.*`` output: one ``{ h_entry: .. h_id: .. call-id: .. state: .. }`` per dialog."""
    out: list[FrontDialog] = []
    cur: dict[str, str] = {}
    for raw in text.splitlines():
        key, _, value = raw.strip().partition(": ")
        if key in ("h_entry", "h_id", "call-id", "state") and key not in cur:
            cur[key] = value.strip()
        if len(cur) == 4:
            out.append(FrontDialog(int(cur["h_entry"]), int(cur["h_id"]), cur["call-id"], int(cur["state"])))
            cur = {}
    return out


def _udp_options_ok(host: str, port: int) -> bool:
    """Send one OPTIONS over UDP; True on any SIP answer."""
    msg = (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:9;branch=z9hG4bK-probe{os.getpid()}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{host}>;tag=probe\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: probe-{os.getpid()}@{host}\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.bind((host, 0))
            port_local = s.getsockname()[1]
            s.sendto(msg.replace(f"{host}:9;", f"{host}:{port_local};").encode(), (host, port))
            data = s.recv(4096)
            return data.startswith(b"SIP/2.0")
        except OSError:
            return False
