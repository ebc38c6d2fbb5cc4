"""The summary's part about knowledge suggestions: which articles the agent marked, and how."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from speech.events import AssistFeedback, Event
from summaries.summary import ArticleNote


def article_notes(evs: Sequence[Event]) -> tuple[ArticleNote, ...]:
    """One note per marked article, in the order of the events (the feedback store gives them
    in the order of each article's last mark: a later mark replaces an earlier one)."""
    notes: dict[str, ArticleNote] = {}
    for e in evs:
        if isinstance(e, AssistFeedback) and e.article_id:
            notes[e.article_id] = ArticleNote(e.article_id, e.title, e.helpful, round(e.t, 2), e.agent_id)
    return tuple(notes.values())


def article_lines(summary: dict[str, Any]) -> list[str]:
    """``article X used`` lines for the terminal and the call report."""
    out = []
    for note in summary.get("articles") or ():
        if isinstance(note, dict):
            what = "used" if note.get("helpful") else "not helpful"
            title = f" ({note['title']})" if note.get("title") else ""
            out.append(f"article {note.get('article_id')}{title} {what}")
    return out
