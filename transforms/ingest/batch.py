"""One run's shared state and its batch of files, and the appends that write what a batch rejected
(quarantine rows, added columns by schema evolution)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from deltalake.exceptions import CommitFailedError

from transforms.ingest.report import FileResult, IngestReport, Progress
from transforms.lake import ACTIVITY_QUARANTINE, COMMIT_ATTEMPTS, Lake
from transforms.landing import LandingFile, LandingLimits
from transforms.validate import ValidationSettings


class _Batch:
    """Accepted rows of several files, flushed to the lake together (one Delta commit)."""

    def __init__(self) -> None:
        self.accepted: list[pl.DataFrame] = []
        self.rejected: list[pl.DataFrame] = []
        self.ledger: list[dict] = []
        self.results: list[FileResult] = []
        self.text_bytes = 0

    def __bool__(self) -> bool:
        return bool(self.ledger)


@dataclass
class _Run:
    """What every file of one ingest shares."""

    settings: ValidationSettings
    limits: LandingLimits
    report: IngestReport
    say: Progress
    run_id: str
    ingested_at: datetime
    clean_copies: dict[str, tuple[int, int | None]]
    known_digests: dict[str, set[str]]

    def waiting(self, file: LandingFile, why: str) -> None:
        self.report.files_waiting.append(file.uri)
        self.say(f"{file.name}: {why}; left for a later run (it is read once unchanged for "
                 f"{self.limits.quiet_period.total_seconds():g}s, ACTIVITYLOG_LANDING_QUIET_PERIOD)")

    def changed(self, file: LandingFile) -> None:
        self.report.files_changed.append(file.uri)
        self.say(f"WARNING {file.uri} changed after it was ingested; it is not read again "
                 f"(land corrected events in a new file)")

    def warn(self, message: str) -> None:
        self.report.warnings.append(message)
        self.say(f"WARNING {message}")


def _record(batch: _Batch, result: FileResult, file: LandingFile, digest: str, run: _Run, start: int,
            consumed: int, consumed_lines: int | None) -> None:
    batch.ledger.append({
        "source": file.uri, "size": file.size, "modified": file.modified, "source_sha256": digest,
        "ingested_at": run.ingested_at, "run_id": run.run_id,
        "start_offset": start, "consumed_bytes": consumed, "consumed_lines": consumed_lines,
    })
    batch.results.append(result)


def _append_evolving(lake: Lake, name: str, frame: pl.DataFrame) -> None:
    """Append, adding the frame's columns a table written by an earlier version lacks (Delta schema
    evolution, once); rows written before read those columns as null."""
    table = lake.table(name)
    if table is None or {f.name for f in table.schema().fields} >= set(frame.columns):
        lake.append(name, frame)
        return
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            frame.write_delta(lake.uri(name), mode="append", storage_options=lake.storage_options or None,
                              delta_write_options={"schema_mode": "merge"})
            return
        except CommitFailedError:
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _append_quarantine(lake: Lake, rejected: pl.DataFrame) -> None:
    """Append rejected lines, skipping ones a crashed earlier attempt already recorded."""
    if rejected.height == 0:
        return
    existing = lake.scan(ACTIVITY_QUARANTINE)
    if existing is not None:
        digests = rejected["source_sha256"].unique().to_list()
        known = existing.filter(pl.col("source_sha256").is_in(digests)).select("source", "line").collect()
        rejected = rejected.join(known, on=["source", "line"], how="anti", maintain_order="left")
    _append_evolving(lake, ACTIVITY_QUARANTINE, rejected)


def _reason_kinds(rejected: pl.DataFrame) -> Counter:
    """Group reasons by kind, without the per-line details (column numbers, values)."""
    kinds = rejected.select(
        pl.col("quarantine_reason")
        .str.replace(r"^(invalid JSON) at column .*$", "$1")
        .str.replace(r"^(not a JSON object) .*$", "$1")
        .str.replace(r"^(invalid JSON document) .*$", "$1")
        .str.replace(r"^(created_at is not an ISO-8601 timestamp): .*$", "$1")
        .str.replace(r"^created_at \S+ (is more than .* in the future)$", "created_at $1")
        .str.replace(r"^created_at \S+ (is before .*)$", "created_at $1")
        .str.replace(r"^(line is not valid UTF-8) .*$", "$1")
        .str.replace(r"^id .* (already stored with different content)$", "id $1")
        .str.replace(r"^(line is longer than ACTIVITYLOG_MAX_LINE_BYTES \([^)]*\)).*$", "$1")
        .alias("kind")
    )["kind"]
    return Counter(kinds.to_list())
