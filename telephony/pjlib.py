"""Creating and destroying the pjsua2 library for one endpoint (call on the PJSIP thread).

pjlib logs a dozen lines to stdout from ``libCreate``, before ``libInit`` can apply the log
settings; ``quiet_pjlib`` lowers pjlib's own log level first, through the C function the wheel
exports, so no terminal sees them.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass, field

import pjsua2 as pj

from speech.frames import FRAME_MS
from telephony.settings import SipSettings

log = logging.getLogger(__name__)

MAX_PKT_LEN = 4000
"""PJSIP_MAX_PKT_LEN of the wheel: larger SIP messages are cut or dropped by pjsip."""


def quiet_pjlib() -> None:
    """Set pjlib's log level to 0 before ``libCreate`` prints its start-up lines."""
    try:
        from pjsua2 import _pjsua2

        ctypes.CDLL(_pjsua2.__file__).pj_log_set_level(0)
    except (OSError, AttributeError, ImportError):  # another build: the lines are only cosmetic
        log.debug("could not silence pjlib's start-up log", exc_info=True)


@dataclass(frozen=True, slots=True)
class LibConfig:
    """What one endpoint's library is built with."""

    settings: SipSettings
    port: int
    name: str
    max_calls: int
    sample_rate: int


def create_library(cfg: LibConfig, ep: pj.Endpoint) -> None:
    """Create, configure and start the library in ``ep``: UDP/TCP transports on ``host:port``.

    On failure the caller destroys ``ep`` (``destroy_library``)."""
    quiet_pjlib()
    ep.libCreate()
    ecfg = pj.EpConfig()
    ecfg.uaConfig.threadCnt = 0
    ecfg.uaConfig.mainThreadOnly = True
    ecfg.uaConfig.maxCalls = cfg.max_calls
    ecfg.uaConfig.userAgent = f"callcenter-{cfg.name}"
    ecfg.logConfig.level = 0
    ecfg.logConfig.consoleLevel = 0
    ecfg.medConfig.noVad = True
    ecfg.medConfig.clockRate = cfg.sample_rate
    ecfg.medConfig.audioFramePtime = FRAME_MS
    ecfg.medConfig.ecTailLen = 0
    ecfg.medConfig.quality = cfg.settings.media_quality
    ep.libInit(ecfg)
    support_option_tag("siprec")
    ep.audDevManager().setNullDev()
    sip = cfg.settings
    on_dialed = cfg.port == sip.port
    if not (sip.require_tls and on_dialed):  # a TLS-only worker has no clear-text listener
        for kind in sip.transports:
            tcfg = pj.TransportConfig()
            tcfg.port = cfg.port
            tcfg.boundAddress = sip.host
            ttype = pj.PJSIP_TRANSPORT_UDP if kind == "udp" else pj.PJSIP_TRANSPORT_TCP
            ep.transportCreate(ttype, tcfg)
    if sip.tls_port is not None:
        ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tls_transport_config(sip, sip.tls_port if on_dialed else 0))
    set_codecs(ep, cfg.settings.codecs)
    ep.libStart()


def tls_transport_config(sip: SipSettings, port: int) -> pj.TransportConfig:
    """A TLS transport on ``host:port`` (0: any port, for a phone that only dials out over
    TLS; it still answers calls on it when it has ``tls_cert``). With ``tls_ca`` the peer's
    certificate is verified (the front's name must match), else it is only encrypted."""
    tcfg = pj.TransportConfig()
    tcfg.port = port
    tcfg.boundAddress = sip.host
    tls = tcfg.tlsConfig
    tls.method = pj.PJSIP_TLSV1_2_METHOD
    if sip.tls_cert is not None and sip.tls_key is not None:
        tls.certFile = str(sip.tls_cert)
        tls.privKeyFile = str(sip.tls_key)
    if sip.tls_ca is not None:
        tls.CaListFile = str(sip.tls_ca)
        tls.verifyServer = True
    return tcfg


SRTP_USE = {"off": pj.PJMEDIA_SRTP_DISABLED, "optional": pj.PJMEDIA_SRTP_OPTIONAL,
            "mandatory": pj.PJMEDIA_SRTP_MANDATORY}


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("slen", ctypes.c_ssize_t)]


def support_option_tag(tag: str) -> bool:
    """Add ``tag`` to the Supported option tags pjsip checks a request's ``Require`` against:
    PJSIP 2.15 answers ``Require: siprec`` (RFC 7866 recording sessions) with 420 otherwise.
    pjsua2 exposes no call for it; the wheel exports ``pjsip_endpt_add_capability`` (after
    ``libInit``, on the PJSIP thread). False when this build has no such symbol."""
    try:
        from pjsua2 import _pjsua2

        lib = ctypes.CDLL(_pjsua2.__file__)
        lib.pjsua_get_pjsip_endpt.restype = ctypes.c_void_p
        endpt = lib.pjsua_get_pjsip_endpt()
        raw = tag.encode()
        tags = (_PjStr * 1)(_PjStr(raw, len(raw)))  # pjsip copies the string into its pool
        lib.pjsip_endpt_add_capability.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                                   ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p]
        status = lib.pjsip_endpt_add_capability(endpt, None, pj.PJSIP_H_SUPPORTED, None, 1, tags)
        return bool(status == 0)
    except (OSError, AttributeError, ImportError):
        log.warning("could not add the %s option tag: Require: %s gets 420", tag, tag, exc_info=True)
        return False


@dataclass(frozen=True, slots=True)
class Registration:
    """Register the endpoint's account at ``registrar`` (``host:port``) as ``user`` with digest
    credentials: an agent's phone. The password never leaves this object's repr."""

    registrar: str
    user: str
    password: str = field(repr=False)
    realm: str = "*"
    """``*``: answer a challenge from any realm."""
    expires_s: int = 60
    """Re-REGISTER interval: a restarted front (contacts in memory) knows the phone again
    within this time."""
    tls: bool = False
    """Register (and so be reached) over TLS: ``registrar`` is then the front's TLS port."""

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.registrar}"


@dataclass(frozen=True, slots=True)
class RegStatus:
    """The account's registration as pjsua last saw it."""

    active: bool
    status: int
    """Last REGISTER's final status (200, 401, 403, 408...); 0 or 1xx while none arrived."""
    reason: str
    expires_s: int


def create_account(acc: pj.Account, cfg: LibConfig, uri: str, registration: Registration | None = None) -> None:
    acfg = pj.AccountConfig()
    acfg.idUri = uri
    acfg.mediaConfig.transportConfig.boundAddress = cfg.settings.host
    # SDES-SRTP for every call of the account: callers, agents' legs, SIPREC streams alike.
    acfg.mediaConfig.srtpUse = SRTP_USE[cfg.settings.srtp]
    acfg.mediaConfig.srtpSecureSignaling = cfg.settings.srtp_secure_signaling
    if cfg.settings.srtp != "off":
        # One suite, RFC 4568's mandatory one: pjsua offers four a=crypto lines by default,
        # which pushes a worker's INVITE to an agent past 1300 bytes, where pjsip switches
        # from UDP to TCP and the front no longer knows the worker by its address.
        crypto = pj.SrtpCrypto()
        crypto.name = "AES_CM_128_HMAC_SHA1_80"
        acfg.mediaConfig.srtpOpt.cryptos.append(crypto)
        acfg.mediaConfig.srtpOpt.keyings.append(pj.PJMEDIA_SRTP_KEYING_SDES)
    if registration is not None:
        acfg.idUri = registration.aor
        acfg.regConfig.registrarUri = f"sip:{registration.registrar}" + (
            ";transport=tls" if registration.tls else "")
        acfg.regConfig.timeoutSec = registration.expires_s
        acfg.regConfig.retryIntervalSec = 5
        acfg.natConfig.sipOutboundUse = 0  # plain RFC 3261 contacts: the front has no outbound module
        acfg.sipConfig.authCreds.append(
            pj.AuthCredInfo("digest", registration.realm, registration.user, 0, registration.password))
    acc.create(acfg, True)


def registration_status(acc: pj.Account) -> RegStatus:
    info = acc.getInfo()
    return RegStatus(bool(info.regIsActive), int(info.regStatus), str(info.regStatusText),
                     int(info.regExpiresSec))


def set_codecs(ep: pj.Endpoint, codecs: tuple[str, ...]) -> None:
    """Enable only ``codecs``, in that order of preference."""
    wanted = [c.lower() for c in codecs]
    for info in ep.codecEnum2():
        cid = info.codecId
        rank = next((i for i, w in enumerate(wanted) if cid.lower().startswith(w)), None)
        ep.codecSetPriority(cid, 0 if rank is None else 250 - rank)


def stop_conference_clock(ep: pj.Endpoint) -> None:
    """Stop the clock thread so no port callback can run while ports are freed."""
    try:
        ep.audDevManager().setNoDev()
    except Exception:  # noqa: BLE001
        log.debug("stopping the conference clock failed", exc_info=True)


def destroy_library(ep: pj.Endpoint) -> None:
    try:
        ep.libDestroy()
    except Exception:  # noqa: BLE001
        log.warning("libDestroy failed", exc_info=True)
