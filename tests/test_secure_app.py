"""No default secrets, scoped API tokens, HTTPS with HSTS, and the embedded broker with TLS and a
password: the secure mode's application side, with certificates from ``callcenter certs``.

Real parts: uvicorn serving the CRM API over TLS, httpx trusting only the generated CA, a
mosquitto child process (``live.broker.EmbeddedBroker``) with a TLS listener and a password file,
aiomqtt clients, and ``callcenter replay --publish`` as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import aiomqtt
import httpx
import pytest

from callcenter.api_server import HSTS_VALUE, start_api
from callcenter.certs import ensure_certs
from callcenter.credentials import resolve_secrets, write_embedded_broker
from callcenter.settings import SettingsError, load_settings
from live.broker import EmbeddedBroker, find_mosquitto
from summaries.sample_calls import billing_call
from telephony.net import free_port
from tests.conftest import ROOT

MOSQUITTO = pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto missing (apt-get install mosquitto)")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- no default secrets ----------------------------------------------------------------------------


def test_first_run_generates_owner_only_secrets_and_keeps_them(tmp_path: Path) -> None:
    settings = load_settings(None, {"data_dir": str(tmp_path / "var"),
                                    "store.webhook_url": "http://127.0.0.1:9/hook"}, environ={})
    assert settings.console.token is None  # nothing shipped
    first = resolve_secrets(settings)
    folder = tmp_path / "var" / "secrets"
    assert {p.name for p in first.created} == {"console_token", "api_read_token", "webhook_secret"}
    assert _mode(folder) == 0o700
    for name in ("console_token", "api_read_token", "webhook_secret"):
        assert _mode(folder / name) == 0o600
    token = first.settings.console.token
    assert token and len(token) >= 40 and (folder / "console_token").read_text().strip() == token
    assert first.settings.store.webhook_secret == (folder / "webhook_secret").read_text().strip()
    assert first.settings.store.api_read_token not in (None, token)
    again = resolve_secrets(settings)  # a restart reads them back
    assert again.created == [] and again.settings.console.token == token
    assert resolve_secrets(first.settings).settings == first.settings  # idempotent


def test_secure_mode_fills_in_every_encrypted_hop(tmp_path: Path) -> None:
    resolved = resolve_secrets(load_settings(None, {"data_dir": str(tmp_path), "secure": True,
                                                    "sip.srtp": "optional"}, environ={}))
    s = resolved.settings
    certs = tmp_path / "certs"
    assert s.console.tls_cert == certs / "server.pem" and s.console.hsts
    assert s.mqtt.tls and s.mqtt.ca_file == certs / "ca.pem" and s.mqtt.username == "callcenter"
    assert s.mqtt.password == (tmp_path / "secrets" / "mqtt_password").read_text().strip()
    assert s.sip.tls_port == 5061 and s.sip.require_tls and s.sip.tls_key == certs / "server.key"
    assert s.sip.srtp == "optional"  # an explicit setting wins
    assert _mode(certs / "server.key") == 0o600


@pytest.mark.parametrize(("key", "value"), [("console.token", "change-me"), ("console.token", ""),
                                            ("console.token", "short"), ("store.api_token", "change-me"),
                                            ("store.api_read_token", "1234"), ("mqtt.password", "change-me")])
def test_published_default_and_weak_secrets_are_refused(tmp_path: Path, key: str, value: str) -> None:
    settings = load_settings(None, {"data_dir": str(tmp_path), key: value}, environ={})
    with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
        resolve_secrets(settings)


def test_serve_refuses_change_me_before_starting_anything(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")},
           "CALLCENTER_CONSOLE__TOKEN": "change-me"}
    done = subprocess.run([sys.executable, "-m", "callcenter", "--data-dir", str(tmp_path / "var"), "serve",
                           "--front", "none", "--port", str(free_port())],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "published default" in done.stderr and "console.token" in done.stderr
    assert not (tmp_path / "var" / "workers").exists()  # no worker was started


# -- HTTPS, HSTS, scoped tokens --------------------------------------------------------------------


async def test_crm_api_over_https_with_a_read_only_and_a_write_token(tmp_path: Path) -> None:
    port = free_port()
    settings = load_settings(None, {"data_dir": str(tmp_path / "var"), "secure": True,
                                    "store.api_port": port, "store.api_token": "crm-bridge-write-token"},
                             environ={})
    running = await start_api(settings)
    try:
        read = (tmp_path / "var" / "secrets" / "api_read_token").read_text().strip()
        ca = tmp_path / "var" / "certs" / "ca.pem"
        body = {"events": [e.to_dict() for e in billing_call(call_id="posted-over-tls")]}
        async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=ssl.create_default_context(
                cafile=str(ca)), timeout=20) as api:
            anonymous = await api.get("/api/calls")
            listed = await api.get("/api/calls", headers={"Authorization": f"Bearer {read}"})
            denied = await api.post("/api/calls", json=body, headers={"Authorization": f"Bearer {read}"})
            written = await api.post("/api/calls", json=body,
                                     headers={"Authorization": "Bearer crm-bridge-write-token"})
            detail = await api.get("/api/calls/posted-over-tls", headers={"Authorization": f"Bearer {read}"})
            spec = await api.get("/openapi.json", headers={"Authorization": f"Bearer {read}"})
        assert anonymous.status_code == 401
        assert listed.status_code == 200 and listed.headers["strict-transport-security"] == HSTS_VALUE
        assert denied.status_code == 403 and "only read" in denied.json()["detail"]
        assert written.status_code == 201 and written.json() == {"call_id": "posted-over-tls"}
        assert detail.status_code == 200 and detail.json()["call_id"] == "posted-over-tls"
        assert spec.status_code == 200
        # a client that does not trust the generated CA is refused, and so is clear-text HTTP
        async with httpx.AsyncClient(timeout=10) as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get(f"https://127.0.0.1:{port}/api/calls")
            with pytest.raises(httpx.HTTPError):
                await untrusting.get(f"http://127.0.0.1:{port}/api/calls",
                                     headers={"Authorization": f"Bearer {read}"})
    finally:
        await running.stop()


# -- MQTT over TLS with a password -----------------------------------------------------------------


def _client(port: int, ca: Path, password: str, **kw: object) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", port, username="callcenter", password=password, timeout=5,
                          tls_context=ssl.create_default_context(cafile=str(ca)), **kw)  # type: ignore[arg-type]


@MOSQUITTO
@pytest.mark.broker
async def test_embedded_broker_speaks_tls_only_and_refuses_a_wrong_password(tmp_path: Path) -> None:
    certs = ensure_certs(tmp_path / "certs")
    port = free_port()
    password = "broker-password-for-test"
    async with EmbeddedBroker("127.0.0.1", port, cert_file=certs.cert, key_file=certs.key,
                              users={"callcenter": password}, backend="mosquitto") as broker:
        assert "allow_anonymous false" in broker.config_text(tmp_path / "p")
        async with _client(port, certs.ca_cert, password) as sub:
            await sub.subscribe("t/#", qos=1)
            async with _client(port, certs.ca_cert, password) as pub:
                await pub.publish("t/x", b"over tls", qos=1)
            msg = await asyncio.wait_for(anext(aiter(sub.messages)), 10)
            assert msg.payload == b"over tls"
        with pytest.raises(aiomqtt.MqttError):
            async with _client(port, certs.ca_cert, "wrong-password-here"):
                pass
        with pytest.raises(aiomqtt.MqttError):  # clear text on the TLS listener
            async with aiomqtt.Client("127.0.0.1", port, username="callcenter", password=password, timeout=3):
                pass


@MOSQUITTO
@pytest.mark.broker
@pytest.mark.slow
async def test_replay_publish_reaches_serves_secure_broker(tmp_path: Path) -> None:
    """``replay --publish`` on serve's data dir connects as serve recorded: TLS, CA, password."""
    var = tmp_path / "var"
    port = free_port()
    settings = resolve_secrets(load_settings(None, {"data_dir": str(var), "secure": True,
                                                    "mqtt.embedded_port": port}, environ={})).settings
    mqtt = settings.mqtt
    assert mqtt.tls and mqtt.password and mqtt.cert_file and mqtt.ca_file
    async with EmbeddedBroker("127.0.0.1", port, cert_file=mqtt.cert_file, key_file=mqtt.key_file,
                              users={str(mqtt.username): mqtt.password}, backend="mosquitto"):
        write_embedded_broker(settings, "127.0.0.1", port)
        assert _mode(var / "secrets" / "embedded_broker.json") == 0o600
        async with _client(port, mqtt.ca_file, mqtt.password) as sub:
            await sub.subscribe("callcenter/calls/+/events", qos=1)
            env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "callcenter", "--data-dir", str(var), "replay", "--publish", "--no-store",
                "--engine", "none", "--json", str(ROOT / "audio_fixtures" / "calm_billing.wav"),
                cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 300)
            assert proc.returncode == 0, err.decode()[-2000:]
            types = []
            while "call.ended" not in types:
                msg = await asyncio.wait_for(anext(aiter(sub.messages)), 30)
                types.append(json.loads(msg.payload)["type"])
        assert types[0] == "call.started" and "call.ended" in types


def test_certs_command_makes_a_ca_and_a_server_certificate_for_the_hosts(tmp_path: Path) -> None:
    from cryptography import x509

    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    done = subprocess.run([sys.executable, "-m", "callcenter", "certs", "--dir", str(tmp_path / "c"),
                           "--host", "cc.example.test", "--host", "10.1.2.3"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "c" / "ca.pem") in done.stdout
    cert = x509.load_pem_x509_certificate((tmp_path / "c" / "server.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["cc.example.test"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    assert _mode(tmp_path / "c" / "server.key") == 0o600 and _mode(tmp_path / "c") == 0o700
