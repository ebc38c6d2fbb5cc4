"""A scripted caller: dial a SIP URI, play a WAV, press keys, record what came back, hang up.

Runs its own ``SipEndpoint`` on another port (pjsua2 allows one endpoint per process, so tests
run it in a subprocess: ``python -m telephony.test_caller sip:ivr@127.0.0.1:5060 --play x.wav
--dtmf 1 --json``). Digits go as RFC 4733 events by default, or as tones mixed into the audio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from speech.events import DtmfDigit
from speech.frames import FRAME_MS, AudioFrame
from telephony.endpoint import SipEndpoint
from telephony.items import CallFailed, LegEnded
from telephony.leg import CallLeg
from telephony.net import free_port
from telephony.prompts import chunk_pcm, dtmf_tone
from telephony.settings import SipSettings

DIGIT_SEND_S = 0.2
"""Time one RFC 4733 digit takes on the wire (100 ms tone, end packets, gap)."""
TAIL_S = 0.5
"""Silence kept on the line after the script before hanging up, so the last audio arrives."""


@dataclass
class TestCallResult:
    """What happened on a test call (JSON-ready with ``to_dict``)."""

    __test__ = False  # not a pytest class

    uri: str
    answered: bool
    status: int
    """Final SIP status: 200 once answered, else the failure (486, 488, 404...)."""
    reason: str
    call_id: str = ""
    codec: str = ""
    duration: float = 0.0
    """Call seconds from answer to end (frame clock)."""
    played: bool = False
    """The WAV played to its end."""
    digits_sent: list[str] = field(default_factory=list)
    digits_heard: list[str] = field(default_factory=list)
    """RFC 4733 / SIP INFO digits the other side sent us."""
    hangup_by: Literal["local", "remote", ""] = ""
    frames_received: int = 0
    heard_rms_dbfs: float = -120.0
    """Level of what we heard from the other side over the whole call."""
    recording_path: str | None = None
    local_port: int = 0
    answered_at: float | None = None
    """Epoch seconds of the answer (where the recording starts)."""
    media: list[str] = field(default_factory=list)
    """Each audio stream's profile: ``RTP/SAVP`` when SRTP was negotiated, else ``RTP/AVP``."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def place_test_call(
    uri: str,
    *,
    play: Path | None = None,
    dtmf: list[str] | None = None,
    dtmf_delay: float = 0.5,
    hangup_after: float | None = None,
    settings: SipSettings | None = None,
    dtmf_mode: Literal["rfc4733", "inband"] = "rfc4733",
    port: int | None = None,
    record_dir: Path | None = None,
    answer_timeout_s: float = 15.0,
    on_result: Callable[[TestCallResult], None] | None = None,
    dtmf_first: bool = False,
    before_dial: Callable[[], Awaitable[None]] | None = None,
) -> TestCallResult:
    """Place one call and run the script: play, then each entry of ``dtmf`` after ``dtmf_delay``
    (``dtmf_first``: the keys, then the recording: press 0, then talk to the agent).

    ``on_result`` gets the result as soon as the call is over, before the endpoint is torn down,
    so a caller that reports it is not at the mercy of pjlib's shutdown.

    ``hangup_after`` (s from answer) ends the call early or holds it open after the script;
    ``None`` hangs up ``TAIL_S`` after the script. ``record_dir`` keeps a stereo WAV (ch1 what
    we sent, ch2 what we heard). ``before_dial`` runs once the endpoint is up (a benchmark
    starts its phones first and places their calls together).
    """
    sip = settings or SipSettings()
    local_port = port or free_port(sip.host)
    endpoint = SipEndpoint(sip, port=local_port, record_dir=record_dir, name="testcaller")
    await endpoint.start()
    try:
        if before_dial is not None:
            await before_dial()
        try:
            leg = await endpoint.place_call(uri, answer_timeout_s=answer_timeout_s)
        except CallFailed as exc:
            result = TestCallResult(uri=uri, answered=False, status=exc.status, reason=exc.reason,
                                    local_port=local_port)
        else:
            media = await media_profiles(endpoint, leg)
            result = await _run_script(leg, uri, play, dtmf or [], dtmf_delay, hangup_after, dtmf_mode, local_port,
                                       dtmf_first)
            result.media = media
        if on_result is not None:
            on_result(result)
        return result
    finally:
        await endpoint.stop()


async def media_profiles(endpoint: SipEndpoint, leg: CallLeg, wait_s: float = 2.0) -> list[str]:
    """The call's stream profiles once its media is up (pjsua reports them after the answer's
    media update, a moment after the call is confirmed)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            media = await endpoint.media_profiles(leg)
        except Exception:  # noqa: BLE001 - the call ended meanwhile
            return []
        if media or time.monotonic() > deadline:
            return media
        await asyncio.sleep(0.05)


async def _run_script(
    leg: CallLeg, uri: str, play: Path | None, dtmf: list[str], dtmf_delay: float,
    hangup_after: float | None, dtmf_mode: str, local_port: int, dtmf_first: bool = False,
) -> TestCallResult:
    result = TestCallResult(uri=uri, answered=True, status=200, reason="OK", call_id=leg.call_id,
                            codec=leg.codec, local_port=local_port, answered_at=round(time.time(), 3))
    listener = asyncio.create_task(_listen(leg, result))
    script = asyncio.create_task(_script(leg, play, dtmf, dtmf_delay, dtmf_mode, result, dtmf_first))
    try:
        if hangup_after is not None:
            await asyncio.wait({listener}, timeout=hangup_after)
        else:
            await asyncio.wait({script, listener}, return_when=asyncio.FIRST_COMPLETED)
            if not listener.done():
                await asyncio.wait({listener}, timeout=TAIL_S)
        result.hangup_by = "remote" if listener.done() else "local"
        if not listener.done():
            await leg.hangup()
            await asyncio.wait_for(listener, 5.0)
    finally:
        for task in (script, listener):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    result.codec = leg.codec or result.codec
    result.duration = leg.call_time
    result.frames_received = leg.frames_received
    result.recording_path = str(leg.recording_path) if leg.recording_path else None
    return result


async def _script(leg: CallLeg, play: Path | None, dtmf: list[str], dtmf_delay: float,
                  dtmf_mode: str, result: TestCallResult, dtmf_first: bool = False) -> None:
    if play is not None and not dtmf_first:
        result.played = await leg.play(play)
    for keys in dtmf:
        await asyncio.sleep(dtmf_delay)
        if dtmf_mode == "inband":
            pcm = np.concatenate([dtmf_tone(k, sample_rate=leg.sample_rate) for k in keys])
            await leg.play_chunks(chunk_pcm(pcm, leg.sample_rate * FRAME_MS // 1000))
        else:
            await leg.send_dtmf(keys)
            await asyncio.sleep(DIGIT_SEND_S * len(keys))  # let the events go out before what follows
        result.digits_sent.append(keys)
    if play is not None and dtmf_first:
        result.played = await leg.play(play)


async def _listen(leg: CallLeg, result: TestCallResult) -> None:
    energy = 0.0
    samples = 0
    while True:
        item = await leg.inbox.get()
        if isinstance(item, LegEnded):
            break
        if isinstance(item, DtmfDigit):
            result.digits_heard.append(item.digit)
        elif isinstance(item, AudioFrame):
            x = item.samples().astype(np.float64)
            energy += float(np.dot(x, x))
            samples += len(x)
    if samples and energy > 0:
        result.heard_rms_dbfs = round(10 * np.log10(energy / samples / 32768.0**2), 2)


def start_signal(ready_file: Path | None, go_file: Path | None,
                 go_delay: float = 0.0) -> Callable[[], Awaitable[None]] | None:
    """``--ready-file``/``--go-file``/``--go-delay``: create ``ready_file`` once the phone is up,
    then wait until ``go_file`` exists (polled every 20 ms) and ``go_delay`` seconds more. Lets a
    benchmark start many phone processes, whose start-up would otherwise load the machine it
    measures, and then place their calls together or spread over a stretch of time."""
    if ready_file is None and go_file is None:
        return None

    async def signal() -> None:
        if ready_file is not None:
            await asyncio.to_thread(ready_file.touch)
        # another process makes the file: nothing in this one could be awaited instead
        while go_file is not None and not os.path.exists(go_file):  # noqa: ASYNC110, ASYNC240 - a stat
            await asyncio.sleep(0.02)
        if go_delay > 0:
            await asyncio.sleep(go_delay)

    return signal


def secure_settings(sip: SipSettings, *, tls: bool, srtp: str | None, ca: Path | None,
                    cert: Path | None = None, key: Path | None = None) -> SipSettings:
    """A test phone's SIP settings for ``--tls``/``--srtp``/``--ca`` (``--cert``/``--key``: a
    phone that is also reached over TLS, an agent's). TLS takes any local port; ``srtp``
    None keeps the settings' own."""
    update: dict[str, Any] = {} if srtp is None else {"srtp": srtp}
    if tls:
        update.update(tls_port=0, tls_ca=ca, tls_cert=cert, tls_key=key)
    return sip.model_copy(update=update)


def tls_uri(uri: str) -> str:
    """``uri`` with ``;transport=tls`` unless it names a transport already."""
    return uri if "transport=" in uri.lower() else f"{uri};transport=tls"


def add_secure_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--tls", action="store_true", help="SIP over TLS (dial/register the front's TLS port)")
    ap.add_argument("--srtp", choices=("off", "optional", "mandatory"),
                    help="SRTP (SDES) for the call's media (default: sip.srtp of the settings)")
    ap.add_argument("--ca", type=Path, help="CA certificate to verify the front with (with --tls)")


def main(argv: list[str] | None = None) -> int:
    """CLI: place one test call and print the result (JSON with ``--json``)."""
    ap = argparse.ArgumentParser(prog="python -m telephony.test_caller", description=__doc__)
    ap.add_argument("uri")
    ap.add_argument("--play", type=Path)
    ap.add_argument("--dtmf", action="append", help="keys to press (repeat for several presses)")
    ap.add_argument("--dtmf-delay", type=float, default=0.5)
    ap.add_argument("--inband", action="store_true", help="send DTMF as tones in the audio")
    ap.add_argument("--dtmf-first", action="store_true", help="press the keys before playing --play")
    ap.add_argument("--hangup-after", type=float)
    ap.add_argument("--port", type=int)
    ap.add_argument("--record-dir", type=Path)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--host", default="127.0.0.1", help="local address to listen on and put in the SDP")
    ap.add_argument("--ready-file", type=Path, help="create this file once the phone is up")
    ap.add_argument("--go-file", type=Path, help="dial only once this file exists")
    ap.add_argument("--go-delay", type=float, default=0.0, help="and this many seconds after it appears")
    add_secure_arguments(ap)
    args = ap.parse_args(argv)
    settings = secure_settings(SipSettings(host=args.host), tls=args.tls, srtp=args.srtp, ca=args.ca)
    uri = tls_uri(args.uri) if args.tls else args.uri
    def report(result: TestCallResult) -> None:
        if args.json:
            print(json.dumps(result.to_dict()))
        else:
            for key, value in result.to_dict().items():
                print(f"{key}: {value}")
        sys.stdout.flush()

    result = asyncio.run(place_test_call(
        uri, settings=settings, play=args.play, dtmf=args.dtmf, dtmf_delay=args.dtmf_delay,
        hangup_after=args.hangup_after, dtmf_mode="inband" if args.inband else "rfc4733",
        port=args.port, record_dir=args.record_dir, on_result=report, dtmf_first=args.dtmf_first,
        before_dial=start_signal(args.ready_file, args.go_file, args.go_delay),
    ))
    return 0 if result.answered else 1


if __name__ == "__main__":
    sys.exit(main())
