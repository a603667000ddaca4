"""``activity_events`` + ``activity_changes`` + reference data → ``activity_log``."""

from __future__ import annotations

import polars as pl

from transforms.reference import REFERENCE_SCHEMAS, empty_reference
from transforms.sql import run_sql
from transforms.summary import change_summaries, summary_expression


def build_activity_log(
    events: pl.DataFrame,
    changes: pl.DataFrame,
    references: dict[str, pl.DataFrame] | None = None,
    templates: dict[str, str] | None = None,
) -> pl.DataFrame:
    """One row per event (left joins only), with names, changed fields and a one-line summary."""
    references = references or {}
    frames = {name: references.get(name, empty_reference(name)).lazy() for name in REFERENCE_SCHEMAS}
    log = run_sql(
        "activity_log",
        activity_events=events.lazy(),
        change_summaries=change_summaries(changes).lazy(),
        **frames,
    )
    return (
        log.with_columns(pl.col("changed_fields").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        .with_columns(summary_expression(templates))
        .drop("changes_text")
        .collect()
    )
