"""The console's call history over the CRM store (``live.console.history.CallHistory``).

Lives in the wiring package so that ``live`` never imports ``summaries``: the console only knows
the protocol, this adapter knows both sides.
"""

from __future__ import annotations

from typing import Any

from summaries.store import CrmStore, StoreError


class StoreHistory:
    def __init__(self, url: str) -> None:
        self.store = CrmStore(url)
        self.store.start()

    def search(
        self,
        q: str | None,
        caller: str | None,
        date_from: str | None,
        date_to: str | None,
        tone: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        try:
            rows = self.store.search(text=q or None, caller=caller or None, date_from=date_from or None,
                                     date_to=date_to or None, tone=tone or None, limit=limit)
        except (StoreError, ValueError):
            return []
        out: list[dict[str, Any]] = []
        for row in rows:
            d = row.to_dict()
            d["summary"] = {"reason": row.reason, "resolution": row.resolution, "outcome": row.resolution,
                            "tone": row.tone_end}
            d["tone"] = row.tone_end
            out.append(d)
        return out

    def get(self, call_id: str) -> dict[str, Any] | None:
        detail = self.store.get_call(call_id)
        if detail is None:
            return None
        data = detail.to_dict()
        data["summary"] = data.get("summary") or {}
        return data

    def close(self) -> None:
        self.store.stop()
