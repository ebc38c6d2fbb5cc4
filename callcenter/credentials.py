"""No default secrets: tokens, passwords and the secure mode's certificates, resolved at start.

A secret left unset in the settings is generated once (``secrets.token_urlsafe``) into
``data_dir/secrets/<name>`` (the directory 0700, the file 0600) and read from there on later
runs, so every install has its own. A secret set to the old default ``change-me``, or shorter
than :data:`MIN_SECRET_CHARS`, is refused: the README once printed that default.

``secure`` (``serve --secure``) fills in what encryption needs: a local CA and a server
certificate in ``data_dir/certs`` (``callcenter.certs``), SIP over TLS only (``sip.port + 1``,
5061 by default) with SRTP mandatory, HTTPS with HSTS for the console and the CRM API, and the
embedded MQTT broker with TLS only and a generated password. Settings given explicitly win.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.settings import Settings, SettingsError

FORBIDDEN = frozenset({"change-me", "changeme", "secret", "password"})
MIN_SECRET_CHARS = 8
MQTT_USER = "callcenter"
EMBEDDED_BROKER_FILE = "embedded_broker.json"
"""Written by ``serve`` into ``data_dir/secrets``: how ``replay --publish`` reaches its broker."""


@dataclass
class Resolved:
    """The settings with every secret filled in, and which secret files this run created."""

    settings: Settings
    created: list[Path] = field(default_factory=list)
    token_from_file: bool = False
    """The console token is the generated one in ``data_dir/secrets/console_token``."""

    def token_file(self) -> Path:
        return secrets_dir(self.settings) / "console_token"


def secrets_dir(settings: Settings) -> Path:
    return settings.data_dir / "secrets"


def check_secret(name: str, value: str) -> str:
    """``value`` if it may protect something; else a SettingsError naming the setting."""
    if value.strip().lower() in FORBIDDEN:
        raise SettingsError(f"{name} = {value!r} is a published default; set your own or unset it "
                            f"to have one generated into data_dir/secrets")
    if len(value) < MIN_SECRET_CHARS:
        raise SettingsError(f"{name} is shorter than {MIN_SECRET_CHARS} characters")
    return value


def _secret_file(settings: Settings, name: str, created: list[Path]) -> str:
    """The secret stored in ``data_dir/secrets/<name>``, generated (0600) when missing."""
    folder = secrets_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / name
    value = secrets.token_urlsafe(32)
    tmp = folder / f".{name}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    try:
        os.link(tmp, path)  # complete or absent: two processes starting at once agree on one
        created.append(path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return check_secret(str(path), path.read_text().strip())


def resolve_secrets(settings: Settings) -> Resolved:
    """Fill in (generate or read) the console token, the API's read-only token, the webhook
    secret (with a webhook URL) and, in secure mode, certificates and the broker's password;
    refuse published defaults. Idempotent: resolved settings resolve to themselves."""
    created: list[Path] = []
    if settings.secure:
        settings = apply_secure(settings, created)
    console, store = settings.console, settings.store
    # A set secret is checked even when empty: an empty token must not pass for "unset".
    token = check_secret("console.token", console.token) if console.token is not None else (
        _secret_file(settings, "console_token", created))
    updates: dict[str, Any] = {}
    if store.api_token is not None:
        check_secret("store.api_token", store.api_token)
    read = (check_secret("store.api_read_token", store.api_read_token) if store.api_read_token is not None
            else _secret_file(settings, "api_read_token", created))
    webhook = store.webhook_secret
    if webhook is not None:
        check_secret("store.webhook_secret", webhook)
    elif store.webhook_url:
        webhook = _secret_file(settings, "webhook_secret", created)
    mqtt = settings.mqtt
    if mqtt.password is not None:
        check_secret("mqtt.password", mqtt.password)
    updates["console"] = console.model_copy(update={"token": token})
    updates["store"] = store.model_copy(update={"api_read_token": read, "webhook_secret": webhook})
    return Resolved(settings.model_copy(update=updates), created, token_from_file=console.token is None)


def apply_secure(settings: Settings, created: list[Path]) -> Settings:
    """The settings with every hop this package owns encrypted; explicit settings win."""
    from callcenter.certs import ensure_certs

    hosts = list(dict.fromkeys(["127.0.0.1", "localhost", settings.console.host, settings.store.api_host,
                                settings.sip.host]))
    certs = ensure_certs(settings.data_dir / "certs", hosts)
    console = settings.console.model_copy(update={
        "tls_cert": settings.console.tls_cert or certs.cert,
        "tls_key": settings.console.tls_key or certs.key,
        "hsts": True,
    })
    mqtt = settings.mqtt
    update: dict[str, Any] = {"tls": True}
    if mqtt.host is None:  # the embedded broker: our certificate, a generated password
        update |= {"cert_file": mqtt.cert_file or certs.cert, "key_file": mqtt.key_file or certs.key,
                   "ca_file": mqtt.ca_file or certs.ca_cert, "username": mqtt.username or MQTT_USER,
                   "password": mqtt.password or _secret_file(settings, "mqtt_password", created)}
    sip = settings.sip
    sip = sip.model_copy(update={  # SIP over TLS only, SRTP required (telephony.settings.SipSettings)
        "tls_port": sip.tls_port or sip.port + 1, "tls_cert": sip.tls_cert or certs.cert,
        "tls_key": sip.tls_key or certs.key, "tls_ca": sip.tls_ca or certs.ca_cert, "require_tls": True,
        "srtp": "mandatory" if sip.srtp == "off" else sip.srtp,
    })
    return settings.model_copy(update={"console": console, "mqtt": mqtt.model_copy(update=update), "sip": sip})


def write_embedded_broker(settings: Settings, host: str, port: int) -> Path:
    """Record how to reach serve's embedded broker (TLS, CA, credentials; 0600), so that
    ``replay --publish`` on this data dir connects as serve's own clients do."""
    folder = secrets_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    mqtt = settings.mqtt
    path = folder / EMBEDDED_BROKER_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"host": host, "port": port, "tls": mqtt.tls,
                   "ca_file": str(mqtt.ca_file) if mqtt.ca_file else None,
                   "username": mqtt.username, "password": mqtt.password}, f)
    os.replace(tmp, path)
    return path


def embedded_broker(settings: Settings) -> dict[str, Any] | None:
    """What :func:`write_embedded_broker` recorded for this data dir, or None."""
    path = secrets_dir(settings) / EMBEDDED_BROKER_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data
