"""Ingest landing files into ``activity_raw``: validate, deduplicate by id, append by day.

Accounting holds for every run and every file: accepted + duplicates + quarantined = non-blank lines.

Crash safety: data is appended before the ledger row that marks its file as done, and a file is
only skipped once the ledger says so. A run that dies halfway is retried by running it again: the
files it had not recorded are re-read, their events are found already in ``activity_raw`` (dedupe by
id) and counted as duplicates, and their quarantine rows are not written twice.

Growing files: an NDJSON file that grew after ingest (the bytes ingested, then more) has its new
lines read. The ledger records how far each file was consumed (``consumed_bytes``, with the SHA-256
of that prefix in ``source_sha256``); the next run checks that prefix is unchanged and reads only
what follows, numbering lines on from where it stopped.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Callable

import polars as pl
import pyarrow.fs  # noqa: F401  (transforms.landing imports it when first used; an ingest always does)
from deltalake.exceptions import CommitFailedError

from transforms.lake import ACTIVITY_QUARANTINE, ACTIVITY_RAW, COMMIT_ATTEMPTS, INGEST_LEDGER, Lake
from transforms.landing import (  # noqa: F401  (read_bytes: bench/run.py times it by this name)
    LandingError,
    LandingFile,
    LandingLimits,
    hash_file,
    list_landing,
    read_bytes,
    read_file,
    scan_landing,
)
from transforms.validate import (
    SPLIT_REJECTED_SCHEMA,
    ValidationSettings,
    json_document_incomplete,
    parse_keys,
    split_json_document,
    split_ndjson,
    validate,
)

Progress = Callable[[str], None]

# A run waits this long at most for files it found still being written to become quiet.
QUIET_WAIT_LIMIT = timedelta(seconds=15)

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


@dataclass
class FileResult:
    source: str
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    days: set[date] = field(default_factory=set)
    #: Of ``accepted``: events an interrupted earlier read of this file stored before it died (its ledger
    #: row never written). They are this file's lines, so they count as accepted, not as duplicates.
    recovered: int = 0


@dataclass
class IngestReport:
    run_id: str
    landing: str
    files_seen: int = 0
    files_ingested: list[FileResult] = field(default_factory=list)
    files_skipped: int = 0  # already in the ledger, unchanged
    files_changed: list[str] = field(default_factory=list)  # changed after ingest: reported, not re-read
    files_waiting: list[str] = field(default_factory=list)  # an end still being written: left for a later run
    warnings: list[str] = field(default_factory=list)  # symbolic links refused, files that could not be read
    quarantine_reasons: Counter = field(default_factory=Counter)
    days_changed: set[date] = field(default_factory=set)
    events_per_day: Counter = field(default_factory=Counter)  # new events written, by day
    log: dict = field(default_factory=dict)  # the verifiable log's step (transforms.tlog.LogStep.summary)

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files_ingested)

    @property
    def accepted(self) -> int:
        return sum(f.accepted for f in self.files_ingested)

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.files_ingested)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files_ingested)

    @property
    def recovered(self) -> int:
        return sum(f.recovered for f in self.files_ingested)

    @property
    def balanced(self) -> bool:
        return self.accepted + self.duplicates + self.quarantined == self.lines

    def summary(self) -> dict[str, object]:
        """Everything a caller reports, as plain JSON-able values."""
        return {
            **self.as_metadata(),
            "landing": self.landing,
            "run_id": self.run_id,
            "files_changed": list(self.files_changed),
            "files_waiting": list(self.files_waiting),
            "warnings": list(self.warnings),
            "quarantine_reasons": dict(self.quarantine_reasons.most_common()),
            "days_changed": [d.isoformat() for d in sorted(self.days_changed)],
            "log": dict(self.log),
        }

    def as_metadata(self) -> dict[str, object]:
        return {
            "files_ingested": len(self.files_ingested),
            "files_skipped": self.files_skipped,
            "files_changed_after_ingest": len(self.files_changed),
            "files_waiting": len(self.files_waiting),
            "lines": self.lines,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "recovered": self.recovered,
            "days_changed": len(self.days_changed),
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


def ingest(
    lake: Lake,
    landing: str,
    settings: ValidationSettings,
    *,
    run_id: str | None = None,
    progress: Progress | None = None,
    batch_bytes: int = 256 * 1024 * 1024,
    limits: LandingLimits | None = None,
) -> IngestReport:
    """Ingest every new file (and the new lines of grown ones) of the landing area into the lake and
    account for every line. ``limits``: default from the environment (``LandingLimits.from_env``)."""
    say = progress or (lambda _message: None)
    report = IngestReport(run_id=run_id or uuid.uuid4().hex, landing=landing)
    limits = limits or LandingLimits.from_env()
    scan = scan_landing(landing)
    for warning in scan.warnings:
        report.warnings.append(warning)
        say(f"WARNING {warning}")
    report.files_seen = len(scan.files)
    files, first = scan.files, True
    while files:
        waiting_before = len(report.files_waiting)
        _ingest_files(lake, files, settings, limits, report, say, batch_bytes, count_unchanged=first)
        if not first:
            break
        # Files left incomplete that are about to become quiet are waited for, once: a run started
        # just after a writer finished does not leave the end of its file to a run that may never
        # come (the sensor starts one only when something changes).
        now = datetime.now(timezone.utc)
        waiting = set(report.files_waiting[waiting_before:])
        due = {f.uri: f.modified + limits.quiet_period - now for f in files
               if f.uri in waiting and f.is_local and f.modified is not None}
        due = {uri: left for uri, left in due.items() if left <= QUIET_WAIT_LIMIT}
        if not due:
            break
        pause = max(max(due.values()).total_seconds(), 0) + 0.05
        say(f"waiting {pause:.1f}s for {len(due)} file(s) still being written to become quiet")
        time.sleep(pause)
        report.files_waiting = [uri for uri in report.files_waiting if uri not in due]
        files, first = [f for f in scan_landing(landing).files if f.uri in due], False
    # The verifiable log (transforms.tlog): leaves of the events accepted now or by an interrupted run,
    # a signed checkpoint, the local witness's cosignature.
    from transforms.tlog import extend_log

    step = extend_log(lake, say)
    report.log = step.summary()
    report.warnings.extend(step.warnings)
    return report


def _ingest_files(lake: Lake, files: list[LandingFile], settings: ValidationSettings, limits: LandingLimits,
                  report: IngestReport, say: Progress, batch_bytes: int, *, count_unchanged: bool) -> None:
    ledger = read_ledger(lake)
    known = ledger.group_by("source").agg(pl.col("source_sha256"))
    run = _Run(settings, limits, report, say, report.run_id, datetime.now(timezone.utc),
               _cleanly_ingested_digests(ledger), {s: set(d) for s, d in known.iter_rows()})
    plan = plan_files(ledger, files)
    if count_unchanged:
        report.files_skipped += plan.unchanged
    work = sorted(plan.new + plan.suspect, key=lambda f: f.uri)
    batch = _Batch()
    for position, file in enumerate(work, start=1):
        result = _process_file(file, plan.entries.get(file.uri), run, batch, f"[{position}/{len(work)}]")
        if result is not None and batch.text_bytes >= batch_bytes:
            _flush(lake, batch, report, say)
            batch = _Batch()
    if batch:
        _flush(lake, batch, report, say)


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


def _process_file(file: LandingFile, entry: dict | None, run: _Run, batch: _Batch, position: str) -> FileResult | None:
    """Read one file (or the tail of a grown one) into the batch; None when nothing is read this run
    (unchanged, changed, or still being written: the report says which)."""
    stable = file.quiet_for(run.limits.quiet_period, run.ingested_at)
    by_line = not (file.is_gzip or file.is_json_document)
    start, prefix = 0, None
    if entry is not None:
        consumed = _consumed(entry)
        if not by_line or file.size < consumed:  # only NDJSON grows; anything else is touched or changed
            if hash_file(file) in run.known_digests.get(file.uri, set()):
                run.report.files_skipped += 1
            else:
                run.changed(file)
            return None
        if entry["size"] == file.size and entry["modified"] == file.modified and not stable:
            run.waiting(file, "its last line has no newline yet")  # as last time, and still not quiet
            return None
        start, prefix = consumed, entry["source_sha256"]
    try:
        content = read_file(file, run.limits, start=start, prefix_sha256=prefix, stable=stable, by_line=by_line)
    except LandingError as exc:
        run.warn(f"{exc}; it is tried again on the next run")
        return None
    if content.vanished:
        run.waiting(file, "it was truncated or replaced while the landing area was listed")
        return None
    if not content.prefix_matches:
        run.changed(file)
        return None
    if file.is_json_document and not content.refused and not content.stable and json_document_incomplete(content.data):
        run.waiting(file, "its JSON document is not complete yet")
        return None
    if content.held_back:
        run.waiting(file, content.held_back)
        if content.consumed == start:
            return None
    if entry is not None and content.consumed == start:
        run.report.files_skipped += 1  # touched but identical: nothing to do
        return None

    result = FileResult(source=file.uri)
    if start == 0 and content.digest in run.clean_copies and not content.refused:
        result.lines = result.duplicates = run.clean_copies[content.digest][0]
        _record(batch, result, file, content.digest, run, start, content.consumed, run.clean_copies[content.digest][1])
        run.say(f"{position} read {file.name}: {result.lines:,} lines")
        return result
    if content.refused:
        rejected = pl.DataFrame([(0, "", content.refused, None)], schema=SPLIT_REJECTED_SCHEMA, orient="row")
        lines = pl.DataFrame(schema={"line": pl.Int64, "text": pl.String})
        aligned = False
    elif file.is_json_document:
        lines, rejected, aligned = split_json_document(content.data, max_line_bytes=run.limits.max_line_bytes)
    else:
        lines, rejected, aligned = split_ndjson(content.data, first_line=content.prefix_lines + 1,
                                                max_line_bytes=run.limits.max_line_bytes)
    result.lines = lines.height + rejected.height  # non-blank lines, readable or not
    consumed_lines = None  # physical lines of the file consumed so far (NDJSON)
    if by_line and not content.refused:
        if aligned:  # every physical line is one of ``lines``
            consumed_lines = content.prefix_lines + lines.height
        else:
            data = content.data
            consumed_lines = content.prefix_lines + data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    data = content.data if aligned else None
    content.data = b""
    parsed, not_json = parse_keys(lines, data)
    del data
    accepted, invalid = validate(parsed, run.settings)
    rejected = pl.concat([rejected, not_json, invalid], how="diagonal_relaxed")
    result.quarantined = rejected.height
    source = pl.lit(file.uri)
    batch.accepted.append(
        accepted.with_columns(
            source.alias("source"),
            pl.lit(content.digest).alias("source_sha256"),
            pl.lit(run.ingested_at).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
            pl.lit(run.run_id).alias("run_id"),
        ).rename({"text": "payload"})
    )
    batch.rejected.append(
        rejected.sort("line").select(
            source.alias("source"),
            pl.col("line"),
            pl.col("quarantine_reason"),
            pl.col("text").alias("raw_text"),
            pl.lit(content.digest).alias("source_sha256"),
            pl.lit(run.ingested_at).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
            pl.lit(run.run_id).alias("run_id"),
            pl.col("raw_bytes"),
        )
    )
    _record(batch, result, file, content.digest, run, start, content.consumed, consumed_lines)
    batch.text_bytes += int(accepted["text"].str.len_bytes().sum() or 0)
    extra = f" appended after line {content.prefix_lines:,}" if start else ""
    if content.refused:
        extra += f" ({content.refused})"
    run.say(f"{position} read {file.name}: {result.lines:,} lines{extra}")
    return result


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


def _flush(lake: Lake, batch: _Batch, report: IngestReport, say: Progress) -> None:
    """Write a batch: the digest intent of the days it changes, the events, the rejected lines, then
    the ledger rows of its files (each a commit; a run killed between two of them is finished by the
    next: the files without a ledger row are read again, their events found stored and counted as
    recovered, and the intent makes the next digest step cover the days)."""
    from transforms.recovery import open_intent

    fresh, counts, conflicts = _new_events(lake, batch.accepted)
    recovered = _recovered_lines(lake, batch, counts)
    run_id = batch.ledger[0]["run_id"] if batch.ledger else None
    if fresh.height:
        open_intent(lake, "ingest", digest=fresh["day"].unique().to_list(), run_id=run_id)
    lake.append(ACTIVITY_RAW, fresh, partition_by=["day"])
    report.events_per_day.update(dict(fresh.group_by("day").len().iter_rows()))
    rejected = pl.concat([pl.DataFrame(schema=QUARANTINE_SCHEMA), *batch.rejected, conflicts],
                         how="diagonal_relaxed").select(QUARANTINE_SCHEMA.keys()).cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]
    _append_quarantine(lake, rejected)

    ledger_rows = []
    reported = {r.source: r for r in report.files_ingested}
    for result, entry in zip(batch.results, batch.ledger):
        row = counts.get(result.source)
        if row is not None:
            result.accepted, result.duplicates = int(row["accepted"]), int(row["duplicates"])
            result.quarantined += int(row["quarantined"])
            result.days = set(row["days"])
        mine = recovered.get(result.source)
        if mine is not None:
            result.recovered = min(mine[0], result.duplicates)
            result.accepted += result.recovered
            result.duplicates -= result.recovered
            result.days |= mine[1]
        ledger_rows.append({**entry, "lines": result.lines, "accepted": result.accepted,
                            "duplicates": result.duplicates, "quarantined": result.quarantined,
                            "days": sorted(result.days)})
        earlier = reported.get(result.source)
        if earlier is None:
            report.files_ingested.append(result)
            reported[result.source] = result
        else:  # read again after waiting for its end: one file in the report
            earlier.lines += result.lines
            earlier.accepted += result.accepted
            earlier.duplicates += result.duplicates
            earlier.quarantined += result.quarantined
            earlier.days |= result.days
        report.days_changed |= result.days
    report.quarantine_reasons.update(_reason_kinds(rejected))
    _append_evolving(lake, INGEST_LEDGER, pl.DataFrame(ledger_rows, schema=LEDGER_SCHEMA))
    say(f"wrote {fresh.height:,} new events over {fresh['day'].n_unique()} days; "
        f"{sum(r.duplicates for r in batch.results):,} duplicates, {rejected.height:,} quarantined")


def _recovered_lines(lake: Lake, batch: _Batch, counts: dict[str, dict]) -> dict[str, tuple[int, set[date]]]:
    """source → (lines, days) of this batch's duplicates that are the very lines an earlier, interrupted
    read of the same file stored: ``activity_raw`` holds the id from the same source and line, written
    by a run that has no ledger row for that source (it died between the two commits)."""
    if not any(int(row.get("duplicates") or 0) for row in counts.values()):
        return {}
    raw = lake.scan(ACTIVITY_RAW)
    if raw is None:
        return {}
    keys = pl.concat([f.select("id", "source", "line") for f in batch.accepted if f.height]) if batch.accepted else None
    if keys is None or keys.height == 0:
        return {}
    sources = keys["source"].unique().to_list()
    stored = (raw.select("id", "source", "line", "run_id", "day")
              .join(keys.lazy(), on="id", how="semi")
              .filter(pl.col("source").is_in(sources)).collect()
              .join(keys, on=["id", "source", "line"], how="semi"))
    if stored.height == 0:
        return {}
    ledger = read_ledger(lake)
    if ledger.height and "run_id" in ledger.columns:
        recorded = ledger.filter(pl.col("source").is_in(sources)).select("source", "run_id").unique()
        stored = stored.join(recorded, on=["source", "run_id"], how="anti")
    return {source: (group.height, set(group["day"].to_list()))
            for (source,), group in stored.group_by("source")}


def _new_events(lake: Lake, accepted_frames: list[pl.DataFrame],
                ) -> tuple[pl.DataFrame, dict[str, dict], pl.DataFrame]:
    """Accepted rows not yet stored (first occurrence by id), per-source accepted/duplicates/quarantined/
    days, and the quarantine rows of ids already stored (or earlier in the batch) with other content.

    An id seen before is a duplicate when its payload equals the first occurrence's (the stored one,
    else the first in file/line order) byte for byte or as a JSON value (key order, spacing and number
    spelling aside: ``1.50`` is ``1.5``, ``1`` is ``1.0``, ``true`` is not ``1``); otherwise it is
    quarantined and the first occurrence stays. Stored ids are looked up on every day: the same id with
    another ``created_at`` (so on another day) is other content. Payloads are compared by hash and
    length first; only those that differ are read in full and parsed.
    """
    if not accepted_frames:
        return pl.DataFrame(schema={"day": pl.Date}), {}, pl.DataFrame(schema=QUARANTINE_SCHEMA)
    accepted = pl.concat(accepted_frames)
    ids = accepted["id"].unique()
    stored = _stored_hashes(lake, ids)
    if stored.height == 0 and ids.len() == accepted.height:
        # No id stored and none repeated (a first ingest): every row is new, nothing to compare.
        accepted = accepted.with_columns(pl.lit(True).alias("_first"), pl.lit(False).alias("_conflict"))
    else:
        # Duplicates within the batch: the first occurrence in file/line order is the reference.
        accepted = accepted.with_columns(pl.col("id").is_first_distinct().alias("_first"),
                                         pl.col("payload").hash().alias("_hash"),
                                         pl.col("payload").str.len_bytes().alias("_len"))
        reference = accepted.filter(pl.col("_first")).select("id", pl.col("_hash").alias("_ref_hash"),
                                                             pl.col("_len").alias("_ref_len"))
        reference = reference.join(stored, on="id", how="left").select(
            "id", pl.coalesce("_stored_hash", "_ref_hash").alias("_ref_hash"),
            pl.coalesce("_stored_len", "_ref_len").alias("_ref_len"), pl.col("_stored_day").is_not_null().alias("_stored"))
        accepted = accepted.join(reference, on="id", how="left", maintain_order="left").with_columns(
            (pl.col("_first") & ~pl.col("_stored")).alias("_first")).with_row_index("_row")
        # Not the first occurrence and not byte-identical to it (by hash and length): compared as JSON.
        accepted = accepted.with_columns((~pl.col("_first") & ((pl.col("_hash") != pl.col("_ref_hash"))
                                                               | (pl.col("_len") != pl.col("_ref_len")))).alias("_conflict"))
        differ = accepted.filter(pl.col("_conflict")).select("_row", "id", "payload", "_stored")
        if differ.height:
            texts = pl.concat([
                _stored_texts(lake, stored.join(differ.filter("_stored").select("id"), on="id", how="semi")),
                accepted.filter(pl.col("_first")).select("id", pl.col("payload").alias("_reference"))
                .join(differ.filter(~pl.col("_stored")).select("id"), on="id", how="semi"),
            ])
            differ = differ.join(texts, on="id", how="left")
            same = [_same_event(*row) for row in differ.select("payload", "_reference", "_stored").iter_rows()]
            equal = differ.filter(pl.Series(same, dtype=pl.Boolean)).select("_row", pl.lit(True).alias("_equal"))
            accepted = accepted.join(equal, on="_row", how="left", maintain_order="left").with_columns(
                pl.col("_conflict") & pl.col("_equal").is_null())
    fresh = accepted.filter(pl.col("_first")).select(RAW_COLUMNS)
    per_file = accepted.group_by("source").agg(
        pl.col("_first").sum().alias("accepted"),
        (~pl.col("_first") & ~pl.col("_conflict")).sum().alias("duplicates"),
        pl.col("_conflict").sum().alias("quarantined"),
        pl.col("day").filter(pl.col("_first")).unique().alias("days"),
    )
    conflicts = accepted.filter(pl.col("_conflict")).select(
        "source", "line", pl.format("id {} already stored with different content", "id").alias("quarantine_reason"),
        pl.col("payload").alias("raw_text"), "source_sha256", "ingested_at", "run_id")
    return fresh, {row["source"]: row for row in per_file.iter_rows(named=True)}, conflicts


def _stored_hashes(lake: Lake, ids: pl.Series) -> pl.DataFrame:
    """``id, _stored_day, _stored_hash, _stored_len`` of the given ids that ``activity_raw`` holds, on
    any day: a semi-join on the id column over the whole table, then the payloads of the matching days
    only, hashed as they are read (a re-sent batch does not hold its stored copy in memory)."""
    schema = {"id": pl.String, "_stored_day": pl.Date, "_stored_hash": pl.UInt64, "_stored_len": pl.UInt32}
    raw = lake.scan(ACTIVITY_RAW)
    if raw is None:
        return pl.DataFrame(schema=schema)
    # A join, not ``is_in``: Polars pushes an ``is_in`` filter into every file's scan (seconds for 100k ids).
    hits = raw.select("id", "day").join(pl.LazyFrame({"id": ids}), on="id", how="semi").collect()
    if hits.height == 0:
        return pl.DataFrame(schema=schema)
    # Hashed in the scan, before the join: the payloads are never held in memory.
    return (raw.filter(pl.col("day").is_in(hits["day"].unique().to_list()))
            .select("id", pl.col("day").alias("_stored_day"), pl.col("payload").hash().alias("_stored_hash"),
                    pl.col("payload").str.len_bytes().alias("_stored_len"))
            .join(hits.lazy().rename({"day": "_stored_day"}), on=["id", "_stored_day"], how="semi")
            .collect().unique("id", keep="first", maintain_order=True).cast(schema))  # type: ignore[arg-type]


def _stored_texts(lake: Lake, stored: pl.DataFrame) -> pl.DataFrame:
    """``id, _reference``: the stored payloads of ``stored`` (``id, _stored_day``) rows."""
    if stored.height == 0:
        return pl.DataFrame(schema={"id": pl.String, "_reference": pl.String})
    keys = stored.select("id", pl.col("_stored_day").alias("day"))
    return (lake.scan(ACTIVITY_RAW).filter(pl.col("day").is_in(keys["day"].unique().to_list()))
            .join(keys.lazy(), on=["id", "day"], how="semi")
            .select("id", pl.col("payload").cast(pl.String).alias("_reference"))
            .collect().unique("id", keep="first", maintain_order=True))


def _same_event(payload: str, reference: str, erased_ok: bool) -> bool:
    """Equal as JSON values: key order and spacing aside, numbers by exact decimal value (``1.50`` is
    ``1.5``, ``1`` is ``1.0``, ``0.1`` is not ``0.10000000000000001``), booleans apart from numbers
    (``true`` is not ``1``). A stored event that an erasure rewrote (``transforms.erasure``: it names an
    ``erased-…`` pseudonym) counts as the same event: a copy of the original line is a duplicate, never
    quarantined (its raw text would bring the erased personal data back)."""
    import json
    import re
    from decimal import Decimal

    if erased_ok and re.search(r"erased-[0-9a-f]{16}", reference):
        return True
    floats: list[bool] = []

    def same(left: object, right: object) -> bool:
        if isinstance(left, bool) or isinstance(right, bool) or left is None or right is None:
            return type(left) is type(right) and left == right
        if isinstance(left, (int, float, Decimal)) and isinstance(right, (int, float, Decimal)):
            if isinstance(left, float) or isinstance(right, float):
                floats.append(True)
            return left == right
        if isinstance(left, dict) and isinstance(right, dict):
            return left.keys() == right.keys() and all(same(left[key], right[key]) for key in left)
        if isinstance(left, list) and isinstance(right, list):
            return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right))
        return type(left) is type(right) and left == right

    try:  # floats first (fast): values that differ as floats differ as decimals too
        if not same(json.loads(payload), json.loads(reference)):
            return False
        if not floats:
            return True
        return same(json.loads(payload, parse_float=Decimal), json.loads(reference, parse_float=Decimal))
    except ValueError:
        return False


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
