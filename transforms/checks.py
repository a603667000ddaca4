"""Invariants of the day tables, computed independently of the code that builds them."""

from __future__ import annotations

from datetime import date

import polars as pl

from transforms.ndjson import ndjson_buffer

from transforms.changes import MASKED_JSON, MaskRules, explode_changes
from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_LOG, ACTIVITY_RAW, Lake


def _ids(lake: Lake, table: str, days: list[date]) -> pl.Series:
    frame = lake.read_days(table, days, columns=["id"])
    return pl.Series("id", [], dtype=pl.String) if frame is None else frame["id"]


def raw_events_once_in_log(lake: Lake, days: list[date]) -> dict[str, int]:
    """Counts for "every raw event appears exactly once in activity_log" over the given days."""
    raw, log = _ids(lake, ACTIVITY_RAW, days), _ids(lake, ACTIVITY_LOG, days)
    return {
        "raw_events": raw.len(),
        "log_rows": log.len(),
        "missing_from_log": int((~raw.is_in(log.implode())).sum()),
        "repeated_in_log": log.len() - log.n_unique(),
        "not_in_raw": int((~log.is_in(raw.implode())).sum()),
    }


def expected_change_rows(lake: Lake, days: list[date]) -> int:
    """Sum of len(detail.changes) over the raw payloads of the given days."""
    raw = lake.read_days(ACTIVITY_RAW, days, columns=["payload"])
    if raw is None or raw.height == 0:
        return 0
    detail = pl.read_ndjson(ndjson_buffer(raw["payload"]), schema={"detail": pl.Struct({"changes": pl.List(pl.Null)})},
                            ignore_errors=True)
    return int(detail["detail"].struct.field("changes").list.len().sum() or 0)


def unmasked_secrets(lake: Lake, days: list[date], rules: MaskRules) -> dict[str, int]:
    """Rows where a masked field still shows a value, in activity_changes and in activity_log.detail."""
    counts = {"activity_changes": 0, "activity_log": 0}
    changes = lake.read_days(ACTIVITY_CHANGES, days, columns=["scope", "field", "before", "after"])
    if changes is not None and changes.height:
        leaks = changes.filter(rules.expression() & ((pl.col("before") != MASKED_JSON) | (pl.col("after") != MASKED_JSON)))
        counts["activity_changes"] = leaks.height
    log = lake.read_days(ACTIVITY_LOG, days)
    if log is not None and log.height:
        reread, _ = explode_changes(log, MaskRules(entries=()))  # the log's own detail, unmasked read
        leaks = reread.filter(rules.expression() & ((pl.col("before") != MASKED_JSON) | (pl.col("after") != MASKED_JSON)))
        counts["activity_log"] = leaks.height
    return counts


def history_matches_log(lake: Lake, days: list[date]) -> dict[str, int]:
    """Counts for "activity_item_history holds exactly the log's events with an item id" over ``days``."""
    from transforms.history import ACTIVITY_ITEM_HISTORY

    log = lake.read_days(ACTIVITY_LOG, days, columns=["id", "item_id"])
    expected = pl.Series("id", [], dtype=pl.String) if log is None else log.filter(
        pl.col("item_id").is_not_null())["id"]
    table = lake.table(ACTIVITY_ITEM_HISTORY)
    held = pl.Series("id", [], dtype=pl.String)
    if table is not None and days:
        held = pl.scan_delta(table).filter(pl.col("day").is_in(sorted(set(days)))).select("id").collect()["id"]
    return {
        "log_rows_with_item": expected.len(),
        "history_rows": held.len(),
        "missing_from_history": int((~expected.is_in(held.implode())).sum()),
        "not_in_log": int((~held.is_in(expected.implode())).sum()),
    }
