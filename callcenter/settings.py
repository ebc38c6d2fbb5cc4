"""Settings, built once at start from a TOML file, environment and CLI; frozen afterwards.

Each package defines its own settings types (``speech.settings``, ``telephony.settings``,
``ivr.settings``, ``live.settings``, ``summaries.settings``); this module only assembles them.

Nothing below this module reads ``os.environ``: components receive the part of ``Settings``
they need. Environment variables use the ``CALLCENTER_`` prefix and ``__`` for nesting
(``CALLCENTER_DEAD_AIR__THRESHOLD_S=7``); ``VOSK_MODEL_PATH`` is honoured as vosk users expect.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assist.checklist import ChecklistSettings
from assist.cues import CueSettings
from assist.kb_settings import KnowledgeSettings
from assist.rules_stage import RulesSettings
from callcenter.capacity import CapacitySettings
from callcenter.overload import OverloadSettings
from ivr.settings import IvrSettings
from live.settings import ConsoleSettings, MqttSettings
from qa.settings import QaSettings
from speech.settings import (
    AsrSettings,
    DeadAirSettings,
    DtmfSettings,
    TalkOverSettings,
    ToneSettings,
    VadSettings,
)
from summaries.kpi_settings import KpiSettings
from summaries.settings import StoreSettings, SummarySettings
from telephony.settings import AcdSettings, SiprecSettings, SipSettings

__all__ = [
    "AsrSettings",
    "ChecklistSettings",
    "CueSettings",
    "ConsoleSettings",
    "DeadAirSettings",
    "DtmfSettings",
    "IvrSettings",
    "KnowledgeSettings",
    "MqttSettings",
    "RulesSettings",
    "Settings",
    "SettingsError",
    "AcdSettings",
    "SipSettings",
    "SiprecSettings",
    "StoreSettings",
    "SummarySettings",
    "TalkOverSettings",
    "ToneSettings",
    "VadSettings",
    "load_settings",
]


























class Settings(BaseSettings):
    """All settings. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="CALLCENTER_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    data_dir: Path = Path("var")
    """Where the SQLite store, recordings and outboxes live."""
    vad: VadSettings = VadSettings()
    asr: AsrSettings = AsrSettings()
    dead_air: DeadAirSettings = DeadAirSettings()
    tone: ToneSettings = ToneSettings()
    talk_over: TalkOverSettings = TalkOverSettings()
    dtmf: DtmfSettings = DtmfSettings()
    store: StoreSettings = StoreSettings()
    summary: SummarySettings = SummarySettings()
    mqtt: MqttSettings = MqttSettings()
    sip: SipSettings = SipSettings()
    acd: AcdSettings = AcdSettings()
    siprec: SiprecSettings = SiprecSettings()
    ivr: IvrSettings = IvrSettings()
    console: ConsoleSettings = ConsoleSettings()
    capacity: CapacitySettings = CapacitySettings()
    """How many workers ``serve`` starts when ``sip.workers`` is auto (``callcenter.capacity``)."""
    overload: OverloadSettings = OverloadSettings()
    """When a worker refuses new calls and sheds partials, then prosody (``callcenter.overload``)."""
    knowledge: KnowledgeSettings = KnowledgeSettings()
    cues: CueSettings = CueSettings()
    rules: RulesSettings = RulesSettings()
    checklist: ChecklistSettings = ChecklistSettings()
    kpi: KpiSettings = KpiSettings()
    """KPIs and the predicted satisfaction formula (``summaries.kpis``)."""
    qa: QaSettings = QaSettings()
    """Evaluation forms that score every call (``qa.live``): live scorecards and the stored final one."""
    secure: bool = False
    """Every hop encrypted (``serve --secure``): HTTPS, MQTT over TLS with a password, certificates
    from ``data_dir/certs`` (made when missing); see ``callcenter.credentials.apply_secure``."""

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        """Resolved once, here: Kamailio, workers and the store change or inherit other working
        directories, so a relative ``var`` must not mean different places to them."""
        return Path(value).expanduser().resolve()

    @property
    def agents_file(self) -> Path:
        return self.acd.agents_file or self.data_dir / "agents.yaml"

    @property
    def kb_index_path(self) -> Path:
        return self.knowledge.index_path or self.data_dir / "kb.sqlite"

    @property
    def kb_feedback_path(self) -> Path:
        """The agents' marks on suggested articles (``assist.feedback``): console writes, workers read."""
        return self.data_dir / "kb-feedback.sqlite"

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{(self.data_dir / 'callcenter.db').resolve()}"


def load_settings(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Merge, lowest first: defaults, TOML file, environment, explicit overrides (CLI)."""
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(Path(config_file).read_text())
        except FileNotFoundError as exc:
            raise SettingsError(f"{config_file}: config file not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{config_file}: invalid TOML: {exc}") from exc
    env = os.environ if environ is None else environ
    vosk_path = env.get("VOSK_MODEL_PATH")
    if vosk_path and not env.get("CALLCENTER_ASR__VOSK_MODEL_PATH"):
        data.setdefault("asr", {}).setdefault("vosk_model_path", vosk_path)
    for key, value in (overrides or {}).items():
        _deep_set(data, key.split("."), value)
    # Environment beats the file: pydantic-settings gives init kwargs priority, so merge by hand.
    try:
        with _environ(env):
            from_env = Settings()
        merged = _merge(data, _explicit_env(from_env, env))
        return Settings(**merged) if merged else from_env
    except ValueError as exc:
        raise SettingsError(f"invalid settings: {exc}") from exc


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range."""


def _explicit_env(settings: Settings, env: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    """Only the keys the environment actually set, as a nested dict."""
    out: dict[str, Any] = {}
    dumped = settings.model_dump()
    for name in env:
        if not name.startswith("CALLCENTER_"):
            continue
        path = name[len("CALLCENTER_") :].lower().split("__")
        node: Any = dumped
        for part in path:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            _deep_set(out, path, node)
    return out


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _deep_set(data: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {})
    data[path[-1]] = value


class _environ:
    """Temporarily present ``env`` as ``os.environ`` to pydantic-settings."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.saved: dict[str, str] | None = None

    def __enter__(self) -> None:
        if self.env is os.environ:
            return
        self.saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            os.environ.clear()
            os.environ.update(self.saved)
