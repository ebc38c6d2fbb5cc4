"""SIP over TLS at the Kamailio front, SRTP media, and clear-text callers refused.

One service (front with a TLS listener, ``sip.require_tls``, ``sip.srtp = optional``, 2
workers) on 127.0.0.1 with certificates from ``callcenter.certs``. Callers are real peers: the
pjsua2 test caller over TLS with SRTP mandatory (verifying the front with the CA), the same
caller in clear text over UDP, and sipp. Debian's sipp 3.6.1 is built without OpenSSL ("To use
a TLS transport you must compile SIPp with OpenSSL"), so sipp speaks SIP over TCP to a small
stdlib TLS relay in this file that carries it to the front's TLS listener: the front sees a TLS
connection, as from any TLS phone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from callcenter.certs import CertPaths, ensure_certs
from callcenter.serve import Service, start_service, stop_service
from speech.text import words
from tests.conftest import have
from tests.sip.sipp import run_sipp
from tests.sip_tools import free_port, needs_kamailio_tls
from tests.test_serve_calls import (
    SPEAK_AT_S,
    place_call,
    service_settings,
    stored,
    wait_idle,
    wait_record,
)
from tests.test_sip_call import aligned_correlation

pytestmark = [
    pytest.mark.sip,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    needs_kamailio_tls,
]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return ensure_certs(tmp_path_factory.mktemp("certs"), ["127.0.0.1", "localhost"])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory, certs: CertPaths):
    tmp = tmp_path_factory.mktemp("serve-tls")
    settings = service_settings(tmp, **{
        "sip.tls_port": free_port(), "sip.tls_cert": str(certs.cert), "sip.tls_key": str(certs.key),
        "sip.require_tls": True, "sip.srtp": "optional",
    })
    svc = await start_service(settings, log_dir=tmp / "logs")
    try:
        yield svc
    finally:
        await stop_service(svc)


def tls_uri(svc: Service) -> str:
    return f"sip:ivr@127.0.0.1:{svc.settings.sip.tls_port};transport=tls"


async def test_tls_caller_with_mandatory_srtp_reaches_the_ivr_and_is_analyzed(
        service: Service, certs: CertPaths, tmp_path: Path) -> None:
    res = await place_call(tls_uri(service), "--tls", "--ca", str(certs.ca_cert), "--srtp", "mandatory",
                           "--dtmf", "1", "--dtmf", "123456#", "--dtmf-delay", "2", "--hangup-after", "13")
    assert res["answered"], res
    assert res["media"] == ["RTP/SAVP"], res  # SDES-SRTP negotiated (a=crypto in both SDPs)
    record = await wait_record(service, res["call_id"])
    ivr = record["ivr"]
    assert ivr["path"][:3] == ["welcome", "main_menu", "billing_account"], ivr
    assert ivr["collected"] == {"account_number": "123456"}
    # The recording is as over RTP: two channels, the prompts the caller heard in channel 1.
    pcm, rate = sf.read(record["recording"], dtype="float32")
    assert pcm.ndim == 2 and pcm.shape[1] == 2 and len(pcm) / rate >= 10
    prompts_rms = float(np.sqrt(np.mean(pcm[: int(rate * 3), 0] ** 2)))
    assert prompts_rms > 0.01, prompts_rms


async def test_srtp_caller_audio_is_recorded_and_analyzed_unchanged(service: Service, certs: CertPaths, tts) -> None:
    """Decrypted media reaches recording and analysis as over RTP: the caller's channel of the
    recording correlates with the WAV the caller played, and the transcript has what was said."""
    speech = tts("I would like technical support for my internet connection please", pad_before=SPEAK_AT_S,
                 pad_after=0.5)
    res = await place_call(tls_uri(service), "--tls", "--ca", str(certs.ca_cert), "--srtp", "mandatory",
                           "--play", str(speech), "--hangup-after", f"{SPEAK_AT_S + 9:.0f}")
    assert res["answered"] and res["media"] == ["RTP/SAVP"], res
    record = await wait_record(service, res["call_id"])
    ref, rate = sf.read(speech, dtype="int16")
    rec, rec_rate = sf.read(record["recording"], dtype="int16")
    assert rec_rate == rate == 16000 and rec.ndim == 2
    caller_ch, prompt_ch = aligned_correlation(ref, rec[:, 1], rate), aligned_correlation(ref, rec[:, 0], rate)
    print(f"correlation with the played WAV: caller channel {caller_ch:.3f}, prompt channel {prompt_ch:.3f}")
    assert caller_ch > 0.8 and caller_ch > prompt_ch + 0.2, (caller_ch, prompt_ch)
    detail = stored(service, res["call_id"])
    assert detail is not None
    finals = [e for e in detail.events if e["type"] == "transcript.final" and e["party"] == "caller"]
    print("caller finals over SRTP:", [(f["t"], f["text"]) for f in finals])
    assert any("technical support" in " ".join(words(f["text"])) for f in finals), finals


async def test_clear_text_caller_is_refused_when_tls_is_required(service: Service) -> None:
    res = await place_call(service.sip_uri, "--hangup-after", "3", timeout_s=30)
    assert not res["answered"]
    assert res["status"] == 403 and "TLS" in res["reason"], res


async def test_front_still_answers_options_over_udp(service: Service) -> None:
    from telephony.kamailio import _udp_options_ok

    assert _udp_options_ok("127.0.0.1", service.settings.sip.port)


# -- sipp through a TLS relay ----------------------------------------------------------------------


async def _tls_relay(target_port: int, ca: Path) -> tuple[asyncio.Server, int]:
    """Accept TCP on a free port; carry each connection over TLS (verified with ``ca``) to
    127.0.0.1:``target_port``."""
    ctx = ssl.create_default_context(cafile=str(ca))

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.close()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        tr, tw = await asyncio.open_connection("127.0.0.1", target_port, ssl=ctx, server_hostname="127.0.0.1")
        await asyncio.gather(pipe(r, tw), pipe(tr, w))

    port = free_port()
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    return server, port


@pytest.mark.skipif(not have("sipp"), reason="sipp not installed (apt-get install sip-tester)")
async def test_sipp_over_tls_reaches_the_ivr(service: Service, certs: CertPaths, tmp_path: Path) -> None:
    assert service.settings.sip.tls_port is not None
    server, port = await _tls_relay(service.settings.sip.tls_port, certs.ca_cert)
    try:
        run = await run_sipp(port, tmp_path / "tls", builtin="uac_pcap", transport="t1", timeout_s=30)
    finally:
        server.close()
    assert run.returncode == 0, (run.stderr[-800:], run.errors[-1500:])
    call_ids = [ln.split(":", 1)[1].strip() for ln in run.messages.splitlines()
                if ln.lower().startswith("call-id:")]
    assert call_ids, run.messages[-800:]
    record = await wait_record(service, call_ids[0])
    assert record["ivr"]["path"][:1] == ["welcome"], record["ivr"]
    await wait_idle(service)
