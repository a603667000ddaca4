"""``build_lake``: the one way tests build a lake from events — write them as a landing file, ingest the
landing area and refresh the derived tables, through the same transforms the assets call."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal

import polars as pl

from tests.helpers.events import write_lines
from transforms.changes import MaskRules
from transforms.ingest import IngestReport, ingest
from transforms.lake import ACTIVITY_RAW, Lake
from transforms.refresh import refresh_all
from transforms.validate import ValidationSettings


def build_lake(lake: Lake, landing: Path, events: Iterable[dict | str] | None = None, *,
               name: str = "events.jsonl", settings: ValidationSettings | None = None,
               days: Literal["all", "changed"] = "all", rules: MaskRules | None = None,
               references: dict[str, pl.DataFrame] | None = None) -> IngestReport:
    """Write ``events`` (dicts → JSON, or raw lines) to ``landing / name`` (nothing is written when None:
    the landing area as it is), ingest ``landing`` with ``settings`` (default: ``ValidationSettings()``,
    partitions from 2020-01-01) and refresh ``days``: ``"all"`` every day of activity_raw, ``"changed"``
    the days this ingest changed (what a run does), with ``rules`` and ``references``. The ingest's report."""
    if events is not None:
        write_lines(landing / name, events)
    report = ingest(lake, str(landing), settings if settings is not None else ValidationSettings())
    refresh_all(lake, report.days_changed if days == "changed" else lake.days(ACTIVITY_RAW), rules, references)
    return report
