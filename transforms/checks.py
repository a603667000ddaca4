"""Invariants of the day tables, computed independently of the code that builds them."""

from __future__ import annotations

from datetime import date

import msgspec
import polars as pl

from transforms import jsontext
from transforms.changes import CHANGE_KEYS, MASKED_JSON, MaskRules, explode_changes
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


class _PayloadDetail(msgspec.Struct, gc=False):
    detail: msgspec.Raw = jsontext.ABSENT


class _ChangeList(msgspec.Struct, gc=False):
    changes: list[msgspec.Raw] | None = None


_RawChangeList = msgspec.defstruct("_RawChangeList", [("changes", msgspec.Raw, jsontext.ABSENT)], gc=False)
_PAYLOAD_DETAIL = jsontext.decoders(_PayloadDetail)
_CHANGE_LIST = jsontext.decoders(_ChangeList)
_RAW_CHANGE_LIST = msgspec.json.Decoder(_RawChangeList)


#: Raw events read at a time by :func:`expected_change_rows` (bounded memory: a year of days at once
#: held every payload and its decoded detail).
CHECK_BATCH_ROWS = 100_000


def expected_change_rows(lake: Lake, days: list[date]) -> int:
    """Sum of len(detail.changes) over the raw payloads of the given days (an array's length; a
    ``changes`` that is not an array counts 0). Read a batch of days at a time."""
    from transforms.refresh import day_batches

    return sum(_change_rows(lake, batch) for batch in day_batches(lake, ACTIVITY_RAW, days, CHECK_BATCH_ROWS))


def _change_rows(lake: Lake, days: list[date]) -> int:
    raw = lake.read_days(ACTIVITY_RAW, days, columns=["payload"])
    if raw is None or raw.height == 0:
        return 0
    payloads, _, _ = jsontext.decode_many(raw["payload"], _PAYLOAD_DETAIL)
    details = [bytes(p.detail).decode() for p in payloads
               if p is not None and jsontext.raw_kind(bytes(p.detail)) == "object"]
    lists, _, _ = jsontext.decode_many(pl.Series(details, dtype=pl.String), _CHANGE_LIST, _RAW_CHANGE_LIST)
    total = 0
    for item in lists:
        if isinstance(item, _ChangeList):
            total += len(item.changes or ())
        elif item is not None and jsontext.raw_kind(bytes(item.changes)) == "array":
            total += len(msgspec.json.decode(bytes(item.changes), type=list[msgspec.Raw]))
    return total


def may_name_masked_field(rules: MaskRules, column: str = "detail") -> pl.Expr:
    """False only where the JSON text ``column`` cannot hold a change of a field ``rules`` mask: an ASCII
    text without escapes that does not contain any masked field name (ASCII case aside). A field name
    is in the text as it is unless escaped (``\\``) or not ASCII, and those texts are always kept."""
    names = sorted({entry.split(".", 1)[-1].lower() for entry in rules.entries})
    if not names:
        return pl.lit(False)
    text = pl.col(column)
    return text.str.contains(r"[^\x00-\x7F]|\\") | text.str.contains_any(names, ascii_case_insensitive=True)


def unmasked_secrets(lake: Lake, days: list[date], rules: MaskRules) -> dict[str, int]:
    """Rows where a masked field still shows a value, in activity_changes and in activity_log.detail."""
    counts = {"activity_changes": 0, "activity_log": 0}
    changes = lake.read_days(ACTIVITY_CHANGES, days, columns=["scope", "field", "before", "after"])
    if changes is not None and changes.height:
        leaks = changes.filter(rules.expression() & ((pl.col("before") != MASKED_JSON) | (pl.col("after") != MASKED_JSON)))
        counts["activity_changes"] = leaks.height
    log = lake.read_days(ACTIVITY_LOG, days, columns=[*CHANGE_KEYS, "detail"])
    if log is not None and log.height:
        log = log.filter(may_name_masked_field(rules))
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
