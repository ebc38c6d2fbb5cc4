"""``callcenter certs``: a local CA and the certificates the secure mode needs, in one step.

For a test or a first deployment: a CA (kept beside its certificates, owner-only) signs one
server certificate for the SIP front, the console, the CRM API and the MQTT broker (one key, the
names and addresses given), and a client certificate. Clients (phones, browsers, httpx, MQTT
clients) trust ``ca.pem``. Made with the ``cryptography`` library (no openssl command line).
A real deployment replaces them with certificates from its own CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOSTS = ("127.0.0.1", "localhost")
VALID_DAYS = 825
"""The longest validity browsers accept for a server certificate."""


@dataclass(frozen=True)
class CertPaths:
    """Where ``ensure_certs`` put the CA and the certificates (PEM files)."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    cert: Path
    """Server certificate (SIP TLS, HTTPS, MQTT TLS), for every host in ``hosts``."""
    key: Path
    client_cert: Path
    client_key: Path


def cert_paths(directory: Path) -> CertPaths:
    d = Path(directory)
    return CertPaths(d, d / "ca.pem", d / "ca.key", d / "server.pem", d / "server.key",
                     d / "client.pem", d / "client.key")


def ensure_certs(directory: Path, hosts: Sequence[str] = DEFAULT_HOSTS, *, force: bool = False) -> CertPaths:
    """Make the CA and certificates in ``directory`` unless they are there (``force``: anew).
    Keys are written owner-only (0600), the directory 0700."""
    paths = cert_paths(directory)
    wanted = (paths.ca_cert, paths.ca_key, paths.cert, paths.key, paths.client_cert, paths.client_key)
    if not force and all(p.exists() for p in wanted):
        return paths
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    paths.directory.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.directory, 0o700)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=VALID_DAYS)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "callcenter"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("callcenter local CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, usage: list[x509.ObjectIdentifier], sans: list[x509.GeneralName]
             ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(until)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    server, server_key = leaf(hosts[0] if hosts else "callcenter",
                              [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], sans)
    client, client_key = leaf("callcenter client", [ExtendedKeyUsageOID.CLIENT_AUTH], [])

    def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)

    def write_cert(path: Path, cert: x509.Certificate) -> None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    write_key(paths.ca_key, ca_key)
    write_cert(paths.ca_cert, ca)
    write_key(paths.key, server_key)
    write_cert(paths.cert, server)
    write_key(paths.client_key, client_key)
    write_cert(paths.client_cert, client)
    return paths
