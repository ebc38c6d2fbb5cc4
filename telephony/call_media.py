"""Wiring a call's audio to its conference-bridge port (PJSIP thread only).

Ports are pooled per endpoint and live until the conference clock stops (see ``CallPort``):
a call takes a free port when its media starts and gives it back when it ends.
"""

from __future__ import annotations

from collections.abc import Callable

import pjsua2 as pj

from speech.frames import FRAME_MS
from telephony import pjlib
from telephony.calls import PjCall
from telephony.media_port import CallPort, MediaBridge, make_port


class PortPool:
    """Every port one endpoint ever created, and those no call holds right now."""

    def __init__(self, name: str, sample_rate: int) -> None:
        self._name = name
        self._rate = sample_rate
        self._ports: list[CallPort] = []
        self._free: list[CallPort] = []

    def connect(self, call: PjCall, audio: pj.AudioMedia, bridge: MediaBridge) -> None:
        """Send ``audio`` to the call's port and the port back into the call, both ways."""
        if call.port is None:
            call.port = self._acquire(bridge)
        audio.startTransmit(call.port)
        call.port.startTransmit(audio)
        call.audio = audio

    def connect_stream(self, call: PjCall, index: int, audio: pj.AudioMedia, bridge: MediaBridge) -> None:
        """A recording session's stream ``index`` into its own port, one way: the recording
        server listens and never sends. Again after a re-INVITE (pjsua may recreate the stream)."""
        old = call.stream_ports.get(index)
        if old is not None:
            port, old_audio = old
            try:
                old_audio.stopTransmit(port)
            except Exception:  # noqa: BLE001 - the old stream may be gone
                pass
        else:
            port = self._acquire(bridge)
        audio.startTransmit(port)
        call.stream_ports[index] = (port, audio)

    def disconnect(self, call: PjCall) -> None:
        for port_, audio_ in call.stream_ports.values():
            try:
                audio_.stopTransmit(port_)
            except Exception:  # noqa: BLE001 - media may already be gone
                pass
            if isinstance(port_, CallPort):
                port_.bridge = None
                self._free.append(port_)
        call.stream_ports.clear()
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
        if isinstance(port, CallPort):
            port.bridge = None
            self._free.append(port)
        call.port = None
        call.audio = None

    def close(self, ep: pj.Endpoint) -> None:
        """Stop the conference clock, then drop every port (before ``libDestroy``)."""
        if not self._ports:
            return
        pjlib.stop_conference_clock(ep)  # so no callback can run into a port being freed
        self._free.clear()
        self._ports.clear()  # no other reference may outlive this line: libDestroy asserts

    def _acquire(self, bridge: MediaBridge) -> CallPort:
        port = self._free.pop() if self._free else None
        if port is None:
            port = make_port(f"{self._name}-port{len(self._ports)}", self._rate, FRAME_MS)
            self._ports.append(port)
        port.bridge = bridge
        return port


def codec_of(call: pj.Call, info: pj.CallInfo) -> str:
    """``PCMU/8000``-style name of the call's audio codec, or "" before media runs."""
    for m in info.media:
        if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status != pj.PJSUA_CALL_MEDIA_NONE:
            try:
                si = call.getStreamInfo(m.index)
                return f"{si.codecName}/{si.codecClockRate}"
            except Exception:  # noqa: BLE001
                return ""
    return ""
