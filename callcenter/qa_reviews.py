"""The console's QA seam over the CRM store (``live.console.qa.QaReviews``): scorecards with
reviewers' overrides applied, and calibration. Lives in the composition root: it knows both
``summaries`` (the store) and ``qa`` (applying overrides, calibrating)."""

from __future__ import annotations

from typing import Any

from qa.calibration import calibrate, calibration_csv
from qa.scorecard import apply_overrides
from summaries.store import CrmStore


class StoreReviews:
    def __init__(self, store: CrmStore) -> None:
        self.store = store

    @classmethod
    def open(cls, url: str) -> StoreReviews:
        store = CrmStore(url)
        store.start()
        return cls(store)

    def scorecards(self, call_id: str) -> list[dict[str, Any]]:
        history = self.store.list_overrides(call_id)
        out = []
        for card in self.store.get_scorecards(call_id):
            mine = [o for o in history if o["form_id"] == card["form_id"]]
            latest = {o["question_id"]: o["answer"] for o in mine}  # oldest first: the last wins
            out.append({**apply_overrides(card, latest), "history": mine})
        return out

    def override(self, call_id: str, form_id: str, question_id: str, answer: str, *,
                 reviewer: str, reason: str) -> dict[str, Any]:
        self.store.add_override(call_id, form_id, question_id, answer, reviewer=reviewer, reason=reason)
        return next(c for c in self.scorecards(call_id) if c["form_id"] == form_id)

    def calibration(self, form_id: str | None) -> dict[str, Any]:
        return calibrate(self.store.calibration_rows(form_id))

    def calibration_csv(self, form_id: str | None) -> str:
        return calibration_csv(self.calibration(form_id))

    def close(self) -> None:
        self.store.stop()
