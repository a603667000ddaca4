"""Helpers shared by the day-partitioned assets and the CLI: day keys, ranges, previews."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Iterable

import polars as pl

if TYPE_CHECKING:
    from transforms.changes import MaskRules
    from transforms.lake import Lake

# No personal data (actor email, names, IP, nor item_id, which is a user's uuid for User and membership
# events): previews are kept in DAGSTER_HOME's event logs, which erasure does not rewrite.
PREVIEW_COLUMNS = ["created_at", "team_id", "scope", "activity", "level"]


def day_keys(keys: Iterable[str]) -> list[date]:
    return sorted(date.fromisoformat(k) for k in keys)


# A backfill refreshes at most this many days per run (the assets' BackfillPolicy, `activitylog backfill`):
# several runs can then work at once, and a failed run repeats at most a month.
BACKFILL_DAYS_PER_RUN = 31


def contiguous_ranges(days: Iterable[date], max_days: int | None = None) -> list[tuple[date, date]]:
    """Group days into runs of consecutive days: [03, 07, 08] → [(03, 03), (07, 08)]; with ``max_days``,
    no run is longer than that ([01 … 10], 4 → [(01, 04), (05, 08), (09, 10)])."""
    if max_days is not None and max_days < 1:
        raise ValueError(f"max_days must be at least 1, not {max_days}")
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and ranges[-1][1] + timedelta(days=1) == day and (
                max_days is None or (day - ranges[-1][0]).days < max_days):
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


MAX_BATCH_ROWS = 250_000  # rows read per batch of days: bounds memory, amortizes Delta commits


def day_batches(lake: "Lake", table: str, days: Iterable[date], max_rows: int = MAX_BATCH_ROWS) -> list[list[date]]:
    """Consecutive groups of days holding at most ``max_rows`` rows of ``table`` (one day at least),
    sized from the Delta log's per-file record counts, without reading data."""
    counts = lake.day_row_counts(table)
    batches: list[list[date]] = []
    rows = 0
    for day in sorted(set(days)):
        day_rows = counts.get(day, 0)
        if batches and rows + day_rows <= max_rows:
            batches[-1].append(day)
            rows += day_rows
        else:
            batches.append([day])
            rows = day_rows
    return batches


def _per_day(frame: pl.DataFrame, days: list[date], name: str) -> pl.DataFrame:
    counts = frame.group_by("day").len(name=name) if frame.height else pl.DataFrame(
        schema={"day": pl.Date, name: pl.UInt32})
    return pl.DataFrame({"day": days}, schema={"day": pl.Date}).join(counts, on="day", how="left").with_columns(
        pl.col(name).fill_null(0).cast(pl.Int64))


def refresh_events(lake: "Lake", days: list[date], rules: "MaskRules | None" = None) -> pl.DataFrame:
    """Rebuild ``activity_events`` for ``days`` from ``activity_raw`` (secret fields masked in
    ``detail``). Returns per day: ``day, raw_rows, events, repeated_ids``."""
    from transforms.changes import MaskRules, mask_detail
    from transforms.lake import ACTIVITY_EVENTS, ACTIVITY_RAW
    from transforms.normalize import normalize_events

    from transforms.recovery import check_poison

    raw = lake.read_days(ACTIVITY_RAW, days)
    if raw is not None:
        check_poison(raw)
    events = normalize_events(raw) if raw is not None and raw.height else pl.DataFrame()
    events = mask_detail(events, rules or MaskRules())
    lake.replace_days(ACTIVITY_EVENTS, days, events)
    stats = _per_day(raw if raw is not None else pl.DataFrame(), days, "raw_rows").join(
        _per_day(events, days, "events"), on="day")
    repeated = (events.group_by("day").agg((pl.len() - pl.col("id").n_unique()).alias("repeated_ids"))
                if events.height else pl.DataFrame(schema={"day": pl.Date, "repeated_ids": pl.UInt32}))
    return stats.join(repeated, on="day", how="left").with_columns(pl.col("repeated_ids").fill_null(0).cast(pl.Int64))


def refresh_changes(lake: "Lake", days: list[date], rules: "MaskRules | None" = None) -> pl.DataFrame:
    """Rebuild ``activity_changes`` for ``days`` from ``activity_events``.

    Returns per day: ``day, events, changes, events_without_changes, masked``.
    """
    from transforms.changes import MaskRules, explode_changes
    from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_EVENTS

    events = lake.read_days(ACTIVITY_EVENTS, days)
    if events is None or events.height == 0:
        lake.replace_days(ACTIVITY_CHANGES, days, pl.DataFrame())
        events, changes = pl.DataFrame(), pl.DataFrame()
    else:
        changes, _ = explode_changes(events, rules or MaskRules())
        lake.replace_days(ACTIVITY_CHANGES, days, changes)
    stats = _per_day(events, days, "events").join(_per_day(changes, days, "changes"), on="day")
    with_changes = _per_day(changes.unique("id") if changes.height else changes, days, "_with")
    masked = (changes.group_by("day").agg(pl.col("masked").sum().cast(pl.Int64).alias("masked"))
              if changes.height else pl.DataFrame(schema={"day": pl.Date, "masked": pl.Int64}))
    return (
        stats.join(with_changes, on="day")
        .with_columns((pl.col("events") - pl.col("_with")).alias("events_without_changes")).drop("_with")
        .join(masked, on="day", how="left").with_columns(pl.col("masked").fill_null(0))
    )


def refresh_log(
    lake: "Lake", days: list[date], references: dict[str, pl.DataFrame] | None = None,
    templates: dict[str, str] | None = None,
) -> pl.DataFrame:
    """Rebuild ``activity_log`` for ``days`` from ``activity_events`` and ``activity_changes``, and
    the resource history (``activity_item_history``) for the same days.

    Returns per day: ``day, events, rows``.
    """
    from transforms.changes import explode_changes
    from transforms.enrich import build_activity_log
    from transforms.history import update_item_history
    from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_EVENTS, ACTIVITY_LOG

    events = lake.read_days(ACTIVITY_EVENTS, days)
    if events is None or events.height == 0:
        lake.replace_days(ACTIVITY_LOG, days, pl.DataFrame())
        events, log, changes = pl.DataFrame(), pl.DataFrame(), pl.DataFrame()
    else:
        changes = lake.read_days(ACTIVITY_CHANGES, days)
        if changes is None:
            changes, _ = explode_changes(events.head(0))
        log = build_activity_log(events, changes, references, templates)
        lake.replace_days(ACTIVITY_LOG, days, log)
    update_item_history(lake, days, log, changes)
    return _per_day(events, days, "events").join(_per_day(log, days, "rows"), on="day")


# Probes for failure isolation (transforms.recovery.run_isolated): a stage's transformation of some of
# a day's input rows, without writing anything; bisection over a failing day's rows finds the event.

def stage_inputs(lake: "Lake", stage: str):
    """``day → the stage's input rows`` for bisection."""
    from transforms.lake import ACTIVITY_EVENTS, ACTIVITY_RAW
    from transforms.recovery import EVENTS_STAGE

    table = ACTIVITY_RAW if stage == EVENTS_STAGE else ACTIVITY_EVENTS
    return lambda day: lake.read_days(table, [day])


def stage_probe(lake: "Lake", stage: str, rules: "MaskRules | None" = None,
                references: dict[str, pl.DataFrame] | None = None):
    """``rows → the stage's transformation of them`` (raises where the stage would)."""
    from transforms.changes import MaskRules, explode_changes, mask_detail
    from transforms.enrich import build_activity_log
    from transforms.normalize import normalize_events
    from transforms.recovery import CHANGES_STAGE, EVENTS_STAGE, check_poison

    rules = rules or MaskRules()
    if stage == EVENTS_STAGE:
        def probe(rows: pl.DataFrame):
            check_poison(rows)
            return mask_detail(normalize_events(rows), rules)
    elif stage == CHANGES_STAGE:
        def probe(rows: pl.DataFrame):
            return explode_changes(rows, rules)
    else:
        def probe(rows: pl.DataFrame):
            changes, _ = explode_changes(rows, rules)
            return build_activity_log(rows, changes, references)
    return probe


def refresh_all(lake: "Lake", days: Iterable[date], rules: "MaskRules | None" = None,
                references: dict[str, pl.DataFrame] | None = None, *, run_id: str | None = None) -> list:
    """Rebuild events, changes and log for ``days`` in batches (what a refresh run does), recording in
    ``refresh_state`` what was built from which raw files. A day that fails is left as it was and
    returned (``transforms.recovery.DayFailure``); the other days are refreshed."""
    from transforms.lake import ACTIVITY_RAW
    from transforms.recovery import (CHANGES_STAGE, EVENTS_STAGE, LOG_STAGE, fingerprint_before, record_failed,
                                     record_refreshed, run_isolated)

    day_list = sorted(set(days))
    fingerprints = fingerprint_before(lake, day_list)
    failures: dict = {}
    for batch in day_batches(lake, ACTIVITY_RAW, day_list):
        for stage, step in ((EVENTS_STAGE, lambda b: refresh_events(lake, b, rules)),
                            (CHANGES_STAGE, lambda b: refresh_changes(lake, b, rules)),
                            (LOG_STAGE, lambda b: refresh_log(lake, b, references))):
            todo = [d for d in batch if d not in failures]
            if not todo:
                break
            _, failed = run_isolated(todo, step, stage, stage_inputs(lake, stage),
                                     stage_probe(lake, stage, rules, references))
            failures.update(failed)
    record_refreshed(lake, LOG_STAGE, {d: fp for d, fp in fingerprints.items() if d not in failures}, run_id)
    record_failed(lake, failures, run_id)
    return [failures[d] for d in sorted(failures)]
