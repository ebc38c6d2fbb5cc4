"""Settings of the SIP side: endpoints, workers, the front."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SipSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = 5060
    transports: tuple[Literal["udp", "tcp"], ...] = ("udp", "tcp")
    workers: int | None = None
    """Endpoint processes (each holds at most 4 calls); default: one per core."""
    worker_base_port: int = 5070
    codecs: tuple[str, ...] = ("PCMU/8000", "PCMA/8000", "G722/16000")
    max_calls: int = Field(4, ge=1, le=4)
    """Calls per endpoint process; the pjsua2 wheel is built with at most 4."""
    inbox_frames: int = 500
    """Audio frames a call's inbox holds before dropping (10 s); control items are never dropped."""
    front: Literal["auto", "kamailio", "none"] = "auto"
    record: bool = True
