"""Reading ``activity_log`` with filters: partition bounds first, then one Polars expression."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone

import polars as pl

from transforms.lake import ACTIVITY_LOG, Lake

ORDER = ["created_at", "id"]  # newest first: created_at desc, id desc (stable when timestamps tie)


class FilterError(ValueError):
    """A filter value is invalid; the message names the field."""


def _as_start(value: date | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return _utc(value)
    return datetime.combine(value, time.min, tzinfo=timezone.utc)


def _as_end(value: date | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return _utc(value)
    return datetime.combine(value, time.max, tzinfo=timezone.utc)  # an end date includes its whole day


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def parse_moment(text: str, field_name: str) -> date | datetime:
    """``2024-01-15`` (a whole day) or an ISO-8601 timestamp (UTC unless it says otherwise)."""
    text = text.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"{field_name}: {text!r} is not a date (2024-01-15) or ISO-8601 timestamp") from None


@dataclass(frozen=True)
class BasicFilter:
    """Filters of ``activitylog query``: every set field must match (lists match any element)."""

    start: date | datetime | None = None
    end: date | datetime | None = None
    scopes: list[str] = field(default_factory=list)
    activities: list[str] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)  # actor uuid or email
    team_ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        start, end = _as_start(self.start), _as_end(self.end)
        if start and end and end < start:
            raise FilterError(f"end: {self.end} is before start {self.start}")

    def day_bounds(self) -> tuple[date | None, date | None]:
        start, end = _as_start(self.start), _as_end(self.end)
        return (start.date() if start else None, end.date() if end else None)

    def expression(self) -> pl.Expr:
        conditions: list[pl.Expr] = []
        low, high = self.day_bounds()
        if low:  # on the partition column: lets the Delta scan skip whole days
            conditions.append(pl.col("day") >= low)
        if high:
            conditions.append(pl.col("day") <= high)
        if self.start is not None:
            conditions.append(pl.col("created_at") >= _as_start(self.start))
        if self.end is not None:
            conditions.append(pl.col("created_at") <= _as_end(self.end))
        if self.scopes:
            conditions.append(pl.col("scope").is_in(self.scopes))
        if self.activities:
            conditions.append(pl.col("activity").is_in(self.activities))
        if self.item_ids:
            conditions.append(pl.col("item_id").is_in(self.item_ids))
        if self.users:
            lowered = [u.lower() for u in self.users]
            conditions.append(
                pl.col("actor_uuid").is_in(self.users) | pl.col("actor_email").str.to_lowercase().is_in(lowered)
            )
        if self.team_ids:
            conditions.append(pl.col("team_id").is_in(self.team_ids))
        return pl.all_horizontal(conditions) if conditions else pl.lit(True)


def query(lake: Lake, activity_filter: BasicFilter, *, limit: int | None = None) -> pl.LazyFrame | None:
    """Matching rows of ``activity_log``, newest first; None when the table does not exist yet."""
    frame = lake.scan(ACTIVITY_LOG)
    if frame is None:
        return None
    frame = frame.filter(activity_filter.expression()).sort(ORDER, descending=True)
    return frame.head(limit) if limit else frame
