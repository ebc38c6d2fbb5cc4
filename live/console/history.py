"""The call-history seam: the console searches past calls through this Protocol.

The lead's wiring passes an adapter over the CRM store; ``live`` never imports it.
"""

from __future__ import annotations

from typing import Any, Protocol


class CallHistory(Protocol):
    """Search and fetch ended calls. Dates are ISO 8601 strings (``YYYY-MM-DD`` or full)."""

    def search(
        self,
        q: str | None,
        caller: str | None,
        date_from: str | None,
        date_to: str | None,
        tone: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Calls matching all given filters, newest first. Each dict has at least ``call_id``
        and whatever summary fields the store keeps (``caller``, ``started_at``, ``tone``,
        ``reason``...)."""
        ...

    def get(self, call_id: str) -> dict[str, Any] | None:
        """``{"call_id", "summary": {...}, "transcript": [...], "events": [event dicts]}`` or
        None when unknown."""
        ...


class InMemoryHistory:
    """A :class:`CallHistory` over a list of dicts: the test seam and a reference for adapters."""

    def __init__(self, calls: list[dict[str, Any]] | None = None) -> None:
        self.calls: dict[str, dict[str, Any]] = {c["call_id"]: c for c in calls or []}

    def add(self, call: dict[str, Any]) -> None:
        self.calls[call["call_id"]] = call

    def search(
        self,
        q: str | None,
        caller: str | None,
        date_from: str | None,
        date_to: str | None,
        tone: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        out = []
        for call in self.calls.values():
            summary = call.get("summary", {})
            started = str(call.get("started_at", ""))
            text = " ".join(
                [str(v) for v in summary.values()]
                + [str(t.get("text", "")) for t in call.get("transcript", [])]
            ).lower()
            if q and q.lower() not in text:
                continue
            if caller and caller not in str(call.get("caller", "")):
                continue
            if date_from and started[: len(date_from)] < date_from:
                continue
            if date_to and started[: len(date_to)] > date_to:
                continue
            if tone and summary.get("tone") != tone:
                continue
            out.append({k: v for k, v in call.items() if k not in ("events", "transcript")})
        out.sort(key=lambda c: str(c.get("started_at", "")), reverse=True)
        return out[:limit]

    def get(self, call_id: str) -> dict[str, Any] | None:
        return self.calls.get(call_id)
