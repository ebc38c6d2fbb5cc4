"""``callcenter serve``: the whole service on one machine.

Starts, in order: the MQTT broker (embedded unless one is configured), the endpoint worker
processes (a pjsua2 process holds at most 4 calls; as many as the calls the cores can analyze
need, ``callcenter.capacity``, unless ``sip.workers`` fixes it), the SIP front on the dialed address
(Kamailio's dispatcher; without Kamailio, the documented fallback is a single worker listening on
the dialed address itself, so 4 concurrent calls), and the agent console. Stops them in reverse on
SIGINT/SIGTERM. While it runs, ``supervisor.Supervisor`` restarts a worker (or the front) that
dies, and stores the calls a dead worker held (``end_reason=worker_lost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assist.feedback import FeedbackStore
from callcenter.capacity import CapacityPlan, capacity_for
from callcenter.credentials import Resolved, resolve_secrets, secrets_dir, write_embedded_broker
from callcenter.roles import (
    Role,
    RoleError,
    check_role,
    local_worker_ports,
    plan_role,
    remote_workers,
    start_bridge,
)
from callcenter.settings import Settings, SettingsError
from callcenter.supervisor import Supervisor
from callcenter.worker import agents_directory, caller_slots, read_worker_stats, slots_for_callers
from telephony.kamailio import (
    FrontError,
    FrontLimits,
    KamailioFront,
    Worker,
    _udp_options_ok,
    front_tls,
    kamailio_binary,
)

log = logging.getLogger(__name__)


WORKER_STOP_S = 40.0
"""SIGTERM to kill: a worker hangs up its calls and writes their records first."""


class ServeError(RuntimeError):
    """The service could not start (port in use, front missing when required...)."""


@dataclass
class Service:
    """Everything ``serve`` started, for an orderly stop (and for tests)."""

    settings: Settings
    workers: list[asyncio.subprocess.Process] = field(default_factory=list)
    worker_ports: list[int] = field(default_factory=list)
    front: KamailioFront | None = None
    broker: object | None = None
    console: object | None = None
    console_task: asyncio.Task[None] | None = None
    store: object | None = None
    api: Any = None
    """The CRM REST API server (``callcenter.api_server.RunningServer``)."""
    log_dir: Path | None = None
    """Where worker stderr goes (``worker<i>.log``); None: inherited (the terminal)."""
    supervisor: Supervisor | None = None
    worker_cfg: Path | None = None
    registrar: Any = None
    """Agents' registration at the front (``callcenter.agents_registrar.AgentsRegistrar``)."""
    acd_feed: Any = None
    """Queue snapshots and agent states on MQTT (``live.acd_feed.AcdFeed``) and its publisher."""
    acd_publisher: Any = None
    on_agent_change: list[Any] = field(default_factory=list)
    """Callbacks given each agent ``StateChange`` the registrar sync makes (to publish them)."""
    role: Role = "all"
    capacity: CapacityPlan | None = None
    """The capacity plan the worker count came from (None: ``sip.workers`` fixed it)."""
    calls_per_worker: int = 0
    """Callers each local worker admits (``sip.calls_per_worker`` or the plan's)."""
    admission: Any = None
    """Keeps the front off workers that refuse new calls (``callcenter.worker_load.FrontAdmission``)."""
    remote: Any = None
    """The front's watch over ``sip.remote_workers`` (``callcenter.remote_watch.RemoteWatch``)."""

    @property
    def sip_uri(self) -> str:
        return f"sip:ivr@{self.settings.sip.host}:{self.settings.sip.port}"

    def worker_stats(self) -> list[dict[str, Any]]:
        """Each worker's last report (``active_calls``, ``calls_total``, ``frames_dropped``...)."""
        return read_worker_stats(self.settings.data_dir)

    def health(self) -> dict[str, Any]:
        """Workers' and front's state (what the console's ``/api/health`` serves)."""
        if self.supervisor is None:
            return {"status": "starting", "workers": []}
        from callcenter.worker_load import load_health

        health = self.supervisor.health()
        health.update(load_health(self))  # capacity plan, each worker's shed level and memory
        if self.remote is not None:  # workers on other hosts, as the front's pings see them
            health["remote_workers"] = self.remote.health()
            if self.remote.serving < len(self.remote.workers):
                health["status"] = "degraded"
        return health

    def pids(self) -> list[int]:
        """Process ids of the workers and of Kamailio's main process (for leak checks)."""
        out = [p.pid for p in self.workers]
        if self.front is not None and self.front.proc is not None:
            out.append(self.front.proc.pid)
        return out


def plan_workers(settings: Settings, plan: CapacityPlan | None = None) -> tuple[int, bool]:
    """(number of workers, whether a Kamailio front is used). ``plan``: the capacity plan when
    ``sip.workers`` is auto (without one: a worker per core)."""
    wanted = settings.sip.workers or (plan.workers if plan is not None else max(1, os.cpu_count() or 1))
    front = settings.sip.front
    have_kamailio = kamailio_binary() is not None
    if front == "kamailio" and not have_kamailio:
        raise ServeError("sip.front = kamailio but kamailio is not installed (apt-get install kamailio)")
    # TLS is the front's job (Kamailio's tls module) even for one worker
    use_front = front != "none" and have_kamailio and (wanted > 1 or settings.sip.tls_port is not None)
    if front == "kamailio":
        use_front = True
    if settings.sip.require_tls and not use_front:
        raise ServeError("sip.require_tls needs the Kamailio front (apt-get install kamailio kamailio-tls-modules)")
    if not use_front:
        if wanted > 1:
            log.warning("no SIP front (kamailio %s): one worker on the dialed address, 4 calls at most",
                        "disabled" if front == "none" else "not installed")
        wanted = 1
    return wanted, use_front


async def start_service(settings: Settings, *, ready_timeout: float = 60.0, log_dir: Path | None = None,
                        role: Role = "all") -> Service:
    """Start broker, workers, front and console; on any failure stop what started and raise.

    ``log_dir``: write each worker's stderr to ``log_dir/worker<i>.log`` instead of inheriting it.
    ``role``: what of it runs on this host (``callcenter.roles``): ``workers`` starts only the
    workers (no broker, front or console).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        settings = resolve_secrets(settings).settings  # no default secrets: generated or refused
    except SettingsError as exc:
        raise ServeError(str(exc)) from exc
    try:
        check_role(settings, role)
    except RoleError as exc:
        raise ServeError(str(exc)) from exc
    from assist.files import AssistFileError
    from callcenter.wiring import check_assist_files

    try:
        check_assist_files(settings)  # a broken rules, playbook or checklist file stops the start
    except AssistFileError as exc:
        raise ServeError(str(exc)) from exc
    svc = Service(settings, log_dir=log_dir, role=role)
    try:
        # Migrate the CRM schema once here, so the workers do not race to do it at start.
        await asyncio.to_thread(_migrate_store, settings.store_url)
        mqtt = settings.mqtt
        if mqtt.enabled and mqtt.host is None and role != "workers":
            from live.broker import BrokerError, EmbeddedBroker

            users = {mqtt.username: mqtt.password} if mqtt.username and mqtt.password else None
            try:
                svc.broker = EmbeddedBroker("127.0.0.1", mqtt.embedded_port,
                                            persistence_dir=settings.data_dir / "mqtt",
                                            cert_file=mqtt.cert_file if mqtt.tls else None,
                                            key_file=mqtt.key_file if mqtt.tls else None, users=users)
                await svc.broker.start()
            except BrokerError as exc:
                raise ServeError(str(exc)) from exc
            mqtt = mqtt.model_copy(update={"host": "127.0.0.1", "port": mqtt.embedded_port})
            await asyncio.to_thread(write_embedded_broker, settings.model_copy(update={"mqtt": mqtt}),
                                    "127.0.0.1", mqtt.embedded_port)
        if mqtt.enabled and mqtt.bridge and role == "workers":
            from live.broker import BrokerError

            try:  # this host's mosquitto, bridged to the one broker, queues through a cut
                svc.broker, mqtt = await start_bridge(settings)
            except BrokerError as exc:
                raise ServeError(str(exc)) from exc
        worker_settings = settings.model_copy(update={"mqtt": mqtt})
        directory = await asyncio.to_thread(agents_directory, settings, quiet=True)  # read once for both
        if role != "front":  # a front alone has no local workers; a worker host plans its own
            svc.capacity = await capacity_for(settings, slots_for_callers(settings, directory),
                                              behind_remote_front=role == "workers")
            if svc.capacity is not None and not settings.sip.calls_per_worker:  # admit what the cores analyze
                sip = worker_settings.sip.model_copy(update={"calls_per_worker": svc.capacity.calls_per_worker})
                worker_settings = worker_settings.model_copy(update={"sip": sip})
        svc.calls_per_worker = caller_slots(worker_settings, directory)
        count, use_front = plan_role(settings, role,
                                     plan_workers(settings, svc.capacity) if role != "workers" else (0, False),
                                     svc.capacity)
        ports = local_worker_ports(settings, count, use_front)
        cfg = svc.worker_cfg = settings.data_dir / "worker-settings.json"
        await asyncio.to_thread(_prepare_run, settings, worker_settings, cfg, log_dir)
        svc.worker_ports.extend(ports)
        for i in range(len(ports)):
            svc.workers.append(await _spawn_worker(svc, i))
        await _wait_workers(svc, ready_timeout)
        if use_front:
            svc.front = KamailioFront(
                settings.sip.host, settings.sip.port,
                [*(Worker(settings.sip.worker_host, p) for p in ports), *remote_workers(settings)],
                settings.data_dir / "kamailio", transports=settings.sip.transports,
                # a bridged call holds two of a worker's 4 call slots (caller and agent legs)
                limits=FrontLimits(max_calls_per_worker=svc.calls_per_worker),
                tls=front_tls(settings.sip),
            )
            await svc.front.start()
        svc.supervisor = Supervisor(svc, lambda i: _spawn_worker(svc, i))
        svc.supervisor.start()
        if svc.front is not None:
            from callcenter.worker_load import FrontAdmission

            svc.admission = FrontAdmission(svc)  # overloaded workers out of dispatch
            svc.admission.start()
        if role == "workers":
            return svc  # the front, console and feeds run on the front host
        _start_remote_watch(svc)
        await _start_registrar(svc)
        await _start_acd_feed(svc, worker_settings)
        if settings.console.enabled:
            await _start_console(svc, worker_settings)
            if settings.store.api_enabled:
                from callcenter.api_server import start_api

                try:
                    svc.api = await start_api(settings)
                except RuntimeError as exc:
                    raise ServeError(str(exc)) from exc
    except BaseException:
        await stop_service(svc)
        raise
    return svc


async def _spawn_worker(svc: Service, i: int) -> asyncio.subprocess.Process:
    """Start worker ``i`` on its port (at start, and again when the supervisor restarts it)."""
    assert svc.worker_cfg is not None
    stderr = _open_log(svc.log_dir / f"worker{i}.log") if svc.log_dir is not None else None
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callcenter.worker", "--settings-json", str(svc.worker_cfg),
            "--port", str(svc.worker_ports[i]), "--index", str(i), stdin=asyncio.subprocess.DEVNULL,
            stderr=stderr,
            # Own session: a terminal's Ctrl-C reaches serve only, which then stops
            # front, workers and broker in order (workers finish their calls first).
            start_new_session=True,
        )
    finally:
        if stderr is not None:
            stderr.close()


def _prepare_run(settings: Settings, worker_settings: Settings, cfg: Path, log_dir: Path | None) -> None:
    fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the secrets
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(worker_settings.model_dump_json())
    stats_dir = settings.data_dir / "workers"
    for old in stats_dir.glob("worker*.json") if stats_dir.exists() else ():
        old.unlink()  # a previous run's reports must not pass for this one's
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)


def _open_log(path: Path) -> Any:
    return open(path, "ab")  # noqa: SIM115 - handed to the child process, closed after spawn


def _migrate_store(url: str) -> None:
    from summaries.store import CrmStore

    store = CrmStore(url)
    try:
        store.start()
    except Exception as exc:  # database down: the workers spool calls until it is back
        log.warning("CRM store unavailable at start (%s); workers will spool calls", type(exc).__name__)
    finally:
        store.stop()


async def _wait_workers(svc: Service, wait_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    pending = list(zip(svc.workers, svc.worker_ports, strict=True))
    while pending:
        for proc, port in list(pending):
            if proc.returncode is not None:
                raise ServeError(f"worker on port {port} exited with {proc.returncode} (port in use?)")
            if await asyncio.to_thread(_udp_options_ok, svc.settings.sip.worker_host, port):
                pending.remove((proc, port))
        if loop.time() > deadline:
            raise ServeError(f"workers on ports {[p for _, p in pending]} did not answer within {wait_s:.0f} s")
        await asyncio.sleep(0.2)


def _article_feedback(settings: Settings) -> FeedbackStore | None:
    """Where the console stores agents' marks on suggestions; the workers read them at call end."""
    if not settings.knowledge.enabled:
        return None
    return FeedbackStore(settings.kb_feedback_path)


async def _start_console(svc: Service, settings: Settings) -> None:
    from callcenter.agent_console import build_agent_console
    from callcenter.api_server import https_options, start_uvicorn
    from callcenter.follow_ups import StoreTasks
    from callcenter.history import StoreHistory
    from callcenter.kpi_source import StoreKpis
    from callcenter.qa_reviews import StoreReviews
    from callcenter.recordings import console_recordings
    from live.console.app import broker_options, create_console_app

    history = await asyncio.to_thread(StoreHistory, settings.store_url)
    svc.store = history
    assert settings.console.token is not None  # resolve_secrets filled it in
    app = create_console_app(
        token=settings.console.token, broker_host=settings.mqtt.host or "127.0.0.1",
        broker_port=settings.mqtt.port, topic_prefix=settings.mqtt.topic_prefix, history=history,
        **broker_options(settings.mqtt),  # the broker's username, password and TLS
        agents=build_agent_console(settings),  # agents' logins and states, the queue view
        feedback=_article_feedback(settings),  # agents' marks on suggested knowledge articles
        kpis=StoreKpis(settings.store_url, settings.kpi, wrap_up_s=settings.acd.wrap_up_s),  # /dashboard
        recordings=console_recordings(settings, history.store),  # call review: playback
        qa=StoreReviews(history.store),  # scorecards, reviewers' overrides, /calibration
        tasks=StoreTasks(history.store),  # follow-up tasks: the agent page's panel, /tasks
    )

    async def health() -> dict[str, Any]:
        return svc.health()

    app.add_api_route("/api/health", health, methods=["GET"])  # behind the console's token
    try:
        svc.console, svc.console_task = await start_uvicorn(app, settings.console.host, settings.console.port,
                                                            "console", https=https_options(settings))
    except RuntimeError as exc:
        raise ServeError(str(exc)) from exc


def _start_remote_watch(svc: Service) -> None:
    """The front ends the calls of a remote worker that stopped answering (``remote_watch``)."""
    remote = remote_workers(svc.settings)
    if svc.front is None or not remote:
        return
    from callcenter.remote_watch import RemoteWatch

    svc.remote = RemoteWatch(svc.front, remote, svc.settings.sip.remote_lost_after_s)
    svc.remote.start()


async def _start_registrar(svc: Service) -> None:
    """Agents register at the front: credentials from the agents file, contacts into the ACD
    store (``callcenter.agents_registrar``). Without a front there is no registrar."""
    if svc.front is None:
        return
    from callcenter.agents_registrar import AgentsRegistrar

    svc.registrar = AgentsRegistrar(svc.settings, svc.front, svc.on_agent_change)
    await svc.registrar.start()


async def _start_acd_feed(svc: Service, settings: Settings) -> None:
    """Agents' states and queue snapshots on MQTT (``agents/{id}/state``, ``queues/{q}/snapshot``),
    read from the shared ACD store: they change outside any call (registrations, wrap-ups that
    end, states set in the console)."""
    if not settings.mqtt.enabled:
        return
    from callcenter.agent_console import build_acd_feed
    from live.publisher import MqttPublisher

    svc.acd_publisher = MqttPublisher(settings.mqtt, settings.data_dir / "mqtt-outbox-acd.sqlite")
    await svc.acd_publisher.start()
    svc.acd_feed = build_acd_feed(settings, svc.acd_publisher)
    await svc.acd_feed.start()


async def stop_service(svc: Service) -> None:
    """Reverse order: console, front closed to new calls, workers (SIGTERM: they hang up and
    finish their calls), front, broker.

    Idempotent; a worker that does not exit within ``WORKER_STOP_S`` is killed.
    """
    if svc.supervisor is not None:
        await svc.supervisor.stop()  # a worker stopping on purpose is not restarted
    if svc.admission is not None:
        await svc.admission.stop()
        svc.admission = None
    if svc.remote is not None:
        await svc.remote.stop()
        svc.remote = None
    if svc.registrar is not None:
        await svc.registrar.stop()
        svc.registrar = None
    if svc.api is not None:
        await svc.api.stop()
        svc.api = None
    if svc.console is not None and svc.console_task is not None:
        svc.console.should_exit = True  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(svc.console_task, 10)
        svc.console = svc.console_task = None
    if svc.front is not None and svc.front.proc is not None:
        # No new calls (503), but the front stays up while the workers hang up: their BYEs
        # follow the record-route through it.
        with contextlib.suppress(FrontError):
            await svc.front.rpc("dispatcher.set_state", "d", "1", "all")
    for proc in svc.workers:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in svc.workers:
        try:
            await asyncio.wait_for(proc.wait(), WORKER_STOP_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    svc.workers.clear()
    if svc.front is not None:
        await svc.front.stop()
        svc.front = None
    if svc.store is not None:
        with contextlib.suppress(Exception):
            svc.store.close()  # type: ignore[attr-defined]
        svc.store = None
    if svc.acd_feed is not None:
        await svc.acd_feed.stop()
        svc.acd_feed = None
    if svc.acd_publisher is not None:
        await svc.acd_publisher.stop(drain=True, timeout=5)
        svc.acd_publisher = None
    if svc.broker is not None:
        await svc.broker.stop()  # type: ignore[attr-defined]
        svc.broker = None


async def serve(settings: Settings, role: Role = "all") -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        resolved = await asyncio.to_thread(resolve_secrets, settings)
        svc = await start_service(resolved.settings, role=role)
    except (ServeError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = svc.settings
    if role == "workers":
        print(f"callcenter: {len(svc.workers)} worker(s) on {s.sip.worker_host} ports {svc.worker_ports} "
              f"behind the front {s.sip.host}:{s.sip.port}; store and MQTT {s.mqtt.host}:{s.mqtt.port} shared",
              file=sys.stderr)
        try:
            await stop.wait()
        finally:
            await stop_service(svc)
        return 0
    web = "https" if s.console.tls_cert else "http"
    mq = " TLS" if s.mqtt.tls else ""
    sip_uri = (f"sip:ivr@{s.sip.host}:{s.sip.tls_port};transport=tls (TLS only)" if s.sip.require_tls
               else svc.sip_uri)
    remote = f" + {len(s.sip.remote_workers)} on other hosts" if s.sip.remote_workers else ""
    print(f"callcenter: answering {sip_uri} ({len(svc.workers)} worker(s){remote}, "
          f"{'kamailio front' if svc.front else 'no front'}); ", end="", file=sys.stderr)
    if s.console.enabled:
        print(f"console {web}://{s.console.host}:{s.console.port}/; ", end="", file=sys.stderr)
    if svc.api is not None:
        print(f"CRM API {web}://{s.store.api_host}:{s.store.api_port}/api/calls; ", end="", file=sys.stderr)
    if svc.broker is not None:
        print(f"MQTT{mq} 127.0.0.1:{s.mqtt.embedded_port} (embedded)", file=sys.stderr)
    else:
        print(f"MQTT{mq} {s.mqtt.host}:{s.mqtt.port}", file=sys.stderr)
    _print_secrets(resolved, web)
    try:
        await stop.wait()
    finally:
        await stop_service(svc)
    return 0


def _print_secrets(resolved: Resolved, web: str) -> None:
    """Where the secrets are. The console URL with its token is printed once, on the run that
    generated the token (to the operator's terminal, like a password reveal), never again."""
    s = resolved.settings
    folder = secrets_dir(s)
    if resolved.created:
        print(f"callcenter: generated {', '.join(p.name for p in resolved.created)} in {folder} (owner-only)",
              file=sys.stderr)
    if s.console.enabled:
        if resolved.token_file() in resolved.created:
            print(f"callcenter: open the console at {web}://{s.console.host}:{s.console.port}/?token={s.console.token}",
                  file=sys.stderr)
        elif resolved.token_from_file:
            print(f"callcenter: console token in {resolved.token_file()} "
                  f"(open {web}://{s.console.host}:{s.console.port}/?token=$(cat {resolved.token_file()}))",
                  file=sys.stderr)
    if s.console.tls_cert and s.secure:
        print(f"callcenter: clients trust the CA {s.data_dir / 'certs' / 'ca.pem'}", file=sys.stderr)


