"""serve's console and the publisher against a protected mosquitto: a password file (no anonymous
clients) on one listener, TLS with a throwaway CA on another. Agents must see the live call.

Real parts: a mosquitto child process, certificates made with ``cryptography``, the console as
``serve`` starts it (``callcenter.serve._start_console``), ``MqttPublisher`` as workers use it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import ipaddress
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import httpx
import pytest

from callcenter.serve import Service, _start_console, stop_service
from callcenter.settings import Settings, load_settings
from live.broker import find_mosquitto
from live.publisher import MqttPublisher
from speech.events import CallStarted, FinalTranscript
from telephony.net import free_port

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto binary missing (apt-get install mosquitto)"),
    pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd missing (mosquitto package)"),
]
pytest.importorskip("cryptography", reason="cryptography is a test dependency (pip install -e .[test])")

USER, PASSWORD, TOKEN = "agent-console", "s3cret-broker-pw", "console-token"


@dataclass
class Broker:
    plain_port: int
    tls_port: int
    ca_file: Path


def make_certs(folder: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it; returns the CA file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test CA")).issuer_name(name("test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(pem_key(key))
    return folder / "ca.pem"


@pytest.fixture
def broker(tmp_path):
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    ca = make_certs(folder)
    passwd = folder / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), USER, PASSWORD], check=True, capture_output=True)
    passwd.chmod(0o600)
    plain, tls = free_port(), free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text("\n".join([
        f"user {getpass.getuser()}", "per_listener_settings false", "allow_anonymous false",
        f"password_file {passwd}", "persistence false", "log_dest stderr",
        f"listener {plain} 127.0.0.1",
        f"listener {tls} 127.0.0.1", f"cafile {ca}", f"certfile {folder / 'server.pem'}",
        f"keyfile {folder / 'server.key'}", "",
    ]))
    proc = subprocess.Popen([find_mosquitto() or "mosquitto", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    import socket

    for port in (plain, tls):
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"mosquitto did not start: {proc.stderr.read().decode()[-1000:] if proc.stderr else ''}")
            time.sleep(0.05)
    yield Broker(plain, tls, ca)
    proc.terminate()
    proc.wait(10)


def settings_for(tmp_path: Path, broker: Broker, *, tls: bool, password: str = PASSWORD) -> Settings:
    mqtt = {"mqtt.host": "127.0.0.1", "mqtt.port": broker.tls_port if tls else broker.plain_port,
            "mqtt.username": USER, "mqtt.password": password, "mqtt.tls": tls}
    if tls:
        mqtt["mqtt.ca_file"] = str(broker.ca_file)
    return load_settings(None, {"data_dir": str(tmp_path / "var"), "console.token": TOKEN,
                                "console.port": free_port(), **mqtt}, environ={})


async def console_calls(settings: Settings, call_id: str, wait_s: float = 15.0) -> list[dict]:
    base = f"http://{settings.console.host}:{settings.console.port}"
    async with httpx.AsyncClient(base_url=base, follow_redirects=True) as http:
        assert (await http.get("/", params={"token": TOKEN})).status_code == 200  # sets the cookie
        deadline = time.monotonic() + wait_s
        while True:
            calls = (await http.get("/api/calls")).json()
            if any(c["call_id"] == call_id for c in calls) or time.monotonic() > deadline:
                return calls
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("tls", [False, True], ids=["password-file", "tls-and-password"])
async def test_serve_console_sees_calls_on_a_protected_broker(tmp_path, broker, tls):
    settings = settings_for(tmp_path, broker, tls=tls)
    settings.data_dir.mkdir(parents=True)
    svc = Service(settings)
    pub = MqttPublisher(settings.mqtt, tmp_path / "outbox.sqlite")
    try:
        await _start_console(svc, settings)
        await pub.start()
        call_id = f"protected-{'tls' if tls else 'pw'}"
        pub.publish(CallStarted(call_id=call_id, t=0.0, source="sip", caller="+15550100"))
        pub.publish(FinalTranscript(call_id=call_id, t=1.0, text="hello there"))
        calls = await console_calls(settings, call_id)
        assert [c["call_id"] for c in calls] == [call_id], calls
        assert pub.stats().published > 0 and pub.stats().reconnects == 0
    finally:
        await pub.stop(drain=False)
        await stop_service(svc)


async def test_the_broker_really_refuses_anonymous_wrong_password_and_plain_tcp_on_tls(broker):
    """The negative controls: what the console did before it passed credentials and TLS."""
    with pytest.raises(aiomqtt.MqttError, match="[Nn]ot authori[sz]ed"):
        async with aiomqtt.Client("127.0.0.1", broker.plain_port, timeout=5):
            pass
    with pytest.raises(aiomqtt.MqttError, match="[Nn]ot authori[sz]ed|[Bb]ad user"):
        async with aiomqtt.Client("127.0.0.1", broker.plain_port, username=USER, password="wrong", timeout=5):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", broker.tls_port, username=USER, password=PASSWORD, timeout=3):
            pass


async def test_console_with_a_wrong_password_shows_nothing(tmp_path, broker):
    good = settings_for(tmp_path, broker, tls=False)
    bad = settings_for(tmp_path, broker, tls=False, password="wrong")
    bad.data_dir.mkdir(parents=True)
    svc = Service(bad)
    pub = MqttPublisher(good.mqtt, tmp_path / "outbox.sqlite")
    try:
        await _start_console(svc, bad)
        await pub.start()
        pub.publish(CallStarted(call_id="unseen", t=0.0, source="sip"))
        calls = await console_calls(bad, "unseen", wait_s=3.0)
        assert pub.pending == 0 and calls == []
    finally:
        await pub.stop(drain=False)
        await stop_service(svc)
