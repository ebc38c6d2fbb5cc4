"""Hand labels of recorded calls on an evaluation form, and the engine's agreement with them.

A labels file (``audio_fixtures/qa_calls/labels.yaml``) holds what a human reviewer answers per
call and question; the agreement test and benchmark score the same recordings automatically and
compare. Kept apart from the scoring so labels can never be produced by it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from qa.forms import Form

LabelAnswer = Literal["yes", "no", "na"]


class LabelsError(ValueError):
    """A labels file that cannot be read or does not fit its form: one line naming file and path."""


class LabelledCall(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    answers: dict[str, LabelAnswer]
    notes: dict[str, str] = {}

    @field_validator("answers", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for key, answer in value.items():
                if isinstance(answer, bool):
                    raise ValueError(f"{key}: quote the answer (\"yes\"/\"no\"): YAML reads a bare yes/no as a boolean")
        return value


class Labels(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    form: str
    calls: dict[str, LabelledCall]


@dataclass(frozen=True)
class LabelSet:
    """A validated labels file: its form id and each call's recording path and answers."""

    source: Path
    form: str
    calls: dict[str, LabelledCall]

    def path_of(self, name: str) -> Path:
        return (self.source.parent / self.calls[name].file).resolve()


def load_labels(path: Path, form: Form | None = None) -> LabelSet:
    """Read and validate ``path``; with ``form``, every call must answer exactly its questions."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        labels = Labels.model_validate(data)
    except OSError as exc:
        raise LabelsError(f"{path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise LabelsError(f"{path}: not YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise LabelsError(f"{path}: {problems}") from exc
    if form is not None:
        if labels.form != form.id:
            raise LabelsError(f"{path}: form: labels are for {labels.form!r}, not {form.id!r}")
        ids = {q.id for _, q in form.questions()}
        for name, call in labels.calls.items():
            missing, extra = ids - call.answers.keys(), call.answers.keys() - ids
            if missing or extra:
                raise LabelsError(f"{path}: calls.{name}.answers: missing {sorted(missing)}, unknown {sorted(extra)}")
    return LabelSet(source=path, form=labels.form, calls=dict(labels.calls))


@dataclass(frozen=True)
class Disagreement:
    call: str
    question_id: str
    label: str
    engine: str
    why: str
    """The engine's own reason (the scorecard answer's ``why``)."""
    note: str = ""


@dataclass(frozen=True)
class Agreement:
    """Labels vs. automatic answers over every (call, question) pair."""

    pairs: int
    agreed: int
    disagreements: tuple[Disagreement, ...]
    per_question: dict[str, tuple[int, int]]
    """question id → (agreed, pairs)."""
    confusion: dict[tuple[str, str], int]
    """(label, engine answer) → count."""

    @property
    def rate(self) -> float:
        return self.agreed / self.pairs if self.pairs else 0.0


def agreement(labels: LabelSet, cards: Mapping[str, Mapping[str, Any]]) -> Agreement:
    """Compare each labelled call's answers with its scorecard (``cards``: call name → scorecard
    dict); a labelled call without a scorecard counts every question as a disagreement."""
    pairs = agreed = 0
    out: list[Disagreement] = []
    per_q: dict[str, list[int]] = {}
    confusion: Counter[tuple[str, str]] = Counter()
    for name, call in labels.calls.items():
        answers = {a["question_id"]: a for a in cards.get(name, {}).get("answers", [])}
        for qid, label in call.answers.items():
            auto = answers.get(qid, {})
            got = str(auto.get("answer", "missing"))
            pairs += 1
            tally = per_q.setdefault(qid, [0, 0])
            tally[1] += 1
            confusion[(label, got)] += 1
            if got == label:
                agreed += 1
                tally[0] += 1
            else:
                out.append(Disagreement(name, qid, label, got, str(auto.get("why", "no scorecard")),
                                        call.notes.get(qid, "")))
    return Agreement(pairs, agreed, tuple(out), {q: (a, n) for q, (a, n) in per_q.items()}, dict(confusion))


def format_disagreements(result: Agreement) -> str:
    return "\n".join(f"{d.call} {d.question_id}: label {d.label}, engine {d.engine} ({d.why})"
                     + (f"; label note: {d.note}" if d.note else "") for d in result.disagreements)
