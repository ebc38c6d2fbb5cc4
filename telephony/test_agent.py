"""A scripted agent phone: register at the front, answer calls, play a WAV, record what it hears.

The agent side of end-to-end tests, as ``test_caller`` is the caller side: a ``SipEndpoint`` on
its own port whose account REGISTERs with digest credentials (``Registration``), then takes the
next call(s) the ACD rings it with (``--answer-after``, ``--no-answer`` for ring timeouts,
``--calls N``), plays a recording, holds, transfers or hangs up on cue, and prints one JSON
result. ``--dial '*1'`` dials a feature code instead. pjsua2 allows one endpoint per process, so
tests run it in a subprocess: ``python -m telephony.test_agent sip:alice@127.0.0.1:5060
--password P --play agent.wav --record heard.wav``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speech.events import DtmfDigit
from speech.frames import AudioFrame
from telephony.endpoint import SipEndpoint
from telephony.items import CallFailed, CallReplaced, LegEnded
from telephony.leg import CallLeg
from telephony.net import free_port
from telephony.pjlib import Registration
from telephony.settings import SipSettings
from telephony.test_caller import add_secure_arguments, media_profiles, secure_settings
from telephony.wav_writer import IncrementalWav

DIAL_HOLD_S = 15.0
"""How long a ``--dial`` call may last before the agent hangs up (the worker ends it first)."""


@dataclass
class AgentCall:
    """One call the agent's phone rang with (JSON-ready)."""

    call_id: str
    remote_uri: str
    answered: bool
    answered_at: float | None = None
    """Epoch seconds of the answer."""
    duration: float = 0.0
    """Call seconds from answer to end (frame clock)."""
    codec: str = ""
    media: list[str] = field(default_factory=list)
    """Each audio stream's profile: ``RTP/SAVP`` when SRTP was negotiated."""
    recording_path: str | None = None
    """Mono WAV of what the agent heard."""
    frames_heard: int = 0
    heard_rms_dbfs: float = -120.0
    dtmf: list[str] = field(default_factory=list)
    played: bool = False
    held: bool = False
    replaced: bool = False
    """The call was taken over by an INVITE with Replaces (we were the consulted agent)."""
    consulted: bool = False
    """We consulted another agent and transferred the call to them (attended)."""
    transfer_status: int | None = None
    end_reason: str = ""
    """``remote`` (the other side hung up), ``local`` (we did), ``transferred``, ``cancelled``
    (the caller gave up while it rang), ``not_answered`` (``--no-answer``: it rang out)."""
    status: int = 0
    """SIP status the call ended with."""


@dataclass
class TestAgentResult:
    """What the agent's phone did (JSON-ready with ``to_dict``)."""

    __test__ = False  # not a pytest class

    uri: str
    registered: bool
    status: int
    """The REGISTER's final status (200, 401, 403...; 0: no answer from the registrar)."""
    reason: str
    local_port: int = 0
    calls: list[AgentCall] = field(default_factory=list)
    dialed: dict[str, Any] | None = None
    """``--dial``: status, answered, duration, hangup_by of the feature-code call."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AgentScript:
    """What the agent does with each call."""

    play: Path | None = None
    play_delay: float = 0.0
    record: Path | None = None
    answer_after: float = 0.0
    answer: bool = True
    calls: int = 1
    hold_after: float | None = None
    hold_for: float = 2.0
    transfer_to: str | None = None
    transfer_after: float = 1.0
    consult: str | None = None
    """Attended transfer: after ``transfer_after``, hold the call, call this URI, and once it
    answers transfer the caller to it (REFER with Replaces)."""
    hangup_after: float | None = None
    """Seconds from answer; None: wait for the other side's BYE."""
    wait_call_s: float = 60.0
    """How long to wait for each call to ring."""
    dtmf_at: tuple[tuple[float, str], ...] = ()
    """(seconds after answer, keys): RFC 4733 digits to send (a supervisor switching modes)."""


def parse_agent_uri(uri: str) -> tuple[str, str]:
    """``sip:alice@host[:port]`` → (``alice``, ``host:port``)."""
    m = re.fullmatch(r"sips?:([^@:;]+)@([^;>]+)", uri.strip())
    if m is None:
        raise ValueError(f"not an agent URI (sip:ID@HOST[:PORT]): {uri!r}")
    user, host = m.groups()
    return user, host if ":" in host else f"{host}:5060"


async def run_test_agent(
    uri: str, password: str, script: AgentScript | None = None, *, realm: str = "*",
    dial: str | None = None, settings: SipSettings | None = None, port: int | None = None,
    register_timeout_s: float = 10.0, on_result: Callable[[TestAgentResult], None] | None = None,
    tls: bool = False, on_registered: Callable[[], None] | None = None,
) -> TestAgentResult:
    """Register as the agent of ``uri`` and run ``script`` (or dial ``dial`` and return).
    ``tls``: register and dial over TLS (``uri`` names the front's TLS port; ``settings``
    then has ``tls_port`` and, for the front to reach the phone, ``tls_cert``/``tls_key``).

    ``on_result`` gets the result before the endpoint is torn down (pjlib's shutdown cannot
    swallow the report). ``on_registered`` runs once the registrar has accepted the phone."""
    script = script or AgentScript()
    user, registrar = parse_agent_uri(uri)
    sip = (settings or SipSettings()).model_copy(update={"record": False})
    local_port = port or free_port(sip.host)
    endpoint = SipEndpoint(sip, port=local_port, name=f"agent-{user}",
                           registration=Registration(registrar, user, password, realm, tls=tls))
    await endpoint.start()
    try:
        reg = await endpoint.wait_registered(register_timeout_s)
        result = TestAgentResult(uri=uri, registered=reg.active, status=reg.status,
                                 reason=reg.reason if reg.status else "no answer from the registrar",
                                 local_port=local_port)
        if reg.active:
            if on_registered is not None:
                on_registered()
            if dial is not None:
                result.dialed = await _dial(endpoint, f"sip:{dial}@{registrar}" + (";transport=tls" if tls else ""))
            else:
                await _take_calls(endpoint, script, result)
        if on_result is not None:
            on_result(result)
        return result
    finally:
        await endpoint.stop()


async def _dial(endpoint: SipEndpoint, target: str) -> dict[str, Any]:
    try:
        leg = await endpoint.place_call(target, answer_timeout_s=15.0, record=False)
    except CallFailed as exc:
        return {"uri": target, "answered": False, "status": exc.status, "reason": exc.reason}
    try:
        ended = await asyncio.wait_for(leg.wait_ended(), DIAL_HOLD_S)
        hangup_by = "remote"
    except TimeoutError:
        await leg.hangup()
        ended, hangup_by = await leg.wait_ended(), "local"
    return {"uri": target, "answered": True, "status": 200, "reason": ended.reason,
            "duration": leg.call_time, "hangup_by": hangup_by}


async def _take_calls(endpoint: SipEndpoint, script: AgentScript, result: TestAgentResult) -> None:
    for n in range(script.calls):
        try:
            leg = await asyncio.wait_for(endpoint.ringing(), script.wait_call_s)
        except TimeoutError:
            return
        call = AgentCall(call_id=leg.call_id, remote_uri=leg.remote_uri, answered=False)
        result.calls.append(call)
        if not script.answer:
            ended = await leg.wait_ended()
            call.end_reason, call.status = "not_answered", ended.status
            continue
        if script.answer_after > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(leg.wait_ended(), script.answer_after)
        if leg.ended is not None or not await endpoint.answer(leg):
            ended = await leg.wait_ended()
            call.end_reason, call.status = "cancelled", ended.status
            continue
        call.answered, call.answered_at = True, round(time.time(), 3)
        call.media = await media_profiles(endpoint, leg)
        await _run_call(leg, script, call, _numbered(script.record, n), endpoint)


def _numbered(path: Path | None, n: int) -> Path | None:
    """The n-th call's recording: ``heard.wav``, ``heard-2.wav``..."""
    if path is None or n == 0:
        return path
    return path.with_name(f"{path.stem}-{n + 1}{path.suffix}")


async def _run_call(leg: CallLeg, script: AgentScript, call: AgentCall, record: Path | None,
                    endpoint: SipEndpoint) -> None:
    heard: list[np.ndarray] = []
    current = [leg]
    """The call's leg now: a Replaces moves the conversation to a new one."""
    listener = asyncio.create_task(_listen(current, call, heard))
    actions = [asyncio.create_task(_play(leg, script, call))]
    if script.hold_after is not None:
        actions.append(asyncio.create_task(_hold(leg, script.hold_after, script.hold_for, call)))
    if script.transfer_to is not None:
        actions.append(asyncio.create_task(_transfer(leg, script.transfer_to, script.transfer_after)))
    if script.dtmf_at:
        actions.append(asyncio.create_task(_keys(leg, script.dtmf_at)))
    consulting: list[CallLeg] = []
    if script.consult is not None:
        actions.append(asyncio.create_task(
            _attended(endpoint, leg, script.consult, script.transfer_after, call, consulting)))
    try:
        await asyncio.wait({listener}, timeout=script.hangup_after)
        if not listener.done():
            call.end_reason = "local"
            with contextlib.suppress(RuntimeError):
                await current[0].hangup()
            await asyncio.wait_for(listener, 5.0)
    finally:
        for task in (*actions, listener):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for other in consulting:  # the consulted agent's side is replaced, or we end it
            if other.ended is None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(other.wait_ended(), 3.0)
            if other.ended is None:
                with contextlib.suppress(Exception):
                    await other.hangup()
    leg = current[0]
    ended = leg.ended
    call.status = ended.status if ended else 0
    if not call.end_reason:
        call.end_reason = "transferred" if leg.transfer_status and 200 <= leg.transfer_status < 300 else "remote"
    call.transfer_status = leg.transfer_status
    call.codec = leg.codec
    call.duration = round(leg.call_time, 3)
    call.frames_heard = leg.frames_received
    if heard:
        pcm = np.concatenate(heard)
        x = pcm.astype(np.float64)
        energy = float(np.dot(x, x))
        if energy > 0:
            call.heard_rms_dbfs = round(10 * np.log10(energy / len(x) / 32768.0**2), 2)
        if record is not None:
            await asyncio.to_thread(_write_wav, record, pcm, leg.sample_rate)
            call.recording_path = str(record)


def _write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    wav = IncrementalWav(path, sample_rate=rate, channels=1)
    try:
        wav.write(pcm)
    finally:
        wav.close()


async def _listen(current: list[CallLeg], call: AgentCall, heard: list[np.ndarray]) -> None:
    while True:
        item = await current[0].inbox.get()
        if isinstance(item, CallReplaced) and isinstance(item.leg, CallLeg):
            current[0] = item.leg  # the transferred caller, in place of the consultation
            call.replaced = True
            continue
        if isinstance(item, LegEnded):
            return
        if isinstance(item, DtmfDigit):
            call.dtmf.append(item.digit)
        elif isinstance(item, AudioFrame):
            heard.append(item.samples())


async def _play(leg: CallLeg, script: AgentScript, call: AgentCall) -> None:
    if script.play is None:
        return
    await asyncio.sleep(script.play_delay)
    call.played = await leg.play(script.play)


async def _hold(leg: CallLeg, after: float, hold_for: float, call: AgentCall) -> None:
    await asyncio.sleep(after)
    await leg.hold()
    call.held = True
    await asyncio.sleep(hold_for)
    await leg.unhold()


async def _attended(endpoint: SipEndpoint, leg: CallLeg, target: str, after: float, call: AgentCall,
                    consulting: list[CallLeg]) -> None:
    """Hold the caller, consult ``target``, then hand the caller over (REFER with Replaces)."""
    await asyncio.sleep(after)
    await leg.hold()
    call.held = True
    other = await endpoint.place_call(target, answer_timeout_s=15.0, record=False,
                                      on_placed=consulting.append)
    await asyncio.sleep(1.0)  # "I have a customer for you"
    await endpoint.transfer_replaces(leg, other)
    call.consulted = True


async def _keys(leg: CallLeg, presses: tuple[tuple[float, str], ...]) -> None:
    start = time.monotonic()
    for at, keys in sorted(presses):
        await asyncio.sleep(max(0.0, at - (time.monotonic() - start)))
        await leg.send_dtmf(keys)


def _dtmf_at(text: str) -> tuple[float, str]:
    at, _, keys = text.partition(":")
    return float(at), keys


async def _transfer(leg: CallLeg, target: str, after: float) -> None:
    await asyncio.sleep(after)
    await leg.transfer(target)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The agent's options (shared by ``callcenter agent`` and ``python -m``)."""
    ap.add_argument("uri", help="sip:alice@127.0.0.1:5060 (the agent id at the front)")
    ap.add_argument("--password", required=True)
    ap.add_argument("--realm", default="*", help="digest realm to answer (default: any)")
    ap.add_argument("--play", type=Path, help="WAV to play into each answered call")
    ap.add_argument("--play-delay", type=float, default=0.0)
    ap.add_argument("--record", type=Path, help="WAV of what the agent hears (-2, -3... for later calls)")
    ap.add_argument("--answer-after", type=float, default=0.0, help="ring this long before answering")
    ap.add_argument("--no-answer", action="store_true", help="let calls ring out (ring-timeout tests)")
    ap.add_argument("--calls", type=int, default=1, help="take this many calls in sequence")
    ap.add_argument("--wait-call", type=float, default=60.0, help="seconds to wait for each call")
    ap.add_argument("--hold-after", type=float, help="put the caller on hold after this many seconds")
    ap.add_argument("--hold-for", type=float, default=2.0)
    ap.add_argument("--transfer-to", help="blind-transfer (REFER) the call to this URI")
    ap.add_argument("--transfer-after", type=float, default=1.0)
    ap.add_argument("--consult", help="attended transfer: hold, call this URI, then transfer the caller to it")
    ap.add_argument("--hangup-after", type=float, help="hang up this long after answering")
    ap.add_argument("--dtmf-at", action="append", default=[], type=_dtmf_at, metavar="SECONDS:KEYS",
                    help="send these keys this long after answering (repeatable)")
    ap.add_argument("--dial", help="dial this user at the front instead (a feature code: '*1')")
    ap.add_argument("--port", type=int, help="local SIP port (default: a free one)")
    ap.add_argument("--register-timeout", type=float, default=10.0)
    ap.add_argument("--ready-file", type=Path, help="create this file once registered")
    add_secure_arguments(ap)
    ap.add_argument("--cert", type=Path, help="with --tls: certificate the phone's TLS listener presents "
                    "(the front connects to it to ring the agent)")
    ap.add_argument("--key", type=Path, help="private key of --cert")


def script_of(args: argparse.Namespace) -> AgentScript:
    return AgentScript(
        play=args.play, play_delay=args.play_delay, record=args.record, answer_after=args.answer_after,
        answer=not args.no_answer, calls=args.calls, hold_after=args.hold_after, hold_for=args.hold_for,
        transfer_to=args.transfer_to, transfer_after=args.transfer_after, hangup_after=args.hangup_after,
        consult=args.consult,
        wait_call_s=args.wait_call, dtmf_at=tuple(args.dtmf_at),
    )


def exit_code(result: TestAgentResult, script: AgentScript, dialed: bool) -> int:
    """0: registered and did what was asked (took every call, or the feature code answered)."""
    if not result.registered:
        return 1
    if dialed:
        return 0 if result.dialed and result.dialed.get("answered") else 1
    taken = [c for c in result.calls if c.answered or (not script.answer and c.end_reason == "not_answered")]
    return 0 if len(taken) >= script.calls else 1


async def run_from_args(args: argparse.Namespace, settings: SipSettings | None = None) -> int:
    script = script_of(args)

    def report(result: TestAgentResult) -> None:
        print(json.dumps(result.to_dict()))
        sys.stdout.flush()

    sip = secure_settings(settings or SipSettings(), tls=args.tls, srtp=args.srtp, ca=args.ca,
                          cert=args.cert, key=args.key)
    result = await run_test_agent(args.uri, args.password, script, realm=args.realm, dial=args.dial,
                                  settings=sip, port=args.port, register_timeout_s=args.register_timeout,
                                  on_result=report, tls=args.tls,
                                  on_registered=None if args.ready_file is None else args.ready_file.touch)
    return exit_code(result, script, args.dial is not None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m telephony.test_agent", description=__doc__)
    add_arguments(ap)
    args = ap.parse_args(argv)
    try:
        parse_agent_uri(args.uri)
    except ValueError as exc:
        ap.error(str(exc))
    return asyncio.run(run_from_args(args))


if __name__ == "__main__":
    sys.exit(main())
