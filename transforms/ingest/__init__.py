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

The run itself (discovery, reading each file, the batch commits) lives here, so that every stage it
calls is looked up in this module at call time (``bench/run.py`` wraps them by these names to time
them); the ledger and report types, the deduplication and the batch writes live in the modules
beside it.
"""

from __future__ import annotations

import time
import uuid
from datetime import date, datetime, timedelta, timezone

import polars as pl
import pyarrow.fs  # noqa: F401  (transforms.landing imports it when first used; an ingest always does)

from transforms.ingest.batch import (
    _append_evolving,
    _append_quarantine,
    _Batch,
    _reason_kinds,
    _record,
    _Run,
)
from transforms.ingest.dedupe import _new_events, _same_event, _stored_hashes, _stored_texts  # noqa: F401
from transforms.ingest.ledger import (  # noqa: F401  (the names callers import from transforms.ingest)
    LEDGER_SCHEMA,
    QUARANTINE_SCHEMA,
    RAW_COLUMNS,
    Plan,
    _cleanly_ingested_digests,
    _consumed,
    pending_files,
    plan_files,
    read_ledger,
)
from transforms.ingest.report import FileResult, IngestReport, Progress
from transforms.lake import ACTIVITY_RAW, INGEST_LEDGER, Lake
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

# A run waits this long at most for files it found still being written to become quiet.
QUIET_WAIT_LIMIT = timedelta(seconds=15)


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
