"""What an export holds: its columns, its order, its day-by-day reading, and formula neutralisation.

Columns are PostHog's export fields plus ours (:data:`EXPORT_COLUMNS`); rows come in a stable order
(``created_at``, ``id``), one day partition at a time, so an export of any size never holds more than
a day of rows in memory.

Timestamps: one text form everywhere a timestamp leaves the lake as text (CSV and JSONL exports,
``activitylog query``/``history --format csv|jsonl``): ISO 8601 in UTC with microseconds and ``Z``,
``2024-01-15T10:30:00.000000Z`` (:data:`TIMESTAMP_FORMAT`, :func:`format_timestamps`). XLSX cells hold
real Excel date-times instead (the writer formats them).

Formula injection (OWASP "CSV Injection"), per format:

- CSV: a text cell whose first visible character is ``=``, ``+``, ``-`` or ``@`` (or their full-width
  forms ``＝＋－＠``), after any run of spaces and invisible characters (NBSP, zero-width space and
  joiners, word joiner, BOM), or that starts with a tab, carriage return or line feed, gets a leading
  ``'`` so that spreadsheet programs show it as text. A program whose locale separates fields by
  ``;`` splits ``x;=1+1`` into ``x`` and the formula ``=1+1`` (quotes protect only a field they open),
  so a ``;`` followed by such a start gets a ``'`` after it too: ``x;'=1+1``. Every text field is
  quoted, a missing value is an empty field and an empty text ``""``.
- XLSX: cells hold the original text. They are inline strings, which no spreadsheet program evaluates
  (the writer never emits a formula cell).
- JSONL is data, not a spreadsheet, and keeps values exact.

Numbers and booleans are typed cells and need no escaping.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Iterator

import polars as pl

from transforms.durations import Duration
from transforms.filters import ActivityFilter
from transforms.lake import ACTIVITY_LOG, Lake

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"  # 2024-01-15T10:30:00.000000Z


def format_timestamps(frame: pl.DataFrame) -> pl.DataFrame:
    """Every datetime column as :data:`TIMESTAMP_FORMAT` text (dates and other columns unchanged)."""
    columns = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            column = pl.col(name) if dtype.time_zone else pl.col(name).dt.replace_time_zone("UTC")
            columns.append(column.dt.convert_time_zone("UTC").dt.strftime(TIMESTAMP_FORMAT).alias(name))
    return frame.with_columns(columns) if columns else frame


# (output column, expression over activity_log); created_at stays a datetime here: CSV and JSONL
# write it as TIMESTAMP_FORMAT text, XLSX as an Excel date-time.
_COLUMNS: list[tuple[str, pl.Expr]] = [
    ("id", pl.col("id")),
    ("organization_id", pl.col("organization_id")),
    ("project_id", pl.col("team_id")),
    ("user_first_name", pl.col("actor_first_name")),
    ("user_last_name", pl.col("actor_last_name")),
    ("user_email", pl.col("actor_email")),
    ("activity", pl.col("activity")),
    ("scope", pl.col("scope")),
    ("item_id", pl.col("item_id")),
    ("detail", pl.col("detail")),
    ("client", pl.col("client")),
    ("ip_address", pl.col("ip_address")),
    ("created_at", pl.col("created_at")),
    ("summary", pl.col("summary")),
    ("level", pl.col("level")),
    ("was_impersonated", pl.col("was_impersonated")),
    ("is_system", pl.col("is_system")),
    ("user_uuid", pl.col("actor_uuid")),
    ("user_name", pl.col("actor_name")),
    ("project_name", pl.col("project_name")),
    ("organization_name", pl.col("organization_name")),
]
EXPORT_COLUMNS = [name for name, _ in _COLUMNS]
ORDER = ["created_at", "id"]
# Spaces and characters that show nothing, which a spreadsheet may skip before reading a formula.
_INVISIBLE = r"\x20\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff"
_SIGNS = r"=+\-@\uff1d\uff0b\uff0d\uff20"
FORMULA_START = rf"^(?:[\t\r\n]|[{_INVISIBLE}]*[{_SIGNS}])"
_FORMULA_AFTER_SEMICOLON = rf";([{_INVISIBLE}]*[{_SIGNS}])"


def neutralise_formulas(frame: pl.DataFrame | pl.LazyFrame):
    """Prefix ``'`` to every text cell (and every ``;``-separated piece of one) that a spreadsheet
    would read as a formula."""
    text = [name for name, dtype in frame.collect_schema().items() if dtype == pl.String]
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(FORMULA_START)).then(pl.lit("'") + pl.col(name)).otherwise(pl.col(name))
        .str.replace_all(_FORMULA_AFTER_SEMICOLON, ";'${1}")
        .alias(name) for name in text)


def export_days(lake: Lake, activity_filter: ActivityFilter, *, read_window: Duration | None = None,
                now: datetime | None = None) -> list[date]:
    """The day partitions of ``activity_log`` inside the filter's bounds, oldest first."""
    low, high = activity_filter.day_bounds(read_window=read_window, now=now)
    return [d for d in lake.days(ACTIVITY_LOG) if (low is None or d >= low) and (high is None or d <= high)]


def export_rows(lake: Lake, activity_filter: ActivityFilter, days: list[date], *,
                read_window: Duration | None = None, now: datetime | None = None,
                team_organizations=None, where: pl.Expr | None = None) -> pl.DataFrame:
    """The export rows of some days: matching rows, export columns, stable order. ``where``: one
    more row condition (the read API's access rule for the key that asked)."""
    frame = lake.scan(ACTIVITY_LOG)
    in_days = pl.col("day") == days[0] if len(days) == 1 else pl.col("day").is_in(days)
    condition = in_days & activity_filter.expression(read_window=read_window, now=now,
                                                     team_organizations=team_organizations)
    if where is not None:
        condition = condition & where
    return (frame.filter(condition).sort(ORDER)
            .select(expression.alias(name) for name, expression in _COLUMNS).collect())


BATCH_ROWS = 200_000  # rows (before filtering) read at once: one Delta scan per batch of days


def iter_export(lake: Lake, activity_filter: ActivityFilter, *, read_window: Duration | None = None,
                now: datetime | None = None, batch_rows: int = BATCH_ROWS, where: pl.Expr | None = None,
                ) -> Iterator[tuple[dict[date, int], pl.DataFrame]]:
    """({day: rows}, rows) per batch of consecutive days (sized from Delta statistics), oldest first;
    batches without matches are skipped."""
    from transforms.query import team_organizations
    from transforms.refresh import day_batches

    organizations = None
    if activity_filter.team_ids and activity_filter.include_organization:
        organizations = team_organizations(lake, activity_filter.team_ids, lake.scan(ACTIVITY_LOG))
    days = export_days(lake, activity_filter, read_window=read_window, now=now)
    for batch in day_batches(lake, ACTIVITY_LOG, days, max_rows=batch_rows):
        rows = export_rows(lake, activity_filter, batch, read_window=read_window, now=now,
                           team_organizations=organizations, where=where)
        if rows.height:
            per_day = rows.group_by(pl.col("created_at").dt.convert_time_zone("UTC").dt.date().alias("day")
                                    ).len().sort("day")
            yield {d: n for d, n in per_day.iter_rows()}, rows


def count_rows(lake: Lake, activity_filter: ActivityFilter, *, read_window: Duration | None = None,
               now: datetime | None = None) -> int:
    from transforms.query import query

    frame = query(lake, activity_filter, read_window=read_window, now=now)
    return 0 if frame is None else frame.select(pl.len()).collect().item()
