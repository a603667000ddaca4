"""The landing-input tests (tests/test_landing_*.py): landing limits that make every file complete
(``NOW``) or a file modified just now still being written (``HOUR``), the ingest's accounting, the
quarantine, ledger and raw rows of a lake in order, and files made to look old."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import polars as pl

from transforms.ingest import QUARANTINE_SCHEMA
from transforms.lake import ACTIVITY_QUARANTINE, ACTIVITY_RAW, INGEST_LEDGER, Lake
from transforms.landing import LandingLimits

NOW = LandingLimits(quiet_period=timedelta(0))  # every file counts as complete
HOUR = LandingLimits(quiet_period=timedelta(hours=1))  # a file modified just now is still being written


def balanced(report) -> bool:
    return report.accepted + report.duplicates + report.quarantined == report.lines


def quarantine(lake: Lake) -> pl.DataFrame:
    frame = lake.scan(ACTIVITY_QUARANTINE)
    return pl.DataFrame(schema=QUARANTINE_SCHEMA) if frame is None else frame.collect().sort("source", "line")


def ledger(lake: Lake) -> pl.DataFrame:
    return lake.scan(INGEST_LEDGER).collect().sort("ingested_at", "consumed_bytes")


def raw(lake: Lake) -> pl.DataFrame:
    return lake.scan(ACTIVITY_RAW).collect().sort("source", "line")


def age(path: Path, seconds: float = 7200) -> None:
    """Make a file look untouched for ``seconds``."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def ndjson(events) -> bytes:
    return "".join(json.dumps(e) + "\n" for e in events).encode()
