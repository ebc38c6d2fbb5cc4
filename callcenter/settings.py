"""Settings, built once at start from a TOML file, environment and CLI; frozen afterwards.

Nothing below this module reads ``os.environ``: components receive the part of ``Settings``
they need. Environment variables use the ``CALLCENTER_`` prefix and ``__`` for nesting
(``CALLCENTER_DEAD_AIR__THRESHOLD_S=7``); ``VOSK_MODEL_PATH`` is honoured as vosk users expect.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VadSettings(_Frozen):
    aggressiveness: int = Field(2, ge=0, le=3)
    """webrtcvad mode; 2-3 keep silence gaps whole in noise."""
    frame_ms: Literal[10, 20, 30] = 20
    start_ms: int = 60
    """Voiced audio needed before an utterance starts."""
    hangover_ms: int = 300
    """Unvoiced audio needed before it ends, so a word is not cut."""
    preroll_ms: int = 300
    """Audio before the detected onset that is still sent to ASR."""
    floor_margin_db: float = 6.0
    """A chunk is voiced only this far above the party's running noise floor (webrtcvad alone
    keeps saying "speech" for 60-120 ms after a word)."""


class AsrSettings(_Frozen):
    engine: Literal["auto", "vosk", "pocketsphinx", "none"] = "auto"
    """``auto``: vosk when a vosk model resolves, else pocketsphinx (ships its English model)."""
    vosk_model_path: Path | None = None
    vosk_language: str = "en-us"
    vosk_download: bool = False
    """Let vosk download a model for ``vosk_language`` (needs internet)."""
    partials: bool = True
    max_utterance_s: float = 20.0
    """Force a final after this much continuous speech."""


class DeadAirSettings(_Frozen):
    threshold_s: float = Field(5.0, gt=0)


class ToneSettings(_Frozen):
    baseline_utterances: int = 2
    """Caller utterances that set the prosody baseline."""
    calm_score: float = 0.2
    """Below this tension an utterance is calm (neutral up to ``tense_score``)."""
    tense_score: float = 0.45
    angry_score: float = 0.7
    rising_trend: float = 0.12
    """Score slope per utterance over the window that raises a rising-tension alert."""
    trend_window: int = 3
    prosody_weight: float = 0.45
    lexical_weight: float = 0.55


class TalkOverSettings(_Frozen):
    min_overlap_s: float = 0.3


class DtmfSettings(_Frozen):
    min_duration_ms: int = 40
    min_gap_ms: int = 40
    twist_db: float = 8.0
    min_level_db: float = -30.0
    min_tone_fraction: float = 0.8
    """Share of a window's energy the two tones must carry: rejects speech and music."""
    min_peak_ratio_db: float = 6.0
    """How far the strongest tone of a group stands above the runner-up."""


class StoreSettings(_Frozen):
    url: str | None = None
    """SQLAlchemy URL; default: SQLite in ``data_dir``."""
    keep_original_pii: bool = False
    webhook_url: str | None = None
    webhook_secret: str | None = None
    api_enabled: bool = True
    """``serve`` runs the REST API beside the console (when the console is enabled)."""
    api_host: str = "127.0.0.1"
    api_port: int = 8081
    """The CRM REST API (OpenAPI at /openapi.json); ``serve`` and ``callcenter api`` run it."""
    api_token: str | None = None
    """Bearer token for the REST API; default: the console token."""


class SummarySettings(_Frozen):
    llm_base_url: str | None = None
    """An OpenAI-compatible endpoint (``http://host:port/v1``) for LLM summaries; the offline
    summarizer is used when unset and as the fallback when the endpoint fails."""
    llm_api_key: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 30.0
    secure_ivr_nodes: tuple[str, ...] = ()
    """IVR nodes whose entered digits are PII (flows can also mark a collect node ``secure``)."""


class MqttSettings(_Frozen):
    host: str | None = None
    """Broker host; ``None`` runs an embedded broker on ``port``."""
    port: int = 1883
    embedded_port: int = 18830
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    topic_prefix: str = "callcenter"
    outbox_max: int = 100_000
    """Events kept on disk while the broker is unreachable."""
    enabled: bool = True


class SipSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = 5060
    transports: tuple[Literal["udp", "tcp"], ...] = ("udp", "tcp")
    workers: int | None = None
    """Endpoint processes (each holds at most 4 calls); default: one per core."""
    worker_base_port: int = 5070
    codecs: tuple[str, ...] = ("PCMU/8000", "PCMA/8000", "G722/16000")
    max_calls: int = Field(4, ge=1, le=4)
    """Calls per endpoint process; the pjsua2 wheel is built with at most 4."""
    inbox_frames: int = 500
    """Audio frames a call's inbox holds before dropping (10 s); control items are never dropped."""
    front: Literal["auto", "kamailio", "none"] = "auto"
    record: bool = True


class IvrSettings(_Frozen):
    flow: Path | None = None
    """IVR flow file; default: the shipped sample contact-center flow."""
    prompts_dir: Path | None = None
    """Where the flow's ``<prompt>.wav`` files are; default: the flow's own ``prompts_dir``."""
    agent_uri: str = "sip:agent@127.0.0.1:5090"
    """Where "speak to an agent" transfers (SIP REFER) in the sample flow."""


class ConsoleSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = 8080
    token: str = "change-me"
    enabled: bool = True


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
    ivr: IvrSettings = IvrSettings()
    console: ConsoleSettings = ConsoleSettings()

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
