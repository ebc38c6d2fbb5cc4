"""The console's follow-up tasks over the CRM store (``live.console.tasks.FollowUpTasks``).

In the wiring package so that ``live`` never imports ``summaries``.
"""

from __future__ import annotations

from typing import Any

from summaries.api import tasks_csv
from summaries.store import CrmStore


class StoreTasks:
    def __init__(self, store: CrmStore) -> None:
        self.store = store

    def find(self, *, agent: str | None, status: str | None, overdue: bool | None,
             limit: int) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.store.list_tasks(status, limit=limit, agent=agent, overdue=overdue)]

    def get(self, task_id: int) -> dict[str, Any] | None:
        row = self.store.get_task(task_id)
        return row.to_dict() if row else None

    def set_done(self, task_id: int, done: bool) -> dict[str, Any] | None:
        row = self.store.set_task_done(task_id, done)
        return row.to_dict() if row else None

    def to_csv(self, rows: list[dict[str, Any]]) -> str:
        return tasks_csv(rows)
