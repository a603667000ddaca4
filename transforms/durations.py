"""Durations as operators write them: ``12h``, ``7d``, ``2w``, ``2mo``, ``5y``, ``none``/``forever``.

Shared by the configuration file (retention, windows, ages) and the filter language's read window.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from transforms.values import kind_of


class DurationError(ValueError):
    """A duration cannot be used where it was given; the message says where and why."""


_DURATION = re.compile(r"^\s*(\d+)\s*(h|d|w|mo|y)\s*$", re.IGNORECASE)
_FOREVER = ("none", "forever")
_DURATION_HINT = "a duration like 12h, 7d, 2w, 2mo or 5y (or none/forever)"


@dataclass(frozen=True)
class Duration:
    """A span of calendar months plus days plus hours.

    Months are kept apart from days so that subtracting ``1mo`` from March 31 gives the last day of
    February, not "30 days earlier".
    """

    months: int = 0
    days: int = 0
    hours: int = 0

    def before(self, moment: datetime) -> datetime:
        """``moment`` minus this duration: months first (day clamped to the month's end), then days and
        hours. Saturates at ``datetime.min`` (same tzinfo) rather than overflowing."""
        try:
            return _add_months(moment, -self.months) - timedelta(days=self.days, hours=self.hours)
        except (OverflowError, ValueError):
            return datetime.min.replace(tzinfo=getattr(moment, "tzinfo", None))

    def after(self, moment: datetime) -> datetime:
        """``moment`` plus this duration (months first); saturates at ``datetime.max``."""
        try:
            return _add_months(moment, self.months) + timedelta(days=self.days, hours=self.hours)
        except (OverflowError, ValueError):
            return datetime.max.replace(tzinfo=getattr(moment, "tzinfo", None))

    @property
    def is_calendar(self) -> bool:
        """True when it has months (or years), so it has no fixed length."""
        return self.months != 0

    def to_timedelta(self, where: str = "duration") -> timedelta:
        """The fixed length, for settings where calendar months make no sense (``max_event_age``)."""
        if self.months:
            raise DurationError(f"{where}: {self} has no fixed length: use hours, days or weeks here")
        return timedelta(days=self.days, hours=self.hours)

    def __str__(self) -> str:
        parts = []
        years, months = divmod(self.months, 12)
        if years:
            parts.append(f"{years}y")
        if months:
            parts.append(f"{months}mo")
        if self.days:
            parts.append(f"{self.days}d")
        if self.hours:
            parts.append(f"{self.hours}h")
        return "".join(parts) or "0d"


def _add_months(moment: datetime, months: int) -> datetime:
    if not months:
        return moment
    index = moment.year * 12 + (moment.month - 1) + months
    year, month0 = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise OverflowError("year out of range")
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


def duration_or_problem(text: Any) -> tuple[Duration | None, str | None]:
    if not isinstance(text, str):
        return None, f"must be {_DURATION_HINT}, not {kind_of(text)}"
    if text.strip().lower() in _FOREVER:
        return None, None
    match = _DURATION.match(text)
    if not match:
        if re.fullmatch(r"\s*\d+\s*m\s*", text, re.IGNORECASE):
            return None, f"{text!r} is ambiguous: write {text.strip()[:-1].strip()}mo for months"
        return None, f"{text!r} is not {_DURATION_HINT}"
    amount, unit = int(match.group(1)), match.group(2).lower()
    duration = {
        "h": Duration(hours=amount),
        "d": Duration(days=amount),
        "w": Duration(days=7 * amount),
        "mo": Duration(months=amount),
        "y": Duration(months=12 * amount),
    }[unit]
    return duration, None



def parse_duration(text: Any, where: str) -> Duration | None:
    """``7d`` → :class:`Duration`, ``none``/``forever`` → ``None``; else :class:`DurationError` naming ``where``."""
    duration, problem = duration_or_problem(text)
    if problem:
        raise DurationError(f"{where}: {problem}")
    return duration
