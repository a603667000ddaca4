"""Dates in a question, from a fixed grammar computed with Python's own :mod:`datetime` (no
dependency, the same answer on every machine)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from transforms.ask.vocabulary import NUMBER_WORDS, UNITS, AskError


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise AskError(f"{text!r} is not a date: write dates as YYYY-MM-DD, e.g. 2024-01-31") from None


def _start_of_day(value: date) -> datetime:
    return datetime.combine(value, time.min, tzinfo=timezone.utc)


_DATE = r"(\d{4}-\d{2}-\d{2})"
_NUMBER = r"(\d+|" + "|".join(NUMBER_WORDS) + r")"
_UNIT = r"(minute|hour|day|week|month|year)s?"


def _dates(text: str, now: datetime) -> tuple[str, datetime | None, datetime | None, str] | None:
    """The first date phrase in ``text``: (matched text, start, end, label); Python's datetime only."""
    today = now.date()
    week_start = today - timedelta(days=today.weekday())
    month_start = today.replace(day=1)
    fixed = {
        "today": (_start_of_day(today), None), "yesterday": (_start_of_day(today - timedelta(days=1)),
                                                             _start_of_day(today) - timedelta(microseconds=1)),
        "this week": (_start_of_day(week_start), None),
        "this month": (_start_of_day(month_start), None),
        "this year": (_start_of_day(today.replace(month=1, day=1)), None),
    }
    patterns: list[tuple[str, Any]] = [
        (rf"\b(?:between|from)\s+{_DATE}\s+(?:and|to|until)\s+{_DATE}\b",
         lambda m: (_start_of_day(_day(m[1])), _start_of_day(_day(m[2]) + timedelta(days=1)) - timedelta(microseconds=1),
                    f"{m[1]} to {m[2]}")),
        (rf"\b(?:since|after)\s+{_DATE}\b", lambda m: (_start_of_day(_day(m[1])), None, f"since {m[1]}")),
        (rf"\bbefore\s+{_DATE}\b", lambda m: (None, _start_of_day(_day(m[1])) - timedelta(microseconds=1),
                                             f"before {m[1]}")),
        (rf"\b(?:on\s+)?{_DATE}\b", lambda m: (_start_of_day(_day(m[1])),
                                              _start_of_day(_day(m[1]) + timedelta(days=1)) - timedelta(microseconds=1),
                                              f"on {m[1]}")),
        (rf"\b(?:(?:in|during|within|over)\s+)?(?:the\s+)?(?:last|past|previous)\s+{_NUMBER}\s+{_UNIT}\b",
         lambda m: _ago(now, m[1], m[2])),
        (rf"\b{_NUMBER}\s+{_UNIT}\s+ago\b", lambda m: _ago(now, m[1], m[2])),
        (rf"\b(?:(?:in|during|within|over)\s+)?(?:the\s+)?(?:last|past)\s+{_UNIT}\b",
         lambda m: _ago(now, "1", m[1])),
        (r"\b(?:" + "|".join(re.escape(k) for k in fixed) + r")\b",
         lambda m: (*fixed[m[0]], m[0])),
    ]
    for pattern, build in patterns:
        match = re.search(pattern, text)
        if match:
            start, end, label = build(match)
            return match[0], start, end, label
    return None


def _ago(now: datetime, number: str, unit: str) -> tuple[datetime, None, str]:
    count = int(number) if number.isdigit() else NUMBER_WORDS[number]
    if count <= 0 or count > 100_000:
        raise AskError(f"'{number} {unit}s' is not a period I can use: give a positive number")
    plural = unit if count == 1 else unit + "s"
    return now - UNITS[unit] * count, None, f"last {count} {plural}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
