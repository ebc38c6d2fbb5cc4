"""One endpoint process: a SIP endpoint (at most 4 calls), the speech model and the sinks.

``callcenter serve`` starts several of these behind the SIP front; each loads its own model
(one per process, never a global) and runs each answered call as a ``CallSession``. SIGTERM
stops taking calls, hangs up the live ones, finishes their records and drains the outboxes.

A worker is a separate process, so what the service (and its tests and benchmark) need to see
of it goes to files in ``data_dir``: ``workers/worker<i>.json`` (live/total calls, dropped
frames, rewritten atomically on every change), ``calls/<call id>.json`` (one per ended call:
IVR outcome, recording, dropped frames) and, while a call is live, its events in
``active/worker<i>/`` (``call_spool``), so ``serve`` can store the call if this process dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callcenter.aftercall import AfterCall
from callcenter.call_session import AcdContext, CallOutcome, CallSession
from callcenter.call_spool import CallSpool
from callcenter.overload import LoadGovernor, LoadReport
from callcenter.queue_prompts import FEATURE_CODES, QueuePrompts, hold_music
from callcenter.settings import Settings
from callcenter.siprec_session import SiprecSession
from callcenter.supervision import SupervisionDesk
from callcenter.wiring import prepare_process
from ivr.flow import load_flow
from speech.events import AgentStateChanged, AgentStatus
from speech.frames import Party
from speech.load import ProcessLoad
from telephony.acd.directory import Directory, DirectoryError, load_directory
from telephony.acd.queue_call import cancel_task
from telephony.acd.store import AcdStore
from telephony.leg import uri_user
from telephony.siprec import SiprecRules

if TYPE_CHECKING:
    from speech.asr.base import AsrEngine
    from speech.events import Event
    from telephony.endpoint import SipEndpoint
    from telephony.leg import CallLeg

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "ivr" / "prompts"
SESSION_DRAIN_S = 30.0
"""How long a stopping worker waits for its sessions to finish their after-call records."""
PUBLISHER_DRAIN_S = 5.0


@dataclass
class WorkerStats:
    """What a worker reports in ``workers/worker<i>.json``."""

    index: int
    port: int
    pid: int
    active_calls: int = 0
    """Sessions not yet finished (call live or its after-call record still being written)."""
    endpoint_calls: int = 0
    """Calls the SIP endpoint still holds."""
    calls_total: int = 0
    calls_failed: int = 0
    """Sessions that raised (the call is still hung up and counted here)."""
    frames_dropped: int = 0
    """Audio frames dropped over all calls (leg inbox or pipeline overload)."""
    stopped: bool = False
    state: str = "serving"
    """``serving``, ``stopped`` (a clean exit) or, written by ``serve``, ``dead``."""
    load: dict[str, Any] = field(default_factory=dict)
    """The overload governor's last report (``callcenter.overload.LoadReport``): shed level,
    seconds behind, decode backlog, frame lateness, CPU, RSS."""
    refused: dict[str, int] = field(default_factory=dict)
    """Incoming calls the endpoint refused, by SIP status (503: overloaded)."""
    decode: dict[str, float | int] = field(default_factory=dict)
    """The recognizer's decodes and decode-thread seconds by kind (``AsrEngine.decode_stats``)."""


class StatsFile:
    """Writes ``WorkerStats`` atomically (temp file + rename), so readers never see half a file."""

    def __init__(self, path: Path, stats: WorkerStats) -> None:
        self.path = path
        self.stats = stats
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.stats)))
        os.replace(tmp, self.path)


def call_record_path(data_dir: Path, call_id: str) -> Path:
    """Where a worker writes the stats of an ended call (``calls/<safe call id>.json``)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in call_id)[:100]
    return Path(data_dir) / "calls" / f"{safe}.json"


def read_worker_stats(data_dir: Path) -> list[dict[str, Any]]:
    """Every worker's last stats, by index (for tests, the benchmark and ``serve``)."""
    out = []
    for path in sorted((Path(data_dir) / "workers").glob("worker*.json")):
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(path.read_text()))
    return out


def _write_call_record(data_dir: Path, index: int, outcome: CallOutcome) -> None:
    path = call_record_path(data_dir, outcome.call_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "call_id": outcome.call_id,
        "worker": index,
        "frames_dropped": outcome.frames_dropped,
        "frames_received": outcome.frames_received,
        "recording": str(outcome.recording) if outcome.recording else None,
        "ivr": outcome.ivr.to_dict() if hasattr(outcome.ivr, "to_dict") else None,
        "end_reason": outcome.end_reason,
        "stored": outcome.summary is not None,
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # IVR input: owner-only
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(record))
    os.replace(tmp, path)


async def run_worker(settings: Settings, *, port: int, index: int = 0, stop: asyncio.Event | None = None,
                     prepare: Callable[[Settings], AsrEngine | None] = prepare_process) -> int:
    """Serve calls on ``port`` until ``stop`` (or SIGTERM). ``prepare``: loads the process's
    recognizer (tests hand in a scripted one)."""
    from live.publisher import MqttPublisher
    from telephony.endpoint import SipEndpoint

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    stats = StatsFile(data / "workers" / f"worker{index}.json", WorkerStats(index=index, port=port, pid=os.getpid()))
    flow = load_flow(settings.ivr.flow, params={"agent_uri": settings.ivr.agent_uri})
    prompts_dir = settings.ivr.prompts_dir or flow.prompts_dir or PROMPTS_DIR
    engine = await asyncio.to_thread(prepare, settings)
    load = ProcessLoad()  # what this process sheds under overload (``callcenter.overload``)
    governor_task: asyncio.Task[None] | None = None
    after = AfterCall(settings)
    publisher = None
    endpoint = None
    sessions: set[asyncio.Task[None]] = set()
    acd: AcdContext | None = None
    spool = CallSpool(data, index)
    try:
        await after.start()
        feeds = [spool.append]
        if settings.mqtt.enabled:
            # MqttConfig declares settable members, the frozen MqttSettings has read-only ones;
            # the publisher only reads them.
            publisher = MqttPublisher(settings.mqtt, data / f"mqtt-outbox-{index}.sqlite")
            await publisher.start()
            feeds.append(publisher.publish)

        def fan_out(event: Event) -> None:
            for sink in feeds:
                sink(event)

        sinks = [fan_out]  # one sink: the session redacts it once (the live redactor is stateful)
        directory = agents_directory(settings)
        # listen on this host's worker address (``sip.bind_host`` on a worker host)
        sip_here = settings.sip.model_copy(update={"host": settings.sip.worker_host})
        endpoint = SipEndpoint(sip_here, port=port, record_dir=data / "recordings", name=f"worker{index}",
                               max_incoming=caller_slots(settings, directory),
                               siprec=siprec_rules(settings, directory), max_streams=settings.siprec.max_streams)
        await endpoint.start()

        def load_changed(report: LoadReport) -> None:
            assert endpoint is not None
            endpoint.admitting = report.admitting

        def write_counters() -> None:
            """The endpoint's refusals and the recognizer's decode time, then the file."""
            assert endpoint is not None
            stats.stats.refused = {str(k): v for k, v in endpoint.refused.items()}
            stats.stats.decode = engine.decode_stats() if engine is not None else {}
            stats.write()

        def load_report(report: LoadReport) -> None:
            stats.stats.load = report.to_dict()
            write_counters()

        governor = LoadGovernor(settings.overload, load, engine, on_change=load_changed, on_report=load_report)
        governor_task = asyncio.create_task(governor.run(stop), name="load-governor")
        hold = (flow.prompt_path("hold", prompts_dir) if "hold" in flow.prompts
                else await asyncio.to_thread(hold_music, data / "prompts" / "acd"))
        acd, acd_prompts = await _acd_context(settings, directory, endpoint, port, index)
        log.warning("worker %d answering on %s:%d", index, settings.sip.worker_host, port)
        stats.write()

        def refresh() -> None:
            stats.stats.active_calls = len(sessions)
            stats.stats.endpoint_calls = endpoint.active_calls
            write_counters()

        async def serve_call(leg: CallLeg) -> None:
            if leg.local_uri and uri_user(leg.local_uri) in FEATURE_CODES:
                await _feature_code(leg, acd, acd_prompts, fan_out)
                return
            recording = getattr(leg, "recording_path", None)
            try:
                spool.open(leg.call_id, recording=str(recording) if recording else None)
            except OSError:
                log.warning("could not open the live call spool", exc_info=True)
            try:
                await _serve_session(leg)
            finally:
                spool.finish(leg.call_id)

        async def _serve_session(leg: CallLeg) -> None:
            session: CallSession | SiprecSession
            if leg.siprec is not None:  # a PBX's recording session: no IVR, no queue; listen-only supervision
                session = SiprecSession(leg, settings, engine, sinks=sinks, after_call=after, acd=acd, load=load)
            else:
                session = CallSession(leg, settings, engine, flow=flow, prompts_dir=prompts_dir,
                                      sinks=sinks, after_call=after, hold_prompt=hold, acd=acd, load=load)
            try:
                outcome = await session.run()
            except Exception:
                log.exception("call session failed")
                stats.stats.calls_failed += 1
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(leg.hangup(), 5)
                return
            stats.stats.frames_dropped += outcome.frames_dropped
            try:
                await asyncio.to_thread(_write_call_record, data, index, outcome)
            except OSError:
                log.warning("could not write the call record", exc_info=True)

        def finished(task: asyncio.Task[None]) -> None:
            sessions.discard(task)
            refresh()

        async for leg in endpoint.incoming_calls(stop):
            task = asyncio.create_task(serve_call(leg))
            sessions.add(task)
            stats.stats.calls_total += 1
            task.add_done_callback(finished)
            refresh()
    finally:
        if governor_task is not None:
            await cancel_task(governor_task)
        if endpoint is not None:
            await endpoint.stop()  # hangs up live calls: their sessions see LegEnded and finish
        if sessions:
            await asyncio.wait(sessions, timeout=SESSION_DRAIN_S)
        if publisher is not None:
            await publisher.stop(drain=True, timeout=PUBLISHER_DRAIN_S)
        await after.stop()
        if engine is not None:
            stats.stats.decode = engine.decode_stats()
            engine.close()
        if acd is not None:
            if acd.supervision is not None:
                await acd.supervision.close()
            acd.store.close()
        stats.stats.active_calls = len(sessions)
        stats.stats.endpoint_calls = 0
        stats.stats.stopped = True
        stats.stats.state = "stopped"
        spool.close()
        with contextlib.suppress(OSError):
            stats.write()
    return 0


def worker_name(settings: Settings, index: int) -> str:
    """The worker's name in the shared ACD store: ``worker<i>``, qualified by its host when
    workers run on several hosts (``sip.bind_host``), so one host's restart frees only its own."""
    host = settings.sip.bind_host
    return f"worker{index}@{host}" if host else f"worker{index}"


def siprec_rules(settings: Settings, directory: Directory | None) -> SiprecRules | None:
    """How this worker tells the agent in a SIPREC session (None: sessions refused)."""
    if not settings.siprec.enabled:
        return None
    ids = frozenset(a.id for a in directory.agents) if directory is not None and settings.siprec.agent_from_directory \
        else frozenset()
    return SiprecRules(agent_aor=settings.siprec.agent_aor, agent_ids=ids)


def caller_slots(settings: Settings, directory: Directory | None = None) -> int:
    """Callers one worker admits: ``sip.calls_per_worker`` (which ``serve`` sets from the
    capacity plan) within its slots (:func:`slots_for_callers`)."""
    slots = slots_for_callers(settings, directory)
    return min(slots, settings.sip.calls_per_worker or slots)


def slots_for_callers(settings: Settings, directory: Directory | None = None) -> int:
    """Callers one worker's call slots can hold: all of them, or half when agents may be bridged
    (each caller then needs a slot for their agent's leg). ``directory``: the agents file,
    already read (else it is read here)."""
    if directory is None:
        directory = agents_directory(settings, quiet=True)
    has_agents = directory is not None and bool(directory.agents)
    return max(1, settings.sip.max_calls // 2) if has_agents else settings.sip.max_calls


def agents_directory(settings: Settings, *, quiet: bool = False) -> Directory | None:
    """The agents file; None (logged unless ``quiet``) when it is unusable."""
    try:
        return load_directory(settings.agents_file)
    except DirectoryError:
        if not quiet:
            log.exception("agents file unusable: queues will have no agents")
        return None


async def _acd_context(settings: Settings, directory: Directory | None, endpoint: SipEndpoint, port: int,
                       index: int) -> tuple[AcdContext | None, QueuePrompts]:
    """The shared ACD store and how this worker reaches agents (through the front's registrar
    when a front dispatches to it, else the agents' static contacts)."""
    prompts = QueuePrompts(settings.data_dir / "prompts" / "acd")
    if directory is None:
        return None, prompts
    store = AcdStore(settings.store_url)
    await asyncio.to_thread(store.sync_directory, directory, ready_on_register=settings.acd.ready_on_register)
    sip = settings.sip
    behind_front = port != sip.port or sip.worker_host != sip.host  # on a worker host: the front's address
    front = f"{sip.host}:{sip.port}" if behind_front else None
    static = frozenset(a.id for a in directory.agents if a.contact)
    name = worker_name(settings, index)
    desk = SupervisionDesk(store=store, endpoint=endpoint, worker=name, front=front,
                           ring_timeout_s=settings.acd.ring_timeout_s,
                           static_contacts={a.id: a.contact for a in directory.agents if a.contact})
    return AcdContext(store=store, endpoint=endpoint, worker=name, front=front, supervision=desk,
                      static_agents=static, announce=prompts.announce), prompts


async def _feature_code(leg: CallLeg, acd: AcdContext | None, prompts: QueuePrompts,
                        publish: Callable[[Event], None]) -> None:
    """An agent dialed ``*1`` (ready), ``*2`` (not ready) or ``*0`` (logged out) from their phone:
    the front authenticated them (``X-CC-Agent``); set the state, say so, hang up."""
    code = uri_user(leg.local_uri)
    state_name, text = FEATURE_CODES[code]
    change = None
    if acd is not None and leg.agent_identity:
        change = await asyncio.to_thread(acd.store.set_state, leg.agent_identity, AgentStatus(state_name),
                                         "feature_code")
    if change is not None:
        publish(AgentStateChanged(t=0.0, party=Party.AGENT, agent_id=change.agent_id, state=change.state,
                                  previous=change.previous, reason=change.reason))
    if leg.agent_identity and acd is not None:
        await prompts.say(leg, f"feature_{state_name}", text)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(leg.hangup(), 5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="callcenter-worker")
    p.add_argument("--settings-json", type=Path, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--index", type=int, default=0)
    args = p.parse_args(argv)
    faulthandler.enable()  # a crash inside PJSIP's threads leaves its Python stacks in the log
    logging.basicConfig(level=os.environ.get("CALLCENTER_LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format=f"%(asctime)s worker{args.index} %(levelname)s %(name)s: %(message)s")
    settings = Settings.model_validate_json(args.settings_json.read_text())
    profile_dir = os.environ.get("CALLCENTER_PROFILE_DIR")
    if not profile_dir:
        return asyncio.run(run_worker(settings, port=args.port, index=args.index))
    # a developer's view of where the event loop's time goes (py-spy cannot attach everywhere):
    # cProfile of this thread's CPU time (wall time would charge it the other processes' turns),
    # written when the worker stops
    import cProfile
    import time

    with cProfile.Profile(time.thread_time) as prof:
        try:
            return asyncio.run(run_worker(settings, port=args.port, index=args.index))
        finally:
            prof.dump_stats(Path(profile_dir) / f"worker{args.index}.prof")


if __name__ == "__main__":
    raise SystemExit(main())
