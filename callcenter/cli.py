"""The ``callcenter`` command: serve calls, replay recordings for QA, read the CRM, test-call."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callcenter import __version__
from callcenter.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    pass


def _common(defaults: bool) -> argparse.ArgumentParser:
    """Options accepted before and after the subcommand (``callcenter replay --data-dir D``)."""
    c = argparse.ArgumentParser(add_help=False)
    d = (lambda v: v) if defaults else (lambda v: argparse.SUPPRESS)
    c.add_argument("-c", "--config", type=Path, default=d(None), help="TOML settings file")
    c.add_argument("--data-dir", type=Path, default=d(None),
                   help="where the SQLite store, recordings and outboxes live")
    c.add_argument("-v", "--verbose", action="count", default=d(0))
    return c


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callcenter", description=__doc__, parents=[_common(True)])
    p.add_argument("--version", action="version", version=f"callcenter {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    common = _common(False)
    _add = sub.add_parser

    def add_parser(name: str, **kw: object) -> argparse.ArgumentParser:
        return _add(name, parents=[common], **kw)  # type: ignore[arg-type]

    sub.add_parser = add_parser  # type: ignore[method-assign]

    r = sub.add_parser("replay", help="run recorded calls through the pipeline (QA)")
    r.add_argument("files", nargs="+", help="WAV/FLAC files or folders of them")
    r.add_argument("--json", action="store_true", help="JSON lines instead of text")
    r.add_argument("--expect", type=Path, help="expectations JSON for a single file")
    r.add_argument("--check", action="store_true", help="check each file against its <name>.expect.json")
    r.add_argument("--no-store", action="store_true", help="do not write after-call records")
    r.add_argument("--engine", choices=["auto", "whisper", "vosk", "pocketsphinx", "none"])
    r.add_argument("--vosk-model", type=Path, help="vosk model folder (else VOSK_MODEL_PATH)")
    r.add_argument("--dead-air", type=float, metavar="SECONDS", help="dead-air threshold")
    r.add_argument("--partials", action="store_true",
                   help="live partial transcripts too (off by default: re-decodes nobody watches in a batch)")
    r.add_argument("--publish", action="store_true",
                   help="publish events to MQTT as they happen (mqtt.host, else the local serve's embedded broker)")
    r.add_argument("--jobs", "-j", type=_positive_int, metavar="N",
                   help="files replayed at once, one worker process each (default: the cores; 1: in this process)")
    r.add_argument("--backend", choices=["process", "ray"], default="process",
                   help="where the workers run: local processes, or Ray actors (pip install 'callcenter[ray]')")
    r.add_argument("--ray-address", metavar="ADDR",
                   help="a running Ray cluster (ray://host:10001 or auto); default: a local Ray for this batch")

    c = sub.add_parser("calls", help="read after-call records from the CRM store")
    csub = c.add_subparsers(dest="calls_command", required=True)
    cl = csub.add_parser("list", help="recent calls")
    cl.add_argument("--limit", type=int, default=20)
    cl.add_argument("--search", help="text to look for in transcripts and summaries")
    cs = csub.add_parser("show", help="one call's summary and transcript")
    cs.add_argument("call_id")

    s = sub.add_parser("serve", help="answer SIP calls into the IVR (the main job)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--workers", type=int,
                   help="endpoint processes (4 calls each); default: as many as the capacity plan says")
    s.add_argument("--front", choices=["auto", "kamailio", "none"])
    s.add_argument("--console-port", type=int)
    s.add_argument("--no-console", action="store_true")
    s.add_argument("--mqtt-host", help="external MQTT broker (default: embedded)")
    s.add_argument("--role", choices=["all", "front", "workers"], default="all",
                   help="on several hosts: 'front' (Kamailio, console, API; sip.remote_workers) or "
                        "'workers' (workers on sip.bind_host only, shared store.url and mqtt.host)")
    s.add_argument("--bind-host", help="this host's address its workers listen on (sip.bind_host)")
    s.add_argument("--secure", action="store_true",
                   help="encrypt every hop: HTTPS, MQTT over TLS with a password (certificates made "
                        "in data_dir/certs when missing); setting `secure`")

    ce = sub.add_parser("certs", help="make a local CA and certificates for the secure mode")
    ce.add_argument("--dir", type=Path, help="where (default: data_dir/certs, which --secure uses)")
    ce.add_argument("--host", action="append", default=[],
                    help="a name or address the server certificate is for (repeat; default 127.0.0.1 localhost)")
    ce.add_argument("--force", action="store_true", help="make new ones even if they exist")

    k = sub.add_parser("call", help="place a test call that plays a recording and presses keys")
    k.add_argument("uri", help="sip:ivr@127.0.0.1:5060")
    k.add_argument("--play", type=Path, help="WAV file to play into the call")
    k.add_argument("--dtmf", nargs="*", default=[], help="keys to press, e.g. 1 2 #")
    k.add_argument("--dtmf-delay", type=float, default=1.0, help="seconds before each key")
    k.add_argument("--inband", action="store_true", help="send DTMF as audio tones, not RFC 4733")
    k.add_argument("--dtmf-first", action="store_true",
                   help="press the keys, then play (press 0, then talk to the agent)")
    k.add_argument("--hangup-after", type=float, help="seconds after which to hang up")
    k.add_argument("--local-port", type=int, default=0)
    from telephony.test_caller import add_secure_arguments

    add_secure_arguments(k)

    g = sub.add_parser("agent", help="a test agent's phone: register, answer calls, play, record")
    from telephony.test_agent import add_arguments as agent_arguments

    agent_arguments(g)

    ag = sub.add_parser("agents", help="the agents directory (settings.acd.agents_file)")
    agsub = ag.add_subparsers(dest="agents_command", required=True)
    aa = agsub.add_parser("add", help="add or replace an agent (SIP digest HA1 + console password hash)")
    aa.add_argument("id", help="agent id: the SIP user its phone registers as")
    aa.add_argument("--password", help="asked for when left out (keeps it out of shell history)")
    aa.add_argument("--skills", default="", help="queues served, comma-separated: billing,agents")
    aa.add_argument("--name", default="")
    aa.add_argument("--supervisor", action="store_true")
    aa.add_argument("--contact", help="a static SIP URI to ring instead of the registrar's contact")
    agsub.add_parser("list", help="the agents in the file (no secrets)")

    a = sub.add_parser("api", help="serve the CRM REST API (OpenAPI at /openapi.json)")
    a.add_argument("--host")
    a.add_argument("--port", type=int)

    d = sub.add_parser("deliver", help="write spooled CRM records and send waiting webhooks now")
    d.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the webhook receiver")

    kb = sub.add_parser("kb", help="the knowledge base for agent suggestions")
    kbsub = kb.add_subparsers(dest="kb_command", required=True)
    kbi = kbsub.add_parser("index", help="index (or re-index changed) Markdown articles into SQLite FTS5")
    kbi.add_argument("dir", nargs="?", type=Path, help="articles folder (default: knowledge.kb_dir)")
    kbs = kbsub.add_parser("search", help="what an agent would be shown for some caller words")
    kbs.add_argument("text")
    kbs.add_argument("--queue", help="the IVR queue of the call (boosts its articles)")
    kbe = kbsub.add_parser("eval", help="recall@k on labelled caller questions")
    kbe.add_argument("questions", nargs="?", type=Path, help="YAML (default: the sample questions)")
    kbe.add_argument("-k", type=int, default=3)

    ru = sub.add_parser("rules", help="live rules (tag calls, alert agents and supervisors, webhooks)")
    rusub = ru.add_subparsers(dest="rules_command", required=True)
    rut = rusub.add_parser("test", help="run a rules file over recorded calls and print what fired where")
    rut.add_argument("rules_file", type=Path, help="the rules YAML")
    rut.add_argument("files", nargs="+", help="recordings (or folders of them) or .jsonl event logs")
    rut.add_argument("--json", action="store_true", help="one JSON line per match")
    rut.add_argument("--engine", choices=["auto", "whisper", "vosk", "pocketsphinx", "none"])

    qa = sub.add_parser("qa", help="quality scorecards on evaluation forms")
    qasub = qa.add_subparsers(dest="qa_command", required=True)
    qas = qasub.add_parser("score", help="score recorded calls (or .jsonl event logs) on a form; print a table")
    qas.add_argument("form", help="a form YAML, or a shipped form's name (standard, collections)")
    qas.add_argument("files", nargs="+", help="recordings (or folders of them) or .jsonl event logs")
    qas_fmt = qas.add_mutually_exclusive_group()
    qas_fmt.add_argument("--csv", action="store_true", help="CSV: file, one column per question, score, passed")
    qas_fmt.add_argument("--json", action="store_true", help="one JSON scorecard per line")
    qas.add_argument("--engine", choices=["auto", "whisper", "vosk", "pocketsphinx", "none"])
    qas.add_argument("--jobs", type=int, default=1, help="replay recordings on N worker processes (as replay --jobs)")

    i = sub.add_parser("ivr", help="IVR tools")
    isub = i.add_subparsers(dest="ivr_command", required=True)
    ir = isub.add_parser("render-prompts", help="render a flow's prompts to WAV with espeak-ng")
    ir.add_argument("flow", nargs="?", type=Path)
    ir.add_argument("--out", type=Path)
    return p


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.data_dir:
        overrides["data_dir"] = str(args.data_dir)
    cmd = args.command
    if cmd in ("rules", "qa") and args.engine:
        overrides["asr.engine"] = args.engine
    if cmd == "replay":
        if args.engine:
            overrides["asr.engine"] = args.engine
        if args.vosk_model:
            overrides["asr.vosk_model_path"] = str(args.vosk_model)
        if args.dead_air:
            overrides["dead_air.threshold_s"] = args.dead_air
        if not args.partials:
            overrides["asr.partials"] = False
    elif cmd == "api":
        if args.host:
            overrides["store.api_host"] = args.host
        if args.port:
            overrides["store.api_port"] = args.port
    elif cmd == "serve":
        for key, value in (("sip.host", args.host), ("sip.port", args.port), ("sip.workers", args.workers),
                           ("sip.front", args.front), ("console.port", args.console_port),
                           ("mqtt.host", args.mqtt_host), ("sip.bind_host", args.bind_host)):
            if value is not None:
                overrides[key] = value
        if args.no_console:
            overrides["console.enabled"] = False
        if args.secure:
            overrides["secure"] = True
    return load_settings(args.config, overrides)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "replay":
            return asyncio.run(_replay(args, settings))
        if args.command == "calls":
            return _calls(args, settings)
        if args.command == "certs":
            return _certs(args, settings)
        if args.command in ("replay", "deliver") and settings.store.webhook_url:
            from callcenter.credentials import resolve_secrets

            settings = resolve_secrets(settings).settings  # the webhook secret serve signs with
        if args.command == "serve":
            from callcenter.serve import serve

            return asyncio.run(serve(settings, args.role))
        if args.command == "api":
            from callcenter.api_server import run_api

            return asyncio.run(run_api(settings))
        if args.command == "deliver":
            from callcenter.deliver import run_deliver

            return asyncio.run(run_deliver(settings, sys.stdout, timeout_s=args.timeout))
        if args.command == "call":
            from callcenter.testcall import run_test_call

            return asyncio.run(run_test_call(args, settings))
        if args.command == "agent":
            from telephony.test_agent import run_from_args

            return asyncio.run(run_from_args(args, settings.sip))
        if args.command == "agents":
            return _agents(args, settings)
        if args.command == "kb":
            from callcenter.kb_cli import run_kb

            return run_kb(args, settings, sys.stdout)
        if args.command == "rules":
            from callcenter.rules_cli import run_rules_test

            return asyncio.run(run_rules_test(args.files, args.rules_file, settings, sys.stdout, as_json=args.json))
        if args.command == "qa":
            from callcenter.qa_cli import run_qa_score

            fmt = "csv" if args.csv else "json" if args.json else "table"
            return asyncio.run(run_qa_score(args.form, args.files, settings, sys.stdout, sys.stderr, fmt=fmt,
                                            jobs=max(1, args.jobs)))
        if args.command == "ivr":
            from ivr.prompts import main as render_main

            argv2 = [str(args.flow)] if args.flow else []
            if args.out:
                argv2 += ["--out", str(args.out)]
            return render_main(argv2) or 0
    except KeyboardInterrupt:
        return 130
    except (CliError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _certs(args: argparse.Namespace, settings: Settings) -> int:
    from callcenter.certs import DEFAULT_HOSTS, ensure_certs

    folder = args.dir or settings.data_dir / "certs"
    paths = ensure_certs(folder, tuple(args.host) or DEFAULT_HOSTS, force=args.force)
    print(f"CA {paths.ca_cert} (clients trust this one)\n"
          f"server {paths.cert} key {paths.key}\n"
          f"client {paths.client_cert} key {paths.client_key}")
    return 0


PUBLISH_FAILED = 3
"""``replay --publish`` exit code when events did not reach the MQTT broker."""


class CliError(RuntimeError):
    """A user-facing failure: printed as one line, exit 2."""


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from callcenter.aftercall import AfterCall
    from callcenter.replay import exit_code, expand_inputs, replay_batch
    from callcenter.replay_parallel import make_backend, replay_pooled
    from callcenter.replay_pool import ReplayPoolError
    from callcenter.wiring import prepare_process
    from speech.asr.base import AsrError

    paths = expand_inputs(args.files)
    if not paths:
        raise CliError("no audio files found in the given paths")
    if args.expect and len(paths) > 1:
        raise CliError("--expect takes one file; use --check for a batch with <name>.expect.json files")
    backend = make_backend(args.backend, settings, len(paths), jobs=args.jobs, store=not args.no_store,
                           as_json=args.json, publish=bool(args.publish or settings.mqtt.host),
                           ray_address=args.ray_address)
    engine = None
    if backend is None:  # in this process: its one model
        try:
            engine = await asyncio.to_thread(prepare_process, settings)
        except AsrError as exc:
            raise CliError(str(exc)) from exc
    after = AfterCall(settings, store=not args.no_store)  # redaction and summary even with --no-store
    publisher = None
    undelivered = 0
    outbox: Path | None = None
    outbox_lock: Any = None
    try:
        await after.start()
        if args.publish or settings.mqtt.host:
            from callcenter.credentials import embedded_broker
            from live.publisher import MqttPublisher

            mqtt = settings.mqtt
            host, port = (mqtt.host, mqtt.port) if mqtt.host else ("127.0.0.1", mqtt.embedded_port)
            local = None if mqtt.host else embedded_broker(settings)
            if local is not None:  # serve's embedded broker: its TLS and password, as serve recorded
                host, port = local["host"], local["port"]
                mqtt = mqtt.model_copy(update={k: local[k] for k in ("tls", "ca_file", "username", "password")})
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            outbox, outbox_lock = _claim_outbox(settings.data_dir)
            publisher = MqttPublisher(mqtt, outbox, host=host, port=port)
            await publisher.start()
        if backend is None:
            results = await replay_batch(
                paths, settings, engine, as_json=args.json, expect=args.expect, check=args.check, after_call=after,
                extra_sinks=[publisher.publish] if publisher else [],
            )
        else:
            try:
                results = await replay_pooled(paths, backend, as_json=args.json, expect=args.expect, check=args.check,
                                              publish=publisher.publish if publisher else None)
            except ReplayPoolError as exc:
                raise CliError(str(exc)) from exc
    finally:
        if publisher is not None:
            await publisher.stop(drain=True, timeout=10.0)
            undelivered = publisher.pending
            if undelivered:
                stats = publisher.stats()
                what = "nothing reached" if stats.published == 0 else f"{undelivered} messages did not reach"
                print(f"error: --publish: {what} the MQTT broker at {publisher.host}:{publisher.port}; "
                      f"{undelivered} messages wait in {outbox}, the next replay --publish sends them",
                      file=sys.stderr)
        if outbox_lock is not None:
            outbox_lock.close()
        await after.stop()
        if engine is not None:
            engine.close()
    failed = [r for r in results if not r.ok]
    if len(paths) > 1 and not args.json:
        print(f"{len(results) - len(failed)} of {len(results)} recordings OK", file=sys.stderr)
    code = exit_code(results)
    return max(code, PUBLISH_FAILED) if undelivered else code


def _claim_outbox(data_dir: Path) -> tuple[Path, Any]:
    """An MQTT outbox file no other running replay uses (flock), so two concurrent replays never
    send the same rows; a later replay takes over what a finished one left behind."""
    import fcntl

    for n in range(64):
        path = data_dir / ("mqtt-outbox-replay.sqlite" if n == 0 else f"mqtt-outbox-replay-{n}.sqlite")
        lock = open(path.with_suffix(".lock"), "w")  # noqa: SIM115 - held for the whole replay
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return path, lock
        except OSError:
            lock.close()
    raise CliError(f"more than 64 concurrent replays publish from {data_dir}")


def _agents(args: argparse.Namespace, settings: Settings) -> int:
    """``agents add`` / ``agents list`` on ``settings.agents_file`` (written owner-only)."""
    from pydantic import ValidationError

    from telephony.acd.directory import (
        DirectoryError,
        load_directory,
        make_agent,
        save_directory,
        upsert_agent,
    )

    path = settings.agents_file
    try:
        directory = load_directory(path)
    except DirectoryError as exc:
        raise CliError(str(exc)) from None
    if args.agents_command == "list":
        print(f"{path} (realm {directory.realm}): {len(directory.agents)} agent(s)")
        for a in directory.agents:
            reach = f"contact {a.contact}" if a.contact else ("registers" if a.ha1 else "cannot register")
            role = " supervisor" if a.supervisor else ""
            print(f"  {a.id:<16} {a.name or '-':<20} skills={','.join(a.skills) or '-'} {reach}{role}")
        return 0
    password = args.password
    if password is None:
        import getpass

        password = getpass.getpass(f"password for {args.id}: ")
    if not password:
        raise CliError("an empty password is not allowed")
    skills = [s.strip() for s in args.skills.split(",") if s.strip()]
    try:
        agent = make_agent(args.id, password, realm=directory.realm, name=args.name, skills=skills,
                           supervisor=args.supervisor, contact=args.contact)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise CliError(f"agent {args.id!r}: {problems}") from None
    save_directory(upsert_agent(directory, agent), path)
    print(f"{'updated' if directory.get(agent.id) else 'added'} agent {agent.id} in {path}")
    return 0


def _calls(args: argparse.Namespace, settings: Settings) -> int:
    from summaries.report import format_call, format_call_list
    from summaries.store import CrmStore

    store = CrmStore(settings.store_url)
    store.start()
    try:
        if args.calls_command == "list":
            rows = store.search(text=args.search, limit=args.limit) if args.search else store.list_calls(limit=args.limit)
            print(format_call_list(rows))
            return 0
        call = store.get_call(args.call_id)
        if call is None:
            raise CliError(f"no call with id {args.call_id!r}")
        print(format_call(call))
        return 0
    finally:
        store.stop()
