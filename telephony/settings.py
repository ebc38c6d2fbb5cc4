"""Settings of the SIP side: endpoints, workers, the front."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RecordingSettings(_Frozen):
    """Recordings at rest: always owner-only (files 0600, folders 0700); optionally encrypted."""

    encryption_key: str = ""
    """Base64 of 32 random bytes: recordings are written AES-256-GCM encrypted as
    ``<name>.wav.enc`` (``telephony.recording_crypto``); ``callcenter replay`` reads them with it.
    Empty: plain WAV. Prefer ``encryption_key_file`` (the key stays out of the config file)."""
    encryption_key_file: Path | None = None
    """A file holding the base64 key (make it with ``head -c32 /dev/urandom | base64``, 0600)."""

    @model_validator(mode="after")
    def _one_key(self) -> RecordingSettings:
        if self.encryption_key and self.encryption_key_file:
            raise ValueError("set recording encryption_key or encryption_key_file, not both")
        if self.encryption_key:
            _decode_key(self.encryption_key, "encryption_key")
        return self

    def key(self) -> bytes | None:
        """The 32-byte key, read from the file when one is set; None: recordings stay plain."""
        if self.encryption_key_file is not None:
            try:
                text = Path(self.encryption_key_file).read_text().strip()
            except OSError as exc:
                raise ValueError(f"{self.encryption_key_file}: cannot read the recording key: {exc}") from exc
            return _decode_key(text, str(self.encryption_key_file))
        return _decode_key(self.encryption_key, "encryption_key") if self.encryption_key else None


def _decode_key(text: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{where}: the recording key is not base64") from exc
    if len(raw) != 32:
        raise ValueError(f"{where}: the recording key must be 32 bytes (base64 of 32 bytes), got {len(raw)}")
    return raw


class SipSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = 5060
    transports: tuple[Literal["udp", "tcp"], ...] = ("udp", "tcp")
    workers: int | None = Field(None, ge=0)
    """Endpoint processes (each holds at most 4 calls); None or 0: from the capacity plan (the
    calls the cores can analyze, ``capacity.*``), one per core if that cannot be made."""
    worker_base_port: int = 5070
    bind_host: str | None = None
    """The address this host's endpoint workers listen on and put in their SDP; None: ``host``.
    On a worker host (``serve --role workers``) its own address, while ``host``/``port`` stay
    the front's (callers dial it; workers ring agents through it)."""
    remote_workers: tuple[str, ...] = ()
    """``host:port`` of workers on other hosts (``serve --role workers`` there) that the front
    dispatches to besides its own; probed by OPTIONS like local ones."""
    remote_lost_after_s: float = Field(5.0, gt=0)
    """A remote worker that has answered no OPTIONS this long is lost: the front BYEs its callers
    (their media went with it); new calls already go around it after two missed pings (~3 s)."""
    codecs: tuple[str, ...] = ("PCMU/8000", "PCMA/8000", "G722/16000")
    max_calls: int = Field(4, ge=1, le=4)
    """Calls per endpoint process; the pjsua2 wheel is built with at most 4."""
    calls_per_worker: int | None = Field(None, ge=1, le=4)
    """Callers one worker admits at once (more get 503 with Retry-After, and the front tries
    another worker); unset: what the capacity plan gives each worker, or all its slots when
    there is no plan (``sip.workers`` fixed)."""
    media_quality: int = Field(4, ge=1, le=10)
    """pjsua's media quality: how the conference bridge resamples 8 kHz calls to the 16 kHz
    pipeline (3-4: small-filter sinc, 5-10: large filter, pjsua's default 8; 1-2: linear). A
    telephone call carries nothing above 4 kHz: 4 costs the media clock thread ~20 % less than 8."""
    inbox_frames: int = 500
    """Audio frames a call's inbox holds before dropping (10 s); control items are never dropped."""
    front: Literal["auto", "kamailio", "none"] = "auto"
    record: bool = True
    recording: RecordingSettings = RecordingSettings()
    """Recordings at rest (``sip.recording.encryption_key`` / ``encryption_key_file``)."""
    tls_port: int | None = None
    """SIP over TLS on ``host:tls_port`` (5061 is usual): at the front, or on the worker itself
    when calls arrive directly (``front = none``). None: no TLS listener."""
    tls_cert: Path | None = None
    """PEM certificate (chain) the TLS listener presents (``callcenter certs`` makes one)."""
    tls_key: Path | None = None
    """PEM private key of ``tls_cert`` (keep it owner-only)."""
    tls_ca: Path | None = None
    """CA bundle to verify TLS peers (test phones verify the front with it); None: no check."""
    require_tls: bool = False
    """Refuse new calls and registrations that did not arrive over TLS (403 "TLS Required" from
    the front, which it needs). The front's hop to its workers stays on this host (UDP, not
    encrypted)."""
    srtp: Literal["off", "optional", "mandatory"] = "off"
    """SRTP (SDES keys in the SDP's a=crypto) for every call's media: callers, agents' legs and
    SIPREC sessions. ``mandatory`` refuses (488) or fails calls whose peer cannot do it."""
    srtp_secure_signaling: Literal[0, 1, 2] = 0
    """pjsua's rule for SDES keys: 0 send them on any transport, 1 only over TLS, 2 only with
    sips: end to end. Workers behind the front get calls over the loopback UDP hop, so 0 there."""

    @property
    def worker_host(self) -> str:
        """Where this host's workers listen (``bind_host``, else ``host``)."""
        return self.bind_host or self.host

    @field_validator("remote_workers")
    @classmethod
    def _host_port(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"sip.remote_workers: {item!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _tls_complete(self) -> SipSettings:
        if self.require_tls and self.tls_port is None:
            raise ValueError("sip.require_tls needs sip.tls_port")
        if self.require_tls and self.front == "none":
            raise ValueError("sip.require_tls needs the Kamailio front (sip.front = auto or kamailio)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("sip.tls_cert and sip.tls_key go together")
        return self


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
