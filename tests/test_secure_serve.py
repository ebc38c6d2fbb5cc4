"""``serve`` in secure mode (``secure = true``, what ``scripts/run.sh --secure`` sets): a caller
over SIP/TLS with SRTP mandatory; its events go from the worker over MQTT/TLS with a password to
the embedded mosquitto, the console follows them over TLS and shows them in Chromium over HTTPS;
cookies are Secure, HSTS is sent.

Real parts: ``start_service`` (a pjsua2 worker, mosquitto, uvicorn with the generated
certificate), a pjsua2 test caller, headless Chromium, httpx trusting only the generated CA.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
import time
from pathlib import Path

import aiomqtt
import httpx
import pytest

from callcenter.api_server import HSTS_VALUE
from callcenter.serve import start_service, stop_service
from callcenter.settings import load_settings
from live.broker import find_mosquitto
from speech.ports import consecutive_free_ports
from telephony.kamailio import kamailio_binary
from telephony.net import free_port
from tests.e2e_console_support import CHROMIUM, CHROMIUM_ARGS, UI_TIMEOUT_MS
from tests.sip.caller import caller_result, start_caller

FIXTURES = Path(__file__).resolve().parent.parent / "audio_fixtures"

pytestmark = [
    pytest.mark.sip,
    pytest.mark.broker,
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto missing (apt-get install mosquitto)"),
    pytest.mark.skipif(kamailio_binary() is None, reason="kamailio not installed (apt-get install kamailio)"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing (apt-get install chromium)"),
]


def spki_pin(cert_pem: Path) -> str:
    """Chromium's ``--ignore-certificate-errors-spki-list`` value for a certificate: how a headless
    browser with no certificate store is told to trust the generated server certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


async def test_secure_serve_encrypts_console_api_and_mqtt(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.async_api")
    var = tmp_path / "var"
    wport, aport, bport = free_port(), free_port(), free_port()
    settings = load_settings(environ={}, overrides={
        "data_dir": str(var), "secure": True, "sip.workers": 1, "sip.front": "kamailio", "sip.port": free_port(),
        "sip.worker_base_port": consecutive_free_ports(1), "sip.tls_port": free_port(),
        "console.port": wport, "store.api_port": aport, "mqtt.embedded_port": bport, "asr.engine": "none",
    })
    svc = await start_service(settings, ready_timeout=60)
    try:
        token = (var / "secrets" / "console_token").read_text().strip()
        ca = var / "certs" / "ca.pem"
        trust = ssl.create_default_context(cafile=str(ca))
        s = svc.settings
        assert s.console.token == token and s.mqtt.tls and s.mqtt.password
        assert s.sip.require_tls and s.sip.srtp == "mandatory" and s.sip.tls_cert
        base = f"https://127.0.0.1:{wport}"
        async with httpx.AsyncClient(base_url=base, verify=trust, timeout=20) as web:
            first = await web.get("/", params={"token": token})
            assert first.status_code in (302, 303, 307) and first.headers["strict-transport-security"] == HSTS_VALUE
            cookie = first.headers["set-cookie"].lower()
            assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
            assert token not in first.headers["set-cookie"]
            assert (await web.get("/api/health")).status_code == 200  # the cookie opens the console
        async with httpx.AsyncClient(verify=trust, timeout=20) as api:
            read = (var / "secrets" / "api_read_token").read_text().strip()
            r = await api.get(f"https://127.0.0.1:{aport}/api/calls", headers={"Authorization": f"Bearer {read}"})
            assert r.status_code == 200 and r.headers["strict-transport-security"] == HSTS_VALUE
        with pytest.raises(aiomqtt.MqttError):  # no clear-text MQTT on the embedded broker
            async with aiomqtt.Client("127.0.0.1", bport, username=s.mqtt.username, password=s.mqtt.password,
                                      timeout=3):
                pass

        async with aiomqtt.Client("127.0.0.1", bport, username=s.mqtt.username, password=s.mqtt.password,
                                  tls_context=trust, timeout=5) as sub:
            await sub.subscribe("callcenter/calls/+/events", qos=1)
            async with playwright.async_playwright() as p:
                browser = await p.chromium.launch(
                    executable_path=CHROMIUM,
                    args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki_pin(var / 'certs' / 'server.pem')}"])
                page = await browser.new_page()
                await page.goto(f"{base}/?token={token}")
                assert page.url.startswith("https://") and "token" not in page.url
                await page.wait_for_selector("#conn.ok", timeout=UI_TIMEOUT_MS)  # SSE over HTTPS
                uri = f"sip:ivr@127.0.0.1:{s.sip.tls_port};transport=tls"
                caller = await start_caller(uri, "--tls", "--ca", str(ca), "--srtp", "mandatory",
                                            "--play", str(FIXTURES / "calm_billing.wav"), "--dtmf", "1",
                                            "--hangup-after", "6")
                started = None
                deadline = time.monotonic() + 60
                while started is None:
                    msg = await asyncio.wait_for(anext(aiter(sub.messages)), max(1.0, deadline - time.monotonic()))
                    event = json.loads(msg.payload)
                    if event["type"] == "call.started":
                        started = event["call_id"]
                # the console followed the TLS broker and the browser shows the call
                await page.get_by_role("link", name=started, exact=True).wait_for(timeout=UI_TIMEOUT_MS)
                cookies = {c["name"]: c for c in await page.context.cookies()}
                assert cookies["cc_console"]["secure"] and cookies["cc_console"]["httpOnly"]
                await browser.close()
            result = await caller_result(caller, timeout_s=90)
            assert result["answered"] and result["call_id"]
            assert result["media"] == ["RTP/SAVP"], result  # SRTP negotiated
    finally:
        await stop_service(svc)
