"""The pjsua2 SIP endpoint: one thread owns the library, the event loop sees ids and queues.

PJSIP is built for one thread here (``threadCnt=0``, ``mainThreadOnly``): a dedicated thread
creates the Endpoint, runs every command sent from asyncio and polls ``libHandleEvents``. Every
pjsua2 object (account, calls, ports) lives and dies on that thread; Python keeps a reference to
each so SWIG does not free one under the library, and drops them there before ``libDestroy``.
The wheel serves at most 4 calls per process; the 5th INVITE gets 486 from pjsua itself.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pjsua2 as pj

from speech.frames import FRAME_MS, PIPELINE_RATE, Party
from telephony.items import CallFailed, EndpointError
from telephony.leg import DEFAULT_INBOX_FRAMES, CallLeg
from telephony.media_port import CallPort, MediaBridge, make_port
from telephony.settings import SipSettings

log = logging.getLogger(__name__)

MAX_CALLS = 4
"""Calls per process: PJSUA_MAX_CALLS in the pjsua2-python wheel."""
POLL_MS = 10
"""``libHandleEvents`` timeout per loop of the PJSIP thread."""
SHUTDOWN_GRACE_S = 2.0
"""How long ``stop`` lets hung-up calls finish their BYE transactions."""
ANSWER_TIMEOUT_S = 10.0
"""How long ``accept`` waits for the ACK of its 200 OK."""
DTMF_DURATION_MS = 100
"""Length of each RFC 4733 digit we send (plus ~60 ms of end packets and gap)."""
UNKNOWN_DTMF_MS = 0xFFFF_FFFF
"""pjsua's duration for a digit reported before its end."""
SAMPLE_RATE = PIPELINE_RATE
"""Conference-bridge and port rate: calls are resampled from their codec to this."""

_Command = tuple[Callable[[], Any], asyncio.Future[Any]]
"""A function for the PJSIP thread and the future its result goes to."""


class _Account(pj.Account):
    def __init__(self, owner: SipEndpoint) -> None:
        super().__init__()
        self._owner = owner

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802 - pjsua2 API
        try:
            self._owner._on_incoming(prm.callId)
        except Exception:  # noqa: BLE001 - never let a traceback escape into PJSIP
            log.exception("incoming call handler failed")


class _PjCall(pj.Call):
    """pjsua2 call bound to one CallLeg; lives only on the PJSIP thread."""

    def __init__(self, owner: SipEndpoint, acc: pj.Account, call_index: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_index)
        self.owner = owner
        self.leg: CallLeg | None = None
        self.port: pj.AudioMediaPort | None = None
        self.audio: pj.AudioMedia | None = None
        self.media_status: int | None = None
        self.released = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802
        try:
            self.owner._on_call_state(self)
        except Exception:  # noqa: BLE001
            log.exception("call state handler failed")

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        try:
            self.owner._on_media_state(self)
        except Exception:  # noqa: BLE001
            log.exception("media state handler failed")

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:  # noqa: N802
        try:
            self.owner._on_transfer_status(self, prm.statusCode, prm.finalNotify)
            prm.cont = not prm.finalNotify
        except Exception:  # noqa: BLE001
            log.exception("transfer status handler failed")

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:  # noqa: N802
        try:
            source = "sip_info" if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc4733"
            # duration is 0xFFFFFFFF (unknown) when the digit is reported at its start
            duration = prm.duration / 1000.0 if prm.duration < UNKNOWN_DTMF_MS else 0.0
            self.owner._post_leg(self.leg, "_on_dtmf", str(prm.digit), source, duration)
        except Exception:  # noqa: BLE001
            log.exception("DTMF handler failed")


class SipEndpoint:
    """A SIP user agent on ``settings.host``: answers and places calls, at most 4 at a time."""

    def __init__(
        self,
        settings: SipSettings,
        *,
        port: int | None = None,
        record_dir: Path | None = None,
        name: str = "ep",
        max_calls: int = MAX_CALLS,
        inbox_frames: int = DEFAULT_INBOX_FRAMES,
    ) -> None:
        self.settings = settings
        self.port = settings.port if port is None else port
        self.record_dir = Path(record_dir) if record_dir is not None and settings.record else None
        self.name = name
        self.max_calls = min(max_calls, MAX_CALLS)
        self.inbox_frames = inbox_frames
        self.uri = f"sip:{name}@{settings.host}:{self.port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._cmds: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._running = threading.Event()
        self._stopping = False
        self._stopped = False
        self._incoming: asyncio.Queue[CallLeg] | None = None
        self._legs: dict[int, CallLeg] = {}
        self._keys = itertools.count(1)
        # PJSIP-thread state
        self._ep: pj.Endpoint | None = None
        self._acc: _Account | None = None
        self._transports: list[int] = []
        self._calls: dict[int, _PjCall] = {}
        self._release: list[Any] = []
        self._ports: list[CallPort] = []
        """Every port ever created; kept until the conference clock stops (see CallPort)."""
        self._free_ports: list[CallPort] = []

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Create the library and listen on UDP and TCP ``host:port``."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._incoming = asyncio.Queue()
        started: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, args=(started,), name=f"pjsip-{self.name}", daemon=True)
        self._thread.start()
        try:
            await started
        except BaseException:
            await self._join()
            raise

    async def stop(self) -> None:
        """Hang up live calls, let their BYEs finish, destroy the library. Idempotent."""
        if self._thread is None or self._stopped:
            return
        self._stopped = True
        if self._running.is_set():
            try:
                await self._enqueue(self._shutdown)
            except EndpointError:
                log.warning("endpoint shutdown reported an error", exc_info=True)
        await self._join()
        for leg in list(self._legs.values()):
            leg._on_ended("endpoint stopped", 0)
        self._legs.clear()

    async def _join(self) -> None:
        self._running.clear()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)

    async def __aenter__(self) -> SipEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def active_calls(self) -> int:
        """Calls not yet ended (ringing, answered or on hold)."""
        return sum(1 for leg in self._legs.values() if leg.ended is None)

    # ---- calls -------------------------------------------------------------------------------
    async def accept(self) -> CallLeg:
        """Answer the next incoming call (200 OK) and return it once the ACK arrived."""
        assert self._incoming is not None, "start() first"
        while True:
            leg = await self._incoming.get()
            if leg.ended is not None:
                continue  # cancelled while ringing
            await self._call_op(leg.key, "answer", (200,))
            try:
                ok = await asyncio.wait_for(asyncio.shield(leg._confirmed), ANSWER_TIMEOUT_S)
            except TimeoutError:
                await self._call_op(leg.key, "hangup", ())
                continue
            if ok:
                return leg

    async def place_call(self, uri: str, *, answer_timeout_s: float = 30.0) -> CallLeg:
        """Call ``uri``; returns once the call is confirmed, else raises ``CallFailed``."""
        key = next(self._keys)
        leg: CallLeg = await self._submit(lambda: self._make_call(key, uri))
        try:
            ok = await asyncio.wait_for(asyncio.shield(leg._confirmed), answer_timeout_s)
        except TimeoutError:
            await self._call_op(key, "hangup", ())
            await asyncio.wait_for(leg.wait_ended(), SHUTDOWN_GRACE_S * 2)
            raise CallFailed(408, "no answer") from None
        if not ok:
            ended = leg.ended
            raise CallFailed(ended.status if ended else 0, ended.reason if ended else "failed")
        return leg

    # ---- asyncio → PJSIP thread ------------------------------------------------------------
    async def _submit(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the PJSIP thread and return its result (errors as EndpointError)."""
        if self._stopped:
            raise EndpointError("endpoint is stopped")
        return await self._enqueue(fn)

    async def _enqueue(self, fn: Callable[[], Any]) -> Any:
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            raise EndpointError("endpoint is not running")
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._cmds.put((fn, fut))
        return await fut

    async def _call_op(self, key: int, name: str, args: tuple[object, ...]) -> None:
        await self._submit(lambda: self._do_call_op(key, name, args))

    def _reply(self, fut: asyncio.Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
        def settle() -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        self._post(settle)

    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop already closed
            pass

    def _post_leg(self, leg: CallLeg | None, method: str, *args: Any) -> None:
        if leg is not None:
            self._post(getattr(leg, method), *args)

    # ---- PJSIP thread ---------------------------------------------------------------------
    def _run(self, started: asyncio.Future[None]) -> None:
        try:
            self._init_lib()
        except Exception as exc:  # noqa: BLE001
            self._reply(started, exc=EndpointError(f"SIP endpoint failed to start on {self.settings.host}:{self.port}: {exc}"))
            self._destroy_lib()
            return
        self._running.set()
        self._reply(started)
        ep = self._ep
        assert ep is not None
        while self._running.is_set():
            try:
                ep.libHandleEvents(POLL_MS)
            except Exception:  # noqa: BLE001
                log.exception("libHandleEvents failed")
            self._drain()
            if self._release:
                self._release.clear()
        self._drain()  # fail anything queued after stop
        self._destroy_lib()

    def _drain(self) -> None:
        while True:
            try:
                fn, fut = self._cmds.get_nowait()
            except queue.Empty:
                return
            if not self._running.is_set() and fn != self._shutdown:
                self._reply(fut, exc=EndpointError("endpoint is stopped"))
                continue
            try:
                self._reply(fut, fn())
            except CallFailed as exc:
                self._reply(fut, exc=exc)
            except pj.Error as exc:
                self._reply(fut, exc=EndpointError(f"{exc.title}: {exc.reason} (status {exc.status})"))
            except Exception as exc:  # noqa: BLE001
                self._reply(fut, exc=EndpointError(f"{type(exc).__name__}: {exc}"))

    def _init_lib(self) -> None:
        ep = pj.Endpoint()
        self._ep = ep
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = self.max_calls
        cfg.uaConfig.userAgent = f"callcenter-{self.name}"
        cfg.logConfig.level = 0
        cfg.logConfig.consoleLevel = 0
        cfg.medConfig.noVad = True
        cfg.medConfig.clockRate = SAMPLE_RATE
        cfg.medConfig.audioFramePtime = FRAME_MS
        cfg.medConfig.ecTailLen = 0
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()
        for kind in self.settings.transports:
            tcfg = pj.TransportConfig()
            tcfg.port = self.port
            tcfg.boundAddress = self.settings.host
            ttype = pj.PJSIP_TRANSPORT_UDP if kind == "udp" else pj.PJSIP_TRANSPORT_TCP
            self._transports.append(ep.transportCreate(ttype, tcfg))
        self._set_codecs(ep)
        ep.libStart()
        acfg = pj.AccountConfig()
        acfg.idUri = self.uri
        acfg.mediaConfig.transportConfig.boundAddress = self.settings.host
        acc = _Account(self)
        acc.create(acfg, True)
        self._acc = acc

    def _set_codecs(self, ep: pj.Endpoint) -> None:
        wanted = [c.lower() for c in self.settings.codecs]
        for info in ep.codecEnum2():
            cid = info.codecId
            rank = next((i for i, w in enumerate(wanted) if cid.lower().startswith(w)), None)
            ep.codecSetPriority(cid, 0 if rank is None else 250 - rank)

    def _shutdown(self) -> None:
        ep = self._ep
        assert ep is not None
        self._stopping = True
        ep.hangupAllCalls()
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        while self._calls and time.monotonic() < deadline:
            ep.libHandleEvents(POLL_MS)
        self._running.clear()

    def _destroy_lib(self) -> None:
        ep = self._ep
        for call in list(self._calls.values()):
            self._release_call(call, "endpoint stopped", 0)
        self._calls.clear()
        self._release.clear()
        if ep is not None and self._ports:
            # Stop the conference clock before freeing ports, so no callback can run into one.
            try:
                ep.audDevManager().setNoDev()
            except Exception:  # noqa: BLE001
                log.debug("stopping the conference clock failed", exc_info=True)
            self._free_ports.clear()
            self._ports.clear()  # no other reference may outlive this line: libDestroy asserts
        if self._acc is not None:
            try:
                self._acc.shutdown()
            except Exception:  # noqa: BLE001
                log.debug("account shutdown failed", exc_info=True)
            self._acc = None
        if ep is not None:
            try:
                ep.libDestroy()
            except Exception:  # noqa: BLE001
                log.warning("libDestroy failed", exc_info=True)
            self._ep = None

    # pjsua callbacks (PJSIP thread) -----------------------------------------------------------
    def _new_leg(self, key: int, call: _PjCall, party: Party) -> CallLeg:
        info = call.getInfo()
        assert self._loop is not None
        rec = None
        if self.record_dir is not None:
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", info.callIdString)[:64]
            rec = self.record_dir / f"{self.name}-{key}-{safe}.wav"
        leg = CallLeg(
            key=key, call_id=info.callIdString, remote_uri=info.remoteUri, local_uri=info.localUri,
            party=party, sample_rate=SAMPLE_RATE, call_op=self._call_op, loop=self._loop,
            recording_path=rec, max_frames=self.inbox_frames,
        )
        call.leg = leg
        self._calls[key] = call
        self._post(self._register_leg, leg)
        return leg

    def _register_leg(self, leg: CallLeg) -> None:
        if leg.ended is None or leg.key in self._legs:
            self._legs[leg.key] = leg
        leg._open_recording()

    def _on_incoming(self, call_index: int) -> None:
        assert self._acc is not None
        call = _PjCall(self, self._acc, call_index)
        if self._stopping or len(self._calls) >= self.max_calls:
            prm = pj.CallOpParam()
            prm.statusCode = 486
            call.hangup(prm)
            self._release.append(call)
            return
        key = next(self._keys)
        leg = self._new_leg(key, call, Party.CALLER)
        prm = pj.CallOpParam()
        prm.statusCode = 180
        call.answer(prm)
        assert self._incoming is not None
        self._post(self._incoming.put_nowait, leg)

    def _make_call(self, key: int, uri: str) -> CallLeg:
        assert self._acc is not None
        if len(self._calls) >= self.max_calls:
            raise CallFailed(486, "too many calls on this endpoint")
        call = _PjCall(self, self._acc)
        prm = pj.CallOpParam(True)
        prm.opt.audioCount = 1
        prm.opt.videoCount = 0
        try:
            call.makeCall(uri, prm)
        except pj.Error as exc:
            raise CallFailed(0, f"{exc.title}: {exc.reason}") from None
        return self._new_leg(key, call, Party.AGENT)

    def _on_call_state(self, call: _PjCall) -> None:
        info = call.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self._post_leg(call.leg, "_on_confirmed", self._codec(call, info))
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._release_call(call, info.lastReason, info.lastStatusCode)

    def _release_call(self, call: _PjCall, reason: str, status: int) -> None:
        if call.released:
            return
        call.released = True
        leg = call.leg
        if leg is not None:
            leg.bridge.close()
            self._calls.pop(leg.key, None)
            self._post(leg._on_ended, reason, status)
        self._drop_media(call)
        call.leg = None
        self._release.append(call)  # freed after this callback returns

    def _drop_media(self, call: _PjCall) -> None:
        port, audio = call.port, call.audio
        if port is not None and audio is not None:
            stops: tuple[Callable[[], object], ...] = (
                lambda: audio.stopTransmit(port), lambda: port.stopTransmit(audio)
            )
            for fn in stops:
                try:
                    fn()
                except Exception:  # noqa: BLE001 - media may already be gone
                    pass
        if call.port is not None:
            call.port.bridge = None
            self._free_ports.append(call.port)
        call.port = None
        call.audio = None

    def _acquire_port(self, bridge: MediaBridge) -> CallPort:
        port = self._free_ports.pop() if self._free_ports else None
        if port is None:
            port = make_port(f"{self.name}-port{len(self._ports)}", SAMPLE_RATE, FRAME_MS)
            self._ports.append(port)
        port.bridge = bridge
        return port

    def _codec(self, call: _PjCall, info: pj.CallInfo) -> str:
        for m in info.media:
            if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status != pj.PJSUA_CALL_MEDIA_NONE:
                try:
                    si = call.getStreamInfo(m.index)
                    return f"{si.codecName}/{si.codecClockRate}"
                except Exception:  # noqa: BLE001
                    return ""
        return ""

    def _on_media_state(self, call: _PjCall) -> None:
        info = call.getInfo()
        leg = call.leg
        if leg is None:
            return
        for m in info.media:
            if m.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            status = m.status
            if status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD, pj.PJSUA_CALL_MEDIA_LOCAL_HOLD):
                audio = call.getAudioMedia(m.index)
                if call.port is None:
                    call.port = self._acquire_port(leg.bridge)
                audio.startTransmit(call.port)
                call.port.startTransmit(audio)
                call.audio = audio
                self._post_leg(leg, "_on_codec", self._codec(call, info))
            if status != call.media_status:
                if status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD:
                    self._post_leg(leg, "_on_hold", True, "remote")
                elif status == pj.PJSUA_CALL_MEDIA_LOCAL_HOLD:
                    self._post_leg(leg, "_on_hold", True, "local")
                elif status == pj.PJSUA_CALL_MEDIA_ACTIVE and call.media_status is not None:
                    by = "local" if call.media_status == pj.PJSUA_CALL_MEDIA_LOCAL_HOLD else "remote"
                    self._post_leg(leg, "_on_hold", False, by)
                call.media_status = status
            break

    def _on_transfer_status(self, call: _PjCall, status: int, final: bool) -> None:
        """A blind transfer reported progress; once the target answered, our leg is done."""
        if not final:
            return
        self._post_leg(call.leg, "_on_transfer", status)
        if 200 <= status < 300 and not call.released:
            call.hangup(pj.CallOpParam())

    def _do_call_op(self, key: int, name: str, args: tuple[object, ...]) -> None:
        call = self._calls.get(key)
        if call is None:
            if name == "hangup":
                return
            raise EndpointError("call has ended")
        if name == "answer":
            prm = pj.CallOpParam()
            prm.statusCode = args[0]
            call.answer(prm)
        elif name == "hangup":
            prm = pj.CallOpParam()
            info = call.getInfo()
            if info.state < pj.PJSIP_INV_STATE_CONNECTING and info.role == pj.PJSIP_ROLE_UAS:
                prm.statusCode = 603
            call.hangup(prm)
        elif name == "dtmf":
            dprm = pj.CallSendDtmfParam()
            dprm.method = pj.PJSUA_DTMF_METHOD_RFC2833
            dprm.digits = args[0]
            dprm.duration = DTMF_DURATION_MS
            call.sendDtmf(dprm)
        elif name == "xfer":
            call.xfer(args[0], pj.CallOpParam())
        elif name == "hold":
            call.setHold(pj.CallOpParam())
        elif name == "unhold":
            prm = pj.CallOpParam(True)  # default call setting keeps audioCount=1 (else m=audio 0)
            prm.opt.flag = pj.PJSUA_CALL_UNHOLD
            call.reinvite(prm)
        else:
            raise ValueError(f"unknown call operation {name}")
