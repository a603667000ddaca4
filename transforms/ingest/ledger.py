"""The tables an ingest writes, and its ledger: which files (and how much of each) are done.

A file is skipped only once the ledger says so: same path, size and modification time, and consumed
to its end (``consumed_bytes``). A new file with the same bytes as one ingested cleanly is all
duplicates, without parsing.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.lake import INGEST_LEDGER, Lake
from transforms.landing import LandingFile, list_landing

RAW_COLUMNS = [
    "id", "day", "created_at", "activity", "scope", "item_id", "team_id", "organization_id", "level",
    "payload", "source", "line", "source_sha256", "ingested_at", "run_id",
]
# Columns added after the first release go last: tables written before get them by schema evolution.
QUARANTINE_SCHEMA = {
    "source": pl.String, "line": pl.Int64, "quarantine_reason": pl.String, "raw_text": pl.String,
    "source_sha256": pl.String, "ingested_at": pl.Datetime("us", "UTC"), "run_id": pl.String,
    "raw_bytes": pl.Binary,  # the exact bytes of a line that is not valid UTF-8, else null
}
LEDGER_SCHEMA = {
    "source": pl.String, "size": pl.Int64, "modified": pl.Datetime("us", "UTC"), "source_sha256": pl.String,
    "lines": pl.Int64, "accepted": pl.Int64, "duplicates": pl.Int64, "quarantined": pl.Int64,
    "days": pl.List(pl.Date), "ingested_at": pl.Datetime("us", "UTC"), "run_id": pl.String,
    # Where this row's read started and how far the file is consumed (stored bytes; physical lines).
    # Null in rows written before they existed: the whole file (``size``) was consumed.
    "start_offset": pl.Int64, "consumed_bytes": pl.Int64, "consumed_lines": pl.Int64,
}


def read_ledger(lake: Lake) -> pl.DataFrame:
    """The ingest ledger; columns a ledger written by an earlier version lacks are null."""
    frame = lake.scan(INGEST_LEDGER)
    if frame is None:
        return pl.DataFrame(schema=LEDGER_SCHEMA)
    ledger = frame.collect()
    missing = [pl.lit(None, dtype=kind).alias(name) for name, kind in LEDGER_SCHEMA.items() if name not in ledger.columns]
    return ledger.with_columns(missing) if missing else ledger


def _consumed(entry: dict) -> int:
    return entry["consumed_bytes"] if entry.get("consumed_bytes") is not None else entry["size"]


@dataclass
class Plan:
    new: list[LandingFile]
    suspect: list[LandingFile]  # size or time differ from the ledger, or its end was left for later
    unchanged: int
    entries: dict[str, dict]  # the latest ledger row of every source


def plan_files(ledger: pl.DataFrame, files: list[LandingFile]) -> Plan:
    """Split listed files into new, possibly changed since ingest, and unchanged, using the ledger.

    Unchanged means same path, size and modification time, and consumed to its end; a file whose
    size or time differ is read later to tell a touch from growth from a real change.
    """
    ordered = ledger.sort(["ingested_at", "consumed_bytes"], nulls_last=False)
    entries = {row["source"]: row for row in ordered.iter_rows(named=True)}
    new, suspect, unchanged = [], [], 0
    for file in files:
        entry = entries.get(file.uri)
        if entry is None:
            new.append(file)
        elif entry["size"] == file.size and entry["modified"] == file.modified and _consumed(entry) >= file.size:
            unchanged += 1
        else:
            suspect.append(file)
    return Plan(new, suspect, unchanged, entries)


def pending_files(lake: Lake, landing: str) -> list[LandingFile]:
    """Files a sensor should start an ingest for: new ones, and ones whose size or time changed (or
    whose end was left for later). A file still being written is included: its complete lines are
    read, and the run waits a little for its end (see ``ingest``)."""
    plan = plan_files(read_ledger(lake), list_landing(landing))
    return plan.new + plan.suspect


def _cleanly_ingested_digests(ledger: pl.DataFrame) -> dict[str, tuple[int, int | None]]:
    """Content hash → (line count, consumed_lines) of files whose every line was accepted or a duplicate.

    A new file with the same bytes holds only events the lake already has: all its lines are
    duplicates, without parsing them. Files that had rejected lines are always re-validated (the
    settings may have changed since, e.g. a default project set). Only reads from a file's start
    count (the tail of a grown file holds only its new lines).
    """
    clean = ledger.filter(
        (pl.col("quarantined") == 0) & (pl.col("accepted") + pl.col("duplicates") == pl.col("lines"))
        & (pl.col("start_offset").fill_null(0) == 0)
    )
    return {digest: (lines, physical) for digest, lines, physical in
            clean.select("source_sha256", "lines", "consumed_lines").unique("source_sha256").iter_rows()}
