"""Resource history without scanning the lake: the ``activity_item_history`` table.

``activity_log`` is laid out by day, which is right for "what happened in March" and wrong for "what
happened to flag 42": that flag's events are spread over every day it was touched, one file each.
``activity_item_history`` keeps the same events laid out by resource: partitioned by ``bucket`` (a stable
hash of scope and item id, :data:`BUCKETS` buckets), one row per event with its changes embedded. A
history reads one bucket (a few thousand rows), whatever the lake's size.

It is maintained with ``activity_log``: refreshing days replaces those days' rows here in one commit
(Delta file statistics on ``day`` limit the rewrite to the files holding them), and when a bucket has
gathered :data:`COMPACT_AFTER_FILES` files they are compacted into one.

    from transforms.history import item_history
    item_history(Lake.at("data/lake"), "FeatureFlag", "42").rows   # newest first, with its changes
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Iterable

import polars as pl
from deltalake.exceptions import CommitFailedError

from transforms.durations import Duration
from transforms.filters import FilterError, after_cursor, encode_cursor
from transforms.lake import ACTIVITY_LOG, Lake

ACTIVITY_ITEM_HISTORY = "activity_item_history"
BUCKETS = 64
COMPACT_AFTER_FILES = 8  # files per bucket before a compaction (one per refresh batch until then)
CHANGE_FIELDS = ["change_index", "change_type", "action", "field", "before", "after", "masked"]
CHANGES_DTYPE = pl.List(pl.Struct({
    "change_index": pl.Int32, "change_type": pl.String, "action": pl.String, "field": pl.String,
    "before": pl.String, "after": pl.String, "masked": pl.Boolean,
}))
# ``day`` early: Delta keeps statistics for the first columns, and the day rewrite prunes on them.
HISTORY_COLUMNS = [
    "bucket", "day", "scope", "item_id", "team_id", "organization_id", "level", "id", "created_at", "activity",
    "actor_type", "actor_uuid", "actor_email", "actor_name", "is_system", "was_impersonated", "resource_name",
    "detail_name", "changed_fields", "summary",
]


_BUCKET_PRIME = 1_000_003
_KNUTH = 2_654_435_761  # Knuth's multiplicative hash constant (2^32 / golden ratio)
_BUCKET_BITS = BUCKETS.bit_length() - 1  # BUCKETS is a power of two


def bucket_expression(scope: str | pl.Expr = "scope", item_id: str | pl.Expr = "item_id") -> pl.Expr:
    """The bucket of a resource: the last seven bytes of ``scope/item_id`` (UTF-8) as a big-endian
    integer, reduced modulo a prime, then Knuth's multiplicative hash (top bits of a 32-bit product).
    Sequential numeric ids spread evenly this way; every step fits in a signed 64-bit integer.

    Spelled out rather than ``hash()``: Polars' hash may change between versions, the layout may not.
    """
    key = pl.concat_str(pl.col(scope) if isinstance(scope, str) else scope, pl.lit("/"),
                        pl.col(item_id) if isinstance(item_id, str) else item_id)
    number = key.str.encode("hex").str.tail(14).str.to_integer(base=16, dtype=pl.Int64) % _BUCKET_PRIME
    return ((number * _KNUTH) % 2**32 // 2 ** (32 - _BUCKET_BITS)).cast(pl.Int32).alias("bucket")


def bucket_of(scope: str, item_id: str) -> int:
    number = int.from_bytes(f"{scope}/{item_id}".encode()[-7:], "big") % _BUCKET_PRIME
    return (number * _KNUTH) % 2**32 // 2 ** (32 - _BUCKET_BITS)


def history_rows(log: pl.DataFrame, changes: pl.DataFrame) -> pl.DataFrame:
    """``activity_log`` rows (with an item id) → history rows, each with its changes as a list."""
    grouped = (
        changes.lazy().sort("id", "change_index").group_by("id", maintain_order=True)
        .agg(pl.struct(CHANGE_FIELDS).alias("changes"))
    ) if changes.height else pl.LazyFrame(schema={"id": pl.String, "changes": CHANGES_DTYPE})
    return (
        log.lazy().filter(pl.col("item_id").is_not_null())
        .with_columns(bucket_expression())
        .select(HISTORY_COLUMNS)
        .join(grouped, on="id", how="left")
        .with_columns(pl.col("changes").cast(CHANGES_DTYPE))
        .sort("bucket")  # the partitioned writer is faster on rows grouped by partition
        .collect()
    )


def update_item_history(lake: Lake, days: Iterable[date], log: pl.DataFrame, changes: pl.DataFrame,
                        attempts: int = 5) -> int:
    """Replace ``days`` in the history table with these refreshed rows (one commit), then compact
    buckets that gathered many files. A concurrent commit on the same files makes ours fail: it is
    retried. Returns the rows written."""
    day_list = sorted(set(days))
    if not day_list:
        return 0
    if not lake.exists(ACTIVITY_ITEM_HISTORY) and set(lake.days(ACTIVITY_LOG)) - set(day_list):
        # A lake written before this table existed: build it whole, or its older days would be missing.
        return rebuild_item_history(lake)
    written = _replace_days(lake, day_list, log, changes, attempts)
    compact_item_history(lake)
    return written


def _replace_days(lake: Lake, day_list: list[date], log: pl.DataFrame, changes: pl.DataFrame,
                  attempts: int = 5) -> int:
    rows = history_rows(log, changes) if log.height else pl.DataFrame()
    predicate = "day IN (" + ", ".join(f"'{d.isoformat()}'" for d in day_list) + ")"
    if rows.height:
        lake.create_if_missing(ACTIVITY_ITEM_HISTORY, rows, ["bucket"])
    for attempt in range(attempts):
        table = lake.table(ACTIVITY_ITEM_HISTORY)
        try:
            if rows.height == 0:
                if table is not None:
                    table.delete(predicate)
                return 0
            rows.write_delta(
                lake.uri(ACTIVITY_ITEM_HISTORY), mode="overwrite", storage_options=lake.storage_options or None,
                delta_write_options={"partition_by": ["bucket"], "predicate": predicate},
            )
            return rows.height
        except CommitFailedError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    return 0


#: Rows per Parquet row group of a compacted bucket: a resource's rows, sorted together, sit in one or
#: two row groups, and their statistics let a history read skip the rest of the bucket.
COMPACT_ROW_GROUP_ROWS = 8_192


def compact_item_history(lake: Lake, max_files: int = COMPACT_AFTER_FILES) -> bool:
    """Rewrite each bucket holding more than ``max_files`` files as files ordered by resource (Z-order
    on ``scope``, ``item_id``) in small row groups, so reading one resource's history touches a row
    group or two, however large the bucket has grown. Best effort: a concurrent writer wins, and the
    next refresh compacts."""
    from deltalake import WriterProperties

    table = lake.table(ACTIVITY_ITEM_HISTORY)
    if table is None:
        return False
    actions = lake.add_actions(ACTIVITY_ITEM_HISTORY)
    if actions.height == 0:
        return False
    crowded = actions.group_by("partition.bucket").len().filter(pl.col("len") > max_files)["partition.bucket"]
    if crowded.len() == 0:
        return False
    try:
        table.optimize.z_order(["scope", "item_id"], partition_filters=[("bucket", "in", [str(b) for b in crowded])],
                               writer_properties=WriterProperties(max_row_group_size=COMPACT_ROW_GROUP_ROWS))
    except CommitFailedError:
        return False
    return True


def rebuild_item_history(lake: Lake) -> int:
    """Build the whole history table from ``activity_log`` and ``activity_changes`` (e.g. for a lake
    written before this table existed). Returns the rows written."""
    from transforms.lake import ACTIVITY_CHANGES
    from transforms.refresh import day_batches

    days = lake.days(ACTIVITY_LOG)
    written = 0
    for batch in day_batches(lake, ACTIVITY_LOG, days):
        log = lake.read_days(ACTIVITY_LOG, batch)
        changes = lake.read_days(ACTIVITY_CHANGES, batch)
        written += _replace_days(lake, batch, log if log is not None else pl.DataFrame(),
                                 changes if changes is not None else pl.DataFrame())
    compact_item_history(lake)
    return written


def _bucket_scan(lake: Lake, table, bucket: int) -> pl.LazyFrame:
    """The live Parquet files of one bucket, scanned directly: the table's add actions name them (the
    history table is written by delta-rs: no deletion vectors, no column mapping), which costs less
    than a Delta scan of the whole table for a read of a row group or two."""
    actions = pl.from_arrow(table.get_add_actions(flatten=True))
    actions = actions.struct.unnest() if isinstance(actions, pl.Series) else actions
    paths = actions.filter(pl.col("partition.bucket").cast(pl.Int64) == bucket)["path"].to_list()
    if not paths:
        return pl.scan_delta(table).filter(pl.col("bucket") == bucket)
    root = lake.uri(ACTIVITY_ITEM_HISTORY)
    files = pl.scan_parquet([f"{root}/{path}" for path in paths], storage_options=lake.storage_options or None,
                            hive_partitioning=False, missing_columns="insert")
    return files.select(pl.lit(bucket, dtype=pl.Int32).alias("bucket"), pl.all())  # the table's column order


@dataclass(frozen=True)
class ItemHistory:
    rows: pl.DataFrame  # newest first: the resource's events with ``changes`` (list of structs)
    bucket: int         # the one partition of activity_item_history that was read
    total: int = 0      # events matching from this page on (``after`` applied, ``limit`` not)
    next_cursor: str | None = None  # pass as ``after`` for the next page; None: this was the last

    @property
    def remaining(self) -> int:
        """Events beyond this page."""
        return max(0, self.total - self.rows.height)


def item_history(lake: Lake, scope: str, item_id: str, *, team_id: int | None = None,
                 read_window: Duration | None = None, now: datetime | None = None,
                 limit: int | None = None, after: str | None = None) -> ItemHistory | None:
    """One resource's events, newest first, each with its changes (field, action, before and after
    as exact JSON text, masked where configured). None when the lake has no history table yet.

    ``limit``: at most that many events; ``total`` counts them all and ``next_cursor`` continues after
    the last one (``after``: the cursor style of :func:`transforms.query.query_page`)."""
    if not scope or not item_id:
        raise FilterError("history needs a scope and an item id")
    table = lake.table(ACTIVITY_ITEM_HISTORY)
    if table is None:
        return None
    bucket = bucket_of(scope, item_id)
    condition = (pl.col("bucket") == bucket) & (pl.col("scope") == scope) & (pl.col("item_id") == item_id)
    if team_id is not None:
        condition = condition & (pl.col("team_id") == team_id)
    if read_window is not None:
        floor = read_window.before(now or datetime.now(timezone.utc))
        condition = condition & (pl.col("day") >= floor.date()) & (pl.col("created_at") >= floor)
    if after:
        condition = condition & after_cursor(after)
    # One read of the resource's rows (a row group or two of its bucket's files), then sorted in memory.
    matching = _bucket_scan(lake, table, bucket).filter(condition).collect().sort(["created_at", "id"],
                                                                                  descending=True)
    if not limit:
        return ItemHistory(matching, bucket, matching.height)
    rows, total = matching.head(limit), matching.height
    cursor = None
    if total > rows.height and rows.height:
        last = rows.row(rows.height - 1, named=True)
        cursor = encode_cursor(last["created_at"], last["id"])
    return ItemHistory(rows, bucket, total, cursor)
