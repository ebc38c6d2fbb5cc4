"""The agents directory: who may register, log in and take calls from which queues.

A YAML (or TOML) file, checked by pydantic; errors name the file, the agent and the field.
Passwords are never stored: ``ha1`` is the SIP digest hash (MD5 of ``id:realm:password``, what
Kamailio's ``auth`` module checks REGISTERs and INVITEs against, RFC 2617) and
``password_hash`` a PBKDF2-SHA256 hash for the console login. ``callcenter agents add`` writes
both.

    realm: callcenter
    agents:
      - id: alice
        name: Alice Smith
        ha1: 5f0d...
        password_hash: pbkdf2_sha256$600000$<salt hex>$<hash hex>
        skills: [agents, billing]
        supervisor: false
        contact: null        # a static SIP URI instead of registration (desk phone, tests)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tomllib
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_REALM = "callcenter"
PBKDF2_ROUNDS = 600_000
"""OWASP's 2023 figure for PBKDF2-HMAC-SHA256."""
AGENT_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,31}$"
"""SIP user part and MQTT topic level: lower case, no '/', '+', '#' or '@'."""


class DirectoryError(ValueError):
    """The agents file is missing, malformed or inconsistent."""


class Agent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=AGENT_ID_PATTERN)
    name: str = ""
    ha1: str = Field("", pattern=r"^([0-9a-f]{32})?$")
    """MD5(id:realm:password), hex; empty: this agent cannot register (static contact only)."""
    password_hash: str = ""
    """``pbkdf2_sha256$rounds$salt$hash`` for the console; empty: no console login."""
    skills: tuple[str, ...] = ()
    """Queues this agent serves."""
    supervisor: bool = False
    """May watch every queue and call (the next issue adds listen/whisper/barge)."""
    contact: str | None = None
    """A fixed SIP URI to ring instead of the registrar's contact."""

    def serves(self, queue: str) -> bool:
        return queue in self.skills


class Directory(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    realm: str = DEFAULT_REALM
    agents: tuple[Agent, ...] = ()

    def get(self, agent_id: str) -> Agent | None:
        return next((a for a in self.agents if a.id == agent_id), None)

    def serving(self, queue: str) -> list[Agent]:
        return [a for a in self.agents if a.serves(queue)]


def sip_ha1(agent_id: str, realm: str, password: str) -> str:
    """The digest HA1 a SIP registrar stores instead of the password (RFC 2617)."""
    return hashlib.md5(f"{agent_id}:{realm}:{password}".encode()).hexdigest()  # noqa: S324 - SIP digest


def hash_password(password: str, *, rounds: int = PBKDF2_ROUNDS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)
    return f"pbkdf2_sha256${rounds}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against ``hash_password``'s output."""
    try:
        scheme, rounds, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(rounds))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def make_agent(agent_id: str, password: str, *, realm: str = DEFAULT_REALM, name: str = "",
               skills: Iterable[str] = (), supervisor: bool = False, contact: str | None = None,
               rounds: int = PBKDF2_ROUNDS) -> Agent:
    return Agent(id=agent_id, name=name, ha1=sip_ha1(agent_id, realm, password),
                 password_hash=hash_password(password, rounds=rounds), skills=tuple(skills),
                 supervisor=supervisor, contact=contact)


def load_directory(path: Path | None) -> Directory:
    """The agents file at ``path`` (YAML or TOML); no path or no file: no agents."""
    if path is None or not Path(path).exists():
        return Directory()
    path = Path(path)
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise DirectoryError(f"{path}: cannot read agents file: {exc}") from exc
    try:
        directory = Directory.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise DirectoryError(f"{path}: {problems}") from None
    ids = [a.id for a in directory.agents]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise DirectoryError(f"{path}: agents: duplicate id {', '.join(dupes)}")
    return directory


def save_directory(directory: Directory, path: Path) -> None:
    """Write the directory as YAML, owner-only (it holds password hashes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = directory.model_dump(mode="json")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)


def upsert_agent(directory: Directory, agent: Agent) -> Directory:
    agents = [a for a in directory.agents if a.id != agent.id] + [agent]
    return directory.model_copy(update={"agents": tuple(agents)})
