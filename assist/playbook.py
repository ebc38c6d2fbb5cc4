"""The de-escalation playbook file: escalation phrases, suggested phrases per step, and the agent
phrases that count as acknowledging the caller (``assist/defaults/playbook.yaml`` is the default)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from assist.files import Strict, load_model

DEFAULT_PLAYBOOK = Path(__file__).parent / "defaults" / "playbook.yaml"

Phrases = tuple[str, ...]


def _no_blank(value: tuple[str, ...]) -> tuple[str, ...]:
    if any(not p.strip() for p in value):
        raise ValueError("phrases must not be empty")
    return value


class Playbook(Strict):
    escalation_phrases: Phrases = Field(min_length=1)
    """Caller phrases that raise a cue on their own ("manager", "third time")."""
    steps: dict[str, Phrases] = Field(min_length=1)
    """Step (acknowledge, validate, take_ownership, next_step) → phrases shown with a cue."""
    acknowledgements: Phrases = Field(min_length=1)
    """Agent phrases that count as acknowledging or validating the caller after a cue."""

    _phrases = field_validator("escalation_phrases", "acknowledgements")(_no_blank)

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: dict[str, Phrases]) -> dict[str, Phrases]:
        for step, phrases in value.items():
            if not phrases:
                raise ValueError(f"step {step!r} has no phrases")
            _no_blank(phrases)
        return value


def load_playbook(path: Path | None = None) -> Playbook:
    """The playbook at ``path`` (default: the shipped one); ``AssistFileError`` when broken."""
    return load_model(path or DEFAULT_PLAYBOOK, Playbook)
