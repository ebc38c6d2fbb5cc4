"""Recall@k of the knowledge base on labelled caller questions (``kb/sample_questions.yaml``).

A question counts as found when any of its expected articles is among the top ``k``: several
articles can answer one question ("my internet is down": the outage map or the router restart).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from assist.index import KnowledgeIndex
from assist.kb_settings import KnowledgeSettings
from assist.suggestions import suggest

SAMPLE_QUESTIONS = Path(__file__).parent / "kb" / "sample_questions.yaml"


class LabelledQuestion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    q: str = Field(min_length=1)
    expect: tuple[str, ...] = Field(min_length=1)
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class Recall:
    k: int
    found: int
    total: int
    misses: tuple[tuple[str, tuple[str, ...]], ...]
    """Question and the ids it got, for each question not found."""

    @property
    def recall(self) -> float:
        return self.found / self.total if self.total else 0.0


def load_questions(path: Path = SAMPLE_QUESTIONS) -> list[LabelledQuestion]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return TypeAdapter(list[LabelledQuestion]).validate_python(data)


def recall_at_k(index: KnowledgeIndex, questions: list[LabelledQuestion], *, k: int = 3,
                settings: KnowledgeSettings | None = None, use_queue: bool = True) -> Recall:
    """What the live stage would suggest (``suggest``) for each question as one caller final."""
    settings = (settings or KnowledgeSettings()).model_copy(update={"top_k": k})
    found = 0
    misses = []
    for question in questions:
        hits = suggest(index, [question.q], (question.queue or "") if use_queue else "", settings, with_body=False)
        ids = tuple(h.id for h in hits)
        if set(ids) & set(question.expect):
            found += 1
        else:
            misses.append((question.q, ids))
    return Recall(k, found, len(questions), tuple(misses))
