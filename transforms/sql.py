"""Run the SQL files of ``sql/`` with Polars' SQLContext."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import polars as pl

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"


@cache
def load_sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text()


def run_sql(name: str, **frames: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """Run ``sql/<name>.sql`` (one statement) over the given frames, registered by keyword name."""
    context = pl.SQLContext(frames=frames, eager=False)
    return context.execute(load_sql(name))

