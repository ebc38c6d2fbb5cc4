"""Settings of the SIP side: endpoints, workers, the front."""

from __future__ import annotations

from pathlib import Path
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


class AcdSettings(_Frozen):
    """Agents and queues (telephony/acd)."""

    agents_file: Path | None = None
    """The agents directory (YAML/TOML, ``callcenter agents add`` writes it); default:
    ``data_dir/agents.yaml``."""
    strategy: Literal["longest_idle", "ring_all"] = "longest_idle"
    """Which ready agent with the queue's skill rings: the one idle longest, or all of them
    (the first to answer takes the call)."""
    ring_timeout_s: float = Field(15.0, gt=0)
    """An agent's phone rings this long; then the next agent, and this one is set not ready."""
    wrap_up_s: float = Field(10.0, ge=0)
    """After a call the agent is in wrap-up this long, then ready again."""
    announce_every_s: float = Field(30.0, gt=0)
    """While waiting the caller hears hold music and, this often, their position and expected
    wait."""
    announce_first_s: float = Field(5.0, ge=0)
    """The first announcement comes after this much music (a caller an agent takes at once
    hears none)."""
    poll_s: float = Field(0.5, gt=0)
    """How often a waiting call looks for a free agent in the shared store."""
    max_wait_s: float = Field(0.0, ge=0)
    """Default maximum wait in a queue (0: none); a queue node of the IVR flow may set its own."""
    ready_on_register: bool = True
    """An agent whose phone registers (and who is logged out) becomes ready."""
    registrar_poll_s: float = Field(1.0, gt=0)
    """How often ``serve`` reads the registrar's contacts into the store."""
    default_handle_s: float = Field(180.0, gt=0)
    """Expected handle time before the store has calls to average over."""


class SiprecSettings(_Frozen):
    """SIPREC recording sessions (RFC 7866): a PBX or SBC forks agent calls to the service."""

    enabled: bool = True
    """Accept recording sessions (else they get 488)."""
    agent_aor: str = ""
    """A regex searched in each participant's AOR (``sip:1001@pbx``) that marks the agent; ""
    for none."""
    agent_from_directory: bool = True
    """A participant whose AOR user part is an agent id of the agents directory is that agent."""
    max_streams: int = Field(2, ge=1, le=8)
    """Streams a recording session may offer (each takes a conference port; one party each)."""
