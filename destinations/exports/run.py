"""One export: rows of ``activity_log`` at a pinned version, one day partition at a time, written by the
format's writer, then the file and its manifest put where they go."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import polars as pl

from destinations.exports.errors import ExportError
from destinations.exports.manifest import integrity_of
from destinations.exports.targets import exists, put, sha256_of, target
from destinations.exports.text import CsvWriter, JsonlWriter
from destinations.exports.xlsx import XlsxWriter
from transforms.durations import Duration
from transforms.export import EXPORT_COLUMNS, ORDER, iter_export
from transforms.filters import ActivityFilter
from transforms.lake import ACTIVITY_LOG, Lake

FORMATS = ("csv", "xlsx", "jsonl")
WRITERS = {"csv": CsvWriter, "jsonl": JsonlWriter, "xlsx": XlsxWriter}
NEUTRALISATION = ("OWASP CSV injection: text cells starting with = + - @ tab CR or LF are prefixed with ' "
                  "(CSV and XLSX); XLSX cells are strings, never formulas or links")


@dataclass
class ExportResult:
    file: str
    manifest_uri: str
    manifest: dict = field(default_factory=dict)


def default_name(activity_filter: ActivityFilter, moment: datetime) -> str:
    """``activity_log_<span>_<when, UTC>``: the span is ``2026-10-01_2026-12-31`` with both bounds,
    ``from_2026-10-01`` or ``until_2026-12-31`` with one, ``all`` with none."""
    low, high = activity_filter.day_bounds()
    if low and high:
        span = f"{low}_{high}"
    elif low or high:
        span = f"from_{low}" if low else f"until_{high}"
    else:
        span = "all"
    moment = moment.astimezone(timezone.utc) if moment.tzinfo else moment
    return f"activity_log_{span}_{moment:%Y%m%dT%H%M%SZ}"


def run_export(lake: Lake, activity_filter: ActivityFilter, export_format: str, out: str, *, name: str | None = None,
               read_window: Duration | None = None, now: datetime | None = None,
               progress: Callable[[str], None] | None = None, where: pl.Expr | None = None,
               access: dict | None = None) -> ExportResult:
    """Write the export and its manifest to ``out`` (a file path, a directory ending in ``/``, or an
    ``s3://`` URI). Returns where they went and the manifest. ``where``: one more row condition on
    top of the filter (the read API's access rule: an organization export holds only that
    organization's rows); ``access`` describes it in the manifest."""
    if export_format not in FORMATS:
        raise ExportError(f"format {export_format!r} is not one of {', '.join(FORMATS)}")
    table = lake.table(ACTIVITY_LOG)
    if table is None:
        raise ExportError(f"no activity_log table in {lake.root}: run `activitylog ingest` first")
    created = now or datetime.now(timezone.utc)
    if name is not None and (not name.strip() or any(c in name for c in "/\\\0") or name.strip() in (".", "..")):
        raise ExportError(f"--name {name!r} must be a plain file name (no /, \\ or ..): the export stays in --out")
    name = name or default_name(activity_filter, created)
    file_uri, manifest_uri = target(out, name, export_format)
    for uri in (file_uri, manifest_uri):  # an export handed to an auditor is never silently replaced
        if exists(uri):
            raise ExportError(f"{uri} already exists: choose another --out or --name")
    version = table.version()
    pinned = Lake(lake.root, lake.storage_options, versions={ACTIVITY_LOG: version})
    work = Path(tempfile.mkdtemp(prefix="activitylog-export-"))
    try:
        local = work / Path(file_uri).name
        writer = WRITERS[export_format](local)
        days: list[dict] = []
        rows = 0
        for per_day, frame in iter_export(pinned, activity_filter, read_window=read_window, now=now, where=where):
            writer.write(frame)
            rows += frame.height
            days += [{"day": d.isoformat(), "rows": n} for d, n in per_day.items()]
            if progress:
                first, last = min(per_day), max(per_day)
                progress(f"{first}…{last}: {frame.height:,} rows ({rows:,} so far)")
        extra = writer.close(EXPORT_COLUMNS)
        digest, size = sha256_of(str(local))
        start, end = activity_filter.time_bounds(read_window=read_window, now=now)
        manifest = {
            "manifest_version": 1,
            "name": name,
            "format": export_format,
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "filter": activity_filter.to_dict(),
            **({"access": access} if access is not None else {}),
            "read_window": None if read_window is None else str(read_window),
            "time_bounds": {"start": start.isoformat() if start else None, "end": end.isoformat() if end else None},
            "table": ACTIVITY_LOG,
            "lake": lake.root,
            "table_version": version,
            "rows": rows,
            "columns": EXPORT_COLUMNS,
            "order": ORDER,
            "formula_neutralisation": NEUTRALISATION if export_format != "jsonl" else None,
            "files": [{"path": Path(file_uri).name, "sha256": digest, "bytes": size, "rows": rows, **extra}],
            "days": days,
            "integrity": integrity_of(lake, [d["day"] for d in days]),
        }
        manifest_local = work / Path(manifest_uri).name
        manifest_local.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        put(local, file_uri)
        put(manifest_local, manifest_uri)
        return ExportResult(file_uri, manifest_uri, manifest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
