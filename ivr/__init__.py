"""IVR: flow files, the per-call session state machine and its prompts.

Imports only the event vocabulary from ``speech``; a live call is connected through
:class:`ivr.session.IvrMedia`.
"""

from ivr.flow import SAMPLE_FLOW, Flow, FlowError, load_flow
from ivr.session import IvrMedia, IvrResult, IvrSession, TransferFailed

__all__ = [
    "SAMPLE_FLOW", "Flow", "FlowError", "IvrMedia", "IvrResult", "IvrSession", "TransferFailed", "load_flow",
]
