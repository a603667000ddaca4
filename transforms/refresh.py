"""Helpers shared by the day-partitioned assets and the CLI: day keys, ranges, previews."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Iterable

import polars as pl

if TYPE_CHECKING:
    from transforms.changes import MaskRules
    from transforms.lake import Lake

PREVIEW_COLUMNS = ["created_at", "scope", "activity", "item_id", "actor_email", "level", "summary"]


def day_keys(keys: Iterable[str]) -> list[date]:
    return sorted(date.fromisoformat(k) for k in keys)


def contiguous_ranges(days: Iterable[date]) -> list[tuple[date, date]]:
    """Group days into runs of consecutive days: [03, 07, 08] → [(03, 03), (07, 08)]."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and ranges[-1][1] + timedelta(days=1) == day:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def markdown_preview(frame: pl.DataFrame | None, rows: int = 5) -> str:
    if frame is None or frame.height == 0:
        return "_no rows_"
    columns = [c for c in PREVIEW_COLUMNS if c in frame.columns]
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   fmt_str_lengths=40, tbl_width_chars=200, tbl_cols=-1):
        return str(frame.select(columns).head(rows))


def refresh_events_day(lake: "Lake", day: date, rules: "MaskRules | None" = None) -> tuple[pl.DataFrame, int]:
    """Rebuild one day of ``activity_events`` from ``activity_raw`` (secret fields masked in
    ``detail``); returns (events, raw row count)."""
    from transforms.changes import MaskRules, mask_detail
    from transforms.lake import ACTIVITY_EVENTS, ACTIVITY_RAW
    from transforms.normalize import normalize_events

    raw = lake.read_days(ACTIVITY_RAW, [day])
    events = normalize_events(raw) if raw is not None and raw.height else pl.DataFrame()
    events = mask_detail(events, rules or MaskRules())
    lake.replace_day(ACTIVITY_EVENTS, day, events)
    return events, 0 if raw is None else raw.height


def refresh_changes_day(lake: "Lake", day: date, rules: "MaskRules | None" = None) -> tuple[pl.DataFrame, int, int]:
    """Rebuild one day of ``activity_changes`` from ``activity_events``.

    Returns (changes, events read, events without changes).
    """
    from transforms.changes import MaskRules, explode_changes
    from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_EVENTS

    events = lake.read_days(ACTIVITY_EVENTS, [day])
    if events is None or events.height == 0:
        lake.replace_day(ACTIVITY_CHANGES, day, pl.DataFrame())
        return pl.DataFrame(), 0, 0
    changes, without_changes = explode_changes(events, rules or MaskRules())
    lake.replace_day(ACTIVITY_CHANGES, day, changes)
    return changes, events.height, without_changes


def refresh_log_day(
    lake: "Lake", day: date, references: dict[str, pl.DataFrame] | None = None,
    templates: dict[str, str] | None = None,
) -> tuple[pl.DataFrame, int]:
    """Rebuild one day of ``activity_log`` from ``activity_events`` and ``activity_changes``;
    returns (rows, event row count)."""
    from transforms.enrich import build_activity_log
    from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_EVENTS, ACTIVITY_LOG

    events = lake.read_days(ACTIVITY_EVENTS, [day])
    if events is None or events.height == 0:
        lake.replace_day(ACTIVITY_LOG, day, pl.DataFrame())
        return pl.DataFrame(), 0
    changes = lake.read_days(ACTIVITY_CHANGES, [day])
    if changes is None:
        from transforms.changes import explode_changes

        changes, _ = explode_changes(events.head(0))
    log = build_activity_log(events, changes, references, templates)
    lake.replace_day(ACTIVITY_LOG, day, log)
    return log, events.height
