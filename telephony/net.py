"""Loopback ports for endpoints and tests: ``speech.ports`` holds the one implementation."""

from __future__ import annotations

from speech.ports import consecutive_free_ports, free_port

__all__ = ["consecutive_free_ports", "free_port"]
