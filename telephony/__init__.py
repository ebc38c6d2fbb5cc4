"""Telephony edge: a pjsua2 SIP endpoint whose calls yield AudioFrames and DtmfDigits.

Imports only ``speech`` (frames, events, ports) from the project; its settings are ``telephony.settings``.
"""

from telephony.endpoint import SipEndpoint
from telephony.items import CallFailed, EndpointError, HoldChanged, LegEnded
from telephony.leg import CallLeg

__all__ = ["CallFailed", "CallLeg", "EndpointError", "HoldChanged", "LegEnded", "SipEndpoint"]
