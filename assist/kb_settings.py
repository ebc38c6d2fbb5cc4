"""Settings of knowledge suggestions (frozen; built by the composition root)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

SAMPLE_KB = Path(__file__).parent / "kb" / "sample"
"""The sample knowledge base for the sample telecom IVR (ivr/flows/contact_center.yaml)."""


class KnowledgeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    """Knowledge suggestions during calls (a stage after ASR)."""
    kb_dir: Path = SAMPLE_KB
    """The knowledge base: a folder of Markdown articles with front matter (title, tags, queues)."""
    index_path: Path | None = None
    """The SQLite FTS5 index; None: ``data_dir/kb.sqlite``."""
    auto_index: bool = True
    """Bring the index in line with ``kb_dir`` when a call first searches it (cheap: unchanged
    files are skipped by size and mtime); off: only ``callcenter kb index`` updates it."""
    top_k: int = Field(3, ge=1, le=10)
    """Articles per suggestion."""
    window: int = Field(2, ge=1, le=10)
    """Recent caller finals a query is built from (the newest one's words first)."""
    context_weight: float = Field(0.5, ge=0.0, le=1.0)
    """Weight of the earlier finals of the window against the newest one (``assist.suggestions.suggest``)."""
    queue_boost: float = Field(0.3, ge=0.0, le=5.0)
    """An article listed for the call's IVR queue scores ``1 + queue_boost`` times higher."""
    min_score: float = Field(1.0, ge=0.0)
    """Hits scoring below this are not suggested (BM25 of a single body word is ~1-3)."""
