"""One-liners for notebooks: the lake's tables as Polars LazyFrames.

    from transforms.notebook import activity_log
    activity_log("data/lake").filter(pl.col("scope") == "FeatureFlag").collect()

Filters on ``day`` prune partitions; nothing is read until ``collect()``.
"""

from __future__ import annotations

import os

import polars as pl

from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_EVENTS, ACTIVITY_LOG, ACTIVITY_RAW, Lake


def _scan(table: str, lake: str | None) -> pl.LazyFrame:
    root = lake or os.environ.get("ACTIVITYLOG_LAKE") or "./data/lake"
    frame = Lake.at(root).scan(table)
    if frame is None:
        raise FileNotFoundError(f"no {table} table under {root}: run `activitylog ingest` (or `make demo`) first")
    return frame


def activity_log(lake: str | None = None) -> pl.LazyFrame:
    """The enriched log (one row per event). ``lake``: path or s3:// URI, default $ACTIVITYLOG_LAKE."""
    return _scan(ACTIVITY_LOG, lake)


def activity_changes(lake: str | None = None) -> pl.LazyFrame:
    """One row per changed field, with before/after as exact JSON text."""
    return _scan(ACTIVITY_CHANGES, lake)


def activity_events(lake: str | None = None) -> pl.LazyFrame:
    return _scan(ACTIVITY_EVENTS, lake)


def activity_raw(lake: str | None = None) -> pl.LazyFrame:
    """The system of record: the verbatim payload of every accepted event."""
    return _scan(ACTIVITY_RAW, lake)
