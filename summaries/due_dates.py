"""Spoken due hints ("tomorrow morning", "by Friday", "within 48 hours") → a due date and time.

A promise heard in a call becomes a follow-up task; its ``due_hint`` is the words said
(``summaries.summary_rules.DUE_PATTERN``, or an LLM's phrase). ``resolve_due`` turns that into
the moment the task is overdue, counted from the call's start, so a list can flag it. Pure and
total: a hint it does not understand is ``None`` (no date), never a guess.

Conventions (the call's start is in the store's clock, naive UTC):
- a day ("today", "tomorrow", "on Friday", "in 3 days") is due at the end of that day (23:59:59);
- part of a day: morning by 12:00, afternoon by 17:00, evening and tonight by the end of the day
  (a part already past when the call started is the end of that day);
- hours are counted from the call's start ("within 48 hours" = start + 48 h);
- business days skip Saturday and Sunday; a week is 7 days;
- a weekday ("by Friday", "on Friday", "next Friday") is the first one after the call's day, or the
  call's own day for "by"/"on" when it is that weekday; "this week" / "end of the week" is that
  week's Friday, "next week" the next week's Friday; "end of the month" its last day, "next month"
  the next month's last day.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, time, timedelta

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
NUMBERS = {"one": 1, "a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "fifteen": 15, "twenty": 20, "twenty-four": 24,
           "thirty": 30, "forty": 40, "forty-eight": 48, "seventy-two": 72}
END_OF_DAY = time(23, 59, 59)
PART_OF_DAY = {"morning": time(12, 0), "afternoon": time(17, 0), "evening": END_OF_DAY, "tonight": END_OF_DAY}

_AMOUNT = re.compile(r"^(?:within|in)\s+(?:the\s+next\s+)?(?P<n>\d+|[a-z-]+)\s+(?P<business>business\s+|working\s+)?"
                     r"(?P<unit>hours?|days?|weeks?)$")


def resolve_due(hint: str | None, start: datetime) -> datetime | None:
    """The due moment of ``hint`` said on a call that started at ``start``; None if unknown."""
    text = " ".join((hint or "").lower().replace("'", "").split()).strip(" .,!")
    text = re.sub(r"\bforty eight\b", "forty-eight", re.sub(r"\bseventy two\b", "seventy-two", text))
    text = re.sub(r"\btwenty four\b", "twenty-four", text)
    if not text:
        return None
    day = start.date()

    def end_of(d: datetime | object) -> datetime:
        return datetime.combine(d, END_OF_DAY)  # type: ignore[arg-type]

    if text in ("today", "by today", "end of day", "end of the day", "by end of day", "by end of the day",
                "by the end of the day", "this evening", "tonight", "later today"):
        return end_of(day)
    if text in ("this morning", "this afternoon"):
        due = datetime.combine(day, PART_OF_DAY[text.split()[1]])
        return due if due > start else end_of(day)
    if text in ("tomorrow", "by tomorrow"):
        return end_of(day + timedelta(days=1))
    if text.startswith("tomorrow ") and text.split()[1] in PART_OF_DAY:
        return datetime.combine(day + timedelta(days=1), PART_OF_DAY[text.split()[1]])
    if text in ("this week", "by end of the week", "by end of week", "end of the week", "by the end of the week"):
        return end_of(max(day, day + timedelta(days=4 - day.weekday())))
    if text == "next week":
        return end_of(day + timedelta(days=7 + 4 - day.weekday()))
    if text in ("end of the month", "by end of the month", "by end of month", "by the end of the month"):
        return end_of(day.replace(day=calendar.monthrange(day.year, day.month)[1]))
    if text == "next month":
        year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
        return end_of(day.replace(year=year, month=month, day=calendar.monthrange(year, month)[1]))
    words = text.split()
    if len(words) == 2 and words[0] in ("by", "on", "next") and words[1] in WEEKDAYS:
        ahead = (WEEKDAYS.index(words[1]) - day.weekday()) % 7
        if ahead == 0 and words[0] == "next":
            ahead = 7
        return end_of(day + timedelta(days=ahead))
    if m := _AMOUNT.match(text):
        n = int(m["n"]) if m["n"].isdigit() else NUMBERS.get(m["n"])
        if n is None or n <= 0 or n > 366:
            return None
        unit = m["unit"].rstrip("s")
        if unit == "hour":
            return start + timedelta(hours=n)
        if unit == "week":
            return end_of(day + timedelta(weeks=n))
        if m["business"]:
            d = day
            left = n
            while left:
                d += timedelta(days=1)
                if d.weekday() < 5:
                    left -= 1
            return end_of(d)
        return end_of(day + timedelta(days=n))
    return None
