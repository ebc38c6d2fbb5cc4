"""Settings of the contact-center KPIs and the predicted satisfaction formula (``kpi.*``).

Every weight of the satisfaction formula is a named setting, so the score is never a black box:
``predicted CSAT = clamp(base + tone_end + resolution + wait + repeat_contact + dead_air, 0, 100)``
(``summaries.kpis.predict_csat`` returns each term's contribution).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class KpiSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    fcr_window_days: float = Field(7.0, gt=0)
    """First-contact resolution: a call is resolved first time unless the same caller calls
    again on the same reason within this many days."""
    csat_base: float = 70.0
    """Predicted satisfaction (0-100) of a call with nothing said for or against it."""
    csat_tone_calm: float = 15.0
    """Added when the caller's last tone label is ``calm``."""
    csat_tone_neutral: float = 0.0
    csat_tone_tense: float = -15.0
    csat_tone_angry: float = -30.0
    csat_resolved: float = 15.0
    """Added when the summary's resolution is ``resolved``."""
    csat_partly: float = 0.0
    csat_not_resolved: float = -20.0
    csat_wait_per_min: float = -5.0
    """Added per minute the caller waited in queues ..."""
    csat_wait_cap_min: float = Field(6.0, ge=0)
    """... counting at most this many minutes."""
    csat_repeat_contact: float = -15.0
    """Added when the call repeats an earlier one (same caller, same reason, within the FCR window)."""
    csat_dead_air_per_pct: float = -1.0
    """Added per percentage point of the call that was dead air."""
    handle_time_bin_s: float = Field(60.0, gt=0)
    """Width of a bar of the handle-time histogram."""
    top_n: int = Field(10, ge=1, le=100)
    """Rows of the top-reasons, rising-topics and worst-dead-air charts."""
    rising_min_calls: int = Field(2, ge=1)
    """A topic is rising only with at least this many calls in the current period."""
