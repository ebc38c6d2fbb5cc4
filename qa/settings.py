"""Which evaluation forms score calls: ``qa`` in the settings (assembled by callcenter.settings)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from qa.forms import DEFAULT_FORMS, Form, load_forms


class QaSettings(BaseModel):
    """Which evaluation forms score calls (live, at wrap-up and in replay)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    forms: tuple[str, ...] = DEFAULT_FORMS
    """Form files, or names of shipped forms (``standard`` → ``qa/forms/standard.yaml``); empty:
    no scoring."""
    live: bool = True
    """Send ``qa.scorecard`` during the call (off: only the final one at wrap-up)."""
    min_interval_s: float = Field(2.0, ge=0)
    """Call time between two live scorings (a burst of events is scored once)."""
    tick_s: float = Field(5.0, gt=0)
    """Score at least this often while the call goes on (windows close with time)."""

    def load(self) -> list[Form]:
        return load_forms(list(self.forms))
