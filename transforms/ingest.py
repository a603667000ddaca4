"""Ingest landing files into ``activity_raw``: validate, deduplicate by id, append by day.

Accounting holds for every run and every file: accepted + duplicates + quarantined = non-blank lines.

Crash safety: data is appended before the ledger row that marks its file as done, and a file is
only skipped once the ledger says so. A run that dies halfway is retried by running it again: the
files it had not recorded are re-read, their events are found already in ``activity_raw`` (dedupe by
id) and counted as duplicates, and their quarantine rows are not written twice.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Callable

import polars as pl

from transforms.lake import ACTIVITY_QUARANTINE, ACTIVITY_RAW, INGEST_LEDGER, Lake
from transforms.landing import LandingError, LandingFile, list_landing, read_bytes
from transforms.validate import (
    REJECTED_SCHEMA,
    ValidationSettings,
    parse_keys,
    split_json_document,
    split_ndjson,
    validate,
)

Progress = Callable[[str], None]

RAW_COLUMNS = [
    "id", "day", "created_at", "activity", "scope", "item_id", "team_id", "organization_id", "level",
    "payload", "source", "line", "source_sha256", "ingested_at", "run_id",
]
QUARANTINE_SCHEMA = {
    "source": pl.String, "line": pl.Int64, "quarantine_reason": pl.String, "raw_text": pl.String,
    "source_sha256": pl.String, "ingested_at": pl.Datetime("us", "UTC"), "run_id": pl.String,
}
LEDGER_SCHEMA = {
    "source": pl.String, "size": pl.Int64, "modified": pl.Datetime("us", "UTC"), "source_sha256": pl.String,
    "lines": pl.Int64, "accepted": pl.Int64, "duplicates": pl.Int64, "quarantined": pl.Int64,
    "days": pl.List(pl.Date), "ingested_at": pl.Datetime("us", "UTC"), "run_id": pl.String,
}


@dataclass
class FileResult:
    source: str
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    days: set[date] = field(default_factory=set)


@dataclass
class IngestReport:
    run_id: str
    landing: str
    files_seen: int = 0
    files_ingested: list[FileResult] = field(default_factory=list)
    files_skipped: int = 0  # already in the ledger, unchanged
    files_changed: list[str] = field(default_factory=list)  # changed after ingest: reported, not re-read
    quarantine_reasons: Counter = field(default_factory=Counter)
    days_changed: set[date] = field(default_factory=set)
    events_per_day: Counter = field(default_factory=Counter)  # new events written, by day

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
    def balanced(self) -> bool:
        return self.accepted + self.duplicates + self.quarantined == self.lines

    def summary(self) -> dict[str, object]:
        """Everything a caller reports, as plain JSON-able values."""
        return {
            **self.as_metadata(),
            "landing": self.landing,
            "run_id": self.run_id,
            "files_changed": list(self.files_changed),
            "quarantine_reasons": dict(self.quarantine_reasons.most_common()),
            "days_changed": [d.isoformat() for d in sorted(self.days_changed)],
        }

    def as_metadata(self) -> dict[str, object]:
        return {
            "files_ingested": len(self.files_ingested),
            "files_skipped": self.files_skipped,
            "files_changed_after_ingest": len(self.files_changed),
            "lines": self.lines,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "days_changed": len(self.days_changed),
        }


def read_ledger(lake: Lake) -> pl.DataFrame:
    frame = lake.scan(INGEST_LEDGER)
    if frame is None:
        return pl.DataFrame(schema=LEDGER_SCHEMA)
    return frame.collect()


def plan_files(ledger: pl.DataFrame, files: list[LandingFile]) -> tuple[list[LandingFile], list[LandingFile], int]:
    """Split listed files into (new, possibly changed since ingest, unchanged count) using the ledger.

    Unchanged means same path, size and modification time; a file whose size or time differ is
    hashed later to tell a touch from a real change.
    """
    latest = {row["source"]: row for row in ledger.iter_rows(named=True)}
    new, suspect, unchanged = [], [], 0
    for file in files:
        entry = latest.get(file.uri)
        if entry is None:
            new.append(file)
        elif entry["size"] == file.size and entry["modified"] == file.modified:
            unchanged += 1
        else:
            suspect.append(file)
    return new, suspect, unchanged


def pending_files(lake: Lake, landing: str) -> list[LandingFile]:
    """Files a sensor should start an ingest for: new ones, and ones whose size or time changed."""
    new, suspect, _ = plan_files(read_ledger(lake), list_landing(landing))
    return new + suspect


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


def ingest(
    lake: Lake,
    landing: str,
    settings: ValidationSettings,
    *,
    run_id: str | None = None,
    progress: Progress | None = None,
    batch_bytes: int = 256 * 1024 * 1024,
) -> IngestReport:
    """Ingest every new file of the landing area into the lake and account for every line."""
    say = progress or (lambda _message: None)
    report = IngestReport(run_id=run_id or uuid.uuid4().hex, landing=landing)
    files = list_landing(landing)
    report.files_seen = len(files)
    ledger = read_ledger(lake)
    new, suspect, report.files_skipped = plan_files(ledger, files)
    for file in suspect:
        _, digest = read_bytes(file)
        known = ledger.filter(pl.col("source") == file.uri)["source_sha256"].to_list()
        if digest in known:
            report.files_skipped += 1  # touched but identical: nothing to do
        else:
            report.files_changed.append(file.uri)
            say(f"WARNING {file.uri} changed after it was ingested; it is not read again "
                f"(land corrected events in a new file)")
    ingested_at = datetime.now(timezone.utc)
    clean_copies = _cleanly_ingested_digests(ledger)
    batch = _Batch()
    for position, file in enumerate(new, start=1):
        result = _process_file(file, settings, batch, report.run_id, ingested_at, clean_copies)
        say(f"[{position}/{len(new)}] read {file.name}: {result.lines:,} lines")
        if batch.text_bytes >= batch_bytes:
            _flush(lake, batch, report, say)
            batch = _Batch()
    if batch:
        _flush(lake, batch, report, say)
    return report


def _cleanly_ingested_digests(ledger: pl.DataFrame) -> dict[str, int]:
    """Content hash → line count of files whose every line was accepted or a duplicate.

    A new file with the same bytes holds only events the lake already has: all its lines are
    duplicates, without parsing them. Files that had rejected lines are always re-validated (the
    settings may have changed since, e.g. a default project set).
    """
    clean = ledger.filter(
        (pl.col("quarantined") == 0) & (pl.col("accepted") + pl.col("duplicates") == pl.col("lines"))
    )
    return dict(clean.select("source_sha256", "lines").unique("source_sha256").iter_rows())


def _process_file(
    file: LandingFile, settings: ValidationSettings, batch: _Batch, run_id: str, ingested_at: datetime,
    clean_copies: dict[str, int],
) -> FileResult:
    result = FileResult(source=file.uri)
    try:
        content, digest = read_bytes(file)
        if digest in clean_copies:
            result.lines = result.duplicates = clean_copies[digest]
            _record(batch, result, file, digest, run_id, ingested_at)
            return result
    except LandingError as exc:
        if "gzip" not in str(exc):
            raise
        content, digest = b"", ""
        rejected = pl.DataFrame([(0, "", str(exc))], schema=REJECTED_SCHEMA, orient="row")
        lines = pl.DataFrame(schema={"line": pl.Int64, "text": pl.String})
        aligned = False
    else:
        split = split_json_document if file.is_json_document else split_ndjson
        lines, rejected, aligned = split(content)
    result.lines = lines.height + rejected.height  # non-blank lines, readable or not
    parsed, not_json = parse_keys(lines, content if aligned else None)
    del content
    accepted, invalid = validate(parsed, settings)
    rejected = pl.concat([rejected, not_json, invalid])
    result.quarantined = rejected.height
    source = pl.lit(file.uri)
    batch.accepted.append(
        accepted.with_columns(
            source.alias("source"),
            pl.lit(digest).alias("source_sha256"),
            pl.lit(ingested_at).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
            pl.lit(run_id).alias("run_id"),
        ).rename({"text": "payload"})
    )
    batch.rejected.append(
        rejected.sort("line").select(
            source.alias("source"),
            pl.col("line"),
            pl.col("quarantine_reason"),
            pl.col("text").alias("raw_text"),
            pl.lit(digest).alias("source_sha256"),
            pl.lit(ingested_at).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
            pl.lit(run_id).alias("run_id"),
        )
    )
    _record(batch, result, file, digest, run_id, ingested_at)
    batch.text_bytes += int(accepted["text"].str.len_bytes().sum() or 0)
    return result


def _record(batch: _Batch, result: FileResult, file: LandingFile, digest: str, run_id: str,
            ingested_at: datetime) -> None:
    batch.ledger.append({
        "source": file.uri, "size": file.size, "modified": file.modified, "source_sha256": digest,
        "ingested_at": ingested_at, "run_id": run_id,
    })
    batch.results.append(result)


def _flush(lake: Lake, batch: _Batch, report: IngestReport, say: Progress) -> None:
    fresh, counts, conflicts = _new_events(lake, batch.accepted)
    lake.append(ACTIVITY_RAW, fresh, partition_by=["day"])
    report.events_per_day.update(dict(fresh.group_by("day").len().iter_rows()))
    rejected = pl.concat([pl.DataFrame(schema=QUARANTINE_SCHEMA), *batch.rejected, conflicts]).cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]
    _append_quarantine(lake, rejected)

    ledger_rows = []
    for result, entry in zip(batch.results, batch.ledger):
        row = counts.get(result.source)
        if row is not None:
            result.accepted, result.duplicates = int(row["accepted"]), int(row["duplicates"])
            result.quarantined += int(row["quarantined"])
            result.days = set(row["days"])
        ledger_rows.append({**entry, "lines": result.lines, "accepted": result.accepted,
                            "duplicates": result.duplicates, "quarantined": result.quarantined,
                            "days": sorted(result.days)})
        report.files_ingested.append(result)
        report.days_changed |= result.days
    report.quarantine_reasons.update(_reason_kinds(rejected))
    lake.append(INGEST_LEDGER, pl.DataFrame(ledger_rows, schema=LEDGER_SCHEMA))
    say(f"wrote {fresh.height:,} new events over {fresh['day'].n_unique()} days; "
        f"{sum(r.duplicates for r in batch.results):,} duplicates, {rejected.height:,} quarantined")


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
    # Duplicates within the batch: the first occurrence in file/line order is the reference.
    accepted = accepted.with_columns(pl.col("id").is_first_distinct().alias("_first"),
                                     pl.col("payload").hash().alias("_hash"),
                                     pl.col("payload").str.len_bytes().alias("_len"))
    stored = _stored_hashes(lake, accepted["id"].unique())
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
    lake.append(ACTIVITY_QUARANTINE, rejected)


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
        .alias("kind")
    )["kind"]
    return Counter(kinds.to_list())
