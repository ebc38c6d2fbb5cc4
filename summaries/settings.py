"""Settings of after-call work: the CRM store, its API and webhook, the summarizer."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StoreSettings(_Frozen):
    url: str | None = None
    """SQLAlchemy URL; default: SQLite in ``data_dir``."""
    keep_original_pii: bool = False
    webhook_url: str | None = None
    webhook_secret: str | None = None
    """Signs webhook bodies; unset with a ``webhook_url``: generated into
    ``data_dir/secrets/webhook_secret`` on first run."""
    api_enabled: bool = True
    """``serve`` runs the REST API beside the console (when the console is enabled)."""
    api_host: str = "127.0.0.1"
    api_port: int = 8081
    """The CRM REST API (OpenAPI at /openapi.json); ``serve`` and ``callcenter api`` run it."""
    api_token: str | None = None
    """Bearer token for the REST API (read and write: the CRM bridge); default: the console token."""
    api_read_token: str | None = None
    """A read-only bearer token (reporting): writes with it get 403. Unset: generated on first
    run into ``data_dir/secrets/api_read_token``."""


class SummarySettings(_Frozen):
    llm_base_url: str | None = None
    """An OpenAI-compatible endpoint (``http://host:port/v1``) for LLM summaries; the offline
    summarizer is used when unset and as the fallback when the endpoint fails."""
    llm_api_key: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 30.0
    secure_ivr_nodes: tuple[str, ...] = ()
    """IVR nodes whose entered digits are PII (flows can also mark a collect node ``secure``)."""
