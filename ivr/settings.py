"""Settings of the IVR: which flow, where its prompts are, where agents are."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IvrSettings(_Frozen):
    flow: Path | None = None
    """IVR flow file; default: the shipped sample contact-center flow."""
    prompts_dir: Path | None = None
    """Where the flow's ``<prompt>.wav`` files are; default: the flow's own ``prompts_dir``."""
    agent_uri: str = "sip:agent@127.0.0.1:5090"
    """Where "speak to an agent" transfers (SIP REFER) in the sample flow."""
