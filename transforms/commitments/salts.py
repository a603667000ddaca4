"""``merkle_salts``: the salts of the commitments, kept apart from the leaves so that erasure and
retention delete them by event id or day."""

from __future__ import annotations

from datetime import date
from itertools import repeat
from typing import Iterable, Mapping

import polars as pl

from transforms.lake import Lake

MERKLE_SALTS = "merkle_salts"
SALTS_SCHEMA = {"event_id": pl.String, "day": pl.Date, "path": pl.String, "salt": pl.Binary}


def salts_frame(rows: Iterable[tuple[str, date, Mapping[str, bytes]]]) -> pl.DataFrame:
    """Salt rows for ``merkle_salts`` from ``(event_id, day, salts)``."""
    ids: list[str] = []
    days: list[date] = []
    paths: list[str] = []
    values: list[bytes] = []
    for event_id, day, salts in rows:
        if salts:
            ids.extend(repeat(event_id, len(salts)))
            days.extend(repeat(day, len(salts)))
            paths.extend(salts)
            values.extend(salts.values())
    return pl.DataFrame({"event_id": ids, "day": days, "path": paths, "salt": values}, schema=SALTS_SCHEMA)


def write_salts(lake: Lake, frame: pl.DataFrame) -> None:
    """Append salt rows (partitioned by day, so retention drops whole partitions)."""
    lake.append(MERKLE_SALTS, frame.select(list(SALTS_SCHEMA)), partition_by=["day"])


def read_salts(lake: Lake, event_id: str, day: date | None = None) -> dict[str, bytes]:
    """An event's salts (empty once erased or expired)."""
    scan = lake.scan(MERKLE_SALTS)
    if scan is None:
        return {}
    if day is not None:
        scan = scan.filter(pl.col("day") == day)
    rows = scan.filter(pl.col("event_id") == event_id).select("path", "salt").collect()
    return dict(rows.iter_rows())


def delete_salts(lake: Lake, event_ids: Iterable[str]) -> None:
    """Delete the salts of the given events (erasure): their commitments can no longer be opened."""
    table = lake.table(MERKLE_SALTS)
    ids = sorted(set(event_ids))
    if table is None or not ids:
        return
    quoted = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
    table.delete(f"event_id IN ({quoted})")
