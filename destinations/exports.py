"""Compliance exports: CSV (RFC 4180), XLSX and JSONL files with a manifest an auditor can verify.

    run_export(lake, ActivityFilter(...), "xlsx", "s3://bucket/audit/")   # → the manifest (a dict)
    verify_manifest("s3://bucket/audit/activity_log_....manifest.json")   # → [] or the problems

Rows are read one day partition at a time, at one pinned version of ``activity_log`` (recorded in the
manifest), and written as they come: an export of any size holds one day in memory.

XLSX is written here, straight from Polars, as a streamed Office Open XML package (inline strings,
deflate level 1): ``xlsxwriter`` needs ~37 s for 250,000 rows even in constant-memory mode; this takes a
few seconds. Every text cell is a string cell (never a formula, never an auto-link), formulas are
neutralised as in CSV, and a sheet holds at most 1,048,575 data rows (plus the header): more rows
continue on ``activity_log (2)``, ``(3)``… A text longer than Excel's 32,767-character cell limit is
cut with a visible ``…[truncated]`` marker and counted in the manifest (``cells_truncated``); the CSV
and JSONL formats carry it whole.

Timestamps (``created_at``) are ISO 8601 UTC text in CSV and JSONL (``2024-01-15T10:30:00.000000Z``,
:data:`transforms.export.TIMESTAMP_FORMAT`) and real Excel date-times in XLSX: a serial number (days since
1899-12-30, UTC) with the number format :data:`XLSX_DATETIME_FORMAT`, so a spreadsheet sorts, filters
and computes with them. (Excel shows milliseconds at most; the cell keeps what a double holds.)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable

import polars as pl

from transforms.durations import Duration
from transforms.export import EXPORT_COLUMNS, ORDER, format_timestamps, iter_export, neutralise_formulas
from transforms.filters import ActivityFilter
from transforms.lake import ACTIVITY_LOG, Lake

FORMATS = ("csv", "xlsx", "jsonl")
MANIFEST_SUFFIX = ".manifest.json"
XLSX_MAX_DATA_ROWS = 1_048_575
XLSX_MAX_CELL_CHARS = 32_767
XML_ROWS = 25_000
TRUNCATED = "…[truncated]"
XLSX_DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss.000"
_XLSX_DATETIME_STYLE = 1  # index into cellXfs (styles.xml below)
_EXCEL_EPOCH_DAYS = 25_569  # 1970-01-01 as an Excel serial day (1900 date system)
_MICROS_PER_DAY = 86_400_000_000
NEUTRALISATION = ("OWASP CSV injection: text cells starting with = + - @ tab CR or LF are prefixed with ' "
                  "(CSV and XLSX); XLSX cells are strings, never formulas or links")


class ExportError(Exception):
    """The export cannot be made (bad destination, nothing to read); the message says why."""


# ----------------------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------------------


class CsvWriter:
    """RFC 4180: CRLF line ends; the header as plain names; every text field of the rows quoted (so a
    spreadsheet whose locale separates fields by ``;`` cannot split ``x;=1+1`` into a formula cell; an
    empty text is ``""``, a missing value an empty field), numbers bare; formula starts neutralised."""

    def __init__(self, path: Path) -> None:
        self.handle = open(path, "wb")
        self.first = True

    def write(self, rows: pl.DataFrame) -> None:
        if self.first:
            self.handle.write((",".join(rows.columns) + "\r\n").encode())
        neutralise_formulas(format_timestamps(rows)).write_csv(self.handle, include_header=False, line_terminator="\r\n",
                                                               quote_style="non_numeric")
        self.first = False

    def close(self, columns: list[str]) -> dict:
        if self.first:  # no rows: still a valid CSV with its header
            self.handle.write((",".join(columns) + "\r\n").encode())
        self.handle.close()
        return {}


class JsonlWriter:
    def __init__(self, path: Path) -> None:
        self.handle = open(path, "wb")

    def write(self, rows: pl.DataFrame) -> None:
        format_timestamps(rows).write_ndjson(self.handle)

    def close(self, columns: list[str]) -> dict:
        self.handle.close()
        return {}


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _xml_text(series: pl.Series) -> tuple[pl.Series, int]:
    """Text for an XML text node (escaped; OOXML ``_xHHHH_`` for characters XML cannot hold), cut at
    Excel's cell limit. Returns (text, cells truncated)."""
    long = series.str.len_chars() > XLSX_MAX_CELL_CHARS
    truncated = int(long.sum() or 0)
    if truncated:
        series = pl.select(pl.when(long).then(series.str.slice(0, XLSX_MAX_CELL_CHARS - len(TRUNCATED)) + TRUNCATED)
                           .otherwise(series)).to_series()
    series = (series.str.replace_all("&", "&amp;", literal=True).str.replace_all("<", "&lt;", literal=True)
              .str.replace_all(">", "&gt;", literal=True)
              # XML parsers turn a literal CR into LF: keep it as a character reference.
              .str.replace_all("\r", "&#13;", literal=True)
              .str.replace_all(r"_(x[0-9A-Fa-f]{4}_)", "_x005F_$1"))
    if series.str.contains(_CONTROL.pattern).any():  # rare: fix those cells in Python
        series = series.map_elements(lambda t: _CONTROL.sub(lambda m: f"_x{ord(m.group()):04X}_", t),
                                     return_dtype=pl.String)
    return series, truncated


class XlsxWriter:
    """A streamed XLSX package: sheets are written row batch by row batch, the workbook parts last."""

    def __init__(self, path: Path, sheet_title: str = "activity_log") -> None:
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True)
        self.title = sheet_title
        self.sheets: list[int] = []  # data rows per sheet
        self.stream = None
        self.truncated = 0
        self.columns: list[str] = []

    def _open_sheet(self, columns: list[str], schema: pl.Schema | None = None) -> None:
        self._close_sheet()
        self.sheets.append(0)
        self.stream = self.zip.open(f"xl/worksheets/sheet{len(self.sheets)}.xml", "w", force_zip64=True)
        header = "".join(f'<c r="{_column_letters(i)}1" t="inlineStr"><is><t>{name}</t></is></c>'
                         for i, name in enumerate(columns))
        self.stream.write((
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" '
            'state="frozen"/></sheetView></sheetViews>'
            f'{self._widths(schema)}<sheetData><row r="1">{header}</row>').encode())

    @staticmethod
    def _widths(schema: pl.Schema | None) -> str:
        """Date-time columns wide enough for their format (else a spreadsheet shows ####)."""
        wide = [i + 1 for i, dtype in enumerate((schema or {}).values()) if isinstance(dtype, pl.Datetime)]
        if not wide:
            return ""
        return "<cols>" + "".join(f'<col min="{i}" max="{i}" width="24" customWidth="1"/>' for i in wide) + "</cols>"

    def _close_sheet(self) -> None:
        if self.stream is not None:
            self.stream.write(b"</sheetData></worksheet>")
            self.stream.close()
            self.stream = None

    def write(self, rows: pl.DataFrame) -> None:
        self.columns = rows.columns
        # No formula prefix here: inline strings are text to every spreadsheet program (no <f> cells).
        start = 0
        while start < rows.height:
            if not self.sheets or self.sheets[-1] >= XLSX_MAX_DATA_ROWS:
                self._open_sheet(rows.columns, rows.schema)
            # Slices of XML_ROWS rows: the XML text of a slice is a few times its data's size.
            take = min(rows.height - start, XLSX_MAX_DATA_ROWS - self.sheets[-1], XML_ROWS)
            self._write_rows(rows.slice(start, take), first_row=self.sheets[-1] + 2)
            self.sheets[-1] += take
            start += take

    def _write_rows(self, rows: pl.DataFrame, first_row: int) -> None:
        numbers = pl.int_range(first_row, first_row + rows.height, eager=True).cast(pl.String)
        cells = []
        for position, (name, dtype) in enumerate(rows.schema.items()):
            letter = _column_letters(position)
            column = rows[name]
            ref = pl.concat_str(pl.lit(letter), pl.lit(numbers))
            if dtype == pl.String:
                text, truncated = _xml_text(column)
                self.truncated += truncated
                cell = pl.concat_str(pl.lit('<c r="'), ref, pl.lit('" t="inlineStr"><is><t xml:space="preserve">'),
                                     pl.lit(text), pl.lit("</t></is></c>"))
            elif isinstance(dtype, pl.Datetime):  # an Excel date-time: serial days, UTC, date-time format
                utc = column.dt.convert_time_zone("UTC") if dtype.time_zone else column
                serial = (utc.dt.replace_time_zone(None).dt.epoch("us").cast(pl.Float64) / _MICROS_PER_DAY
                          + _EXCEL_EPOCH_DAYS)
                cell = pl.concat_str(pl.lit('<c r="'), ref, pl.lit(f'" s="{_XLSX_DATETIME_STYLE}"><v>'),
                                     pl.lit(serial.cast(pl.String)), pl.lit("</v></c>"))
            elif dtype == pl.Boolean:
                cell = pl.concat_str(pl.lit('<c r="'), ref, pl.lit('" t="b"><v>'),
                                     pl.lit(column.cast(pl.Int8).cast(pl.String)), pl.lit("</v></c>"))
            else:
                cell = pl.concat_str(pl.lit('<c r="'), ref, pl.lit('"><v>'), pl.lit(column.cast(pl.String)),
                                     pl.lit("</v></c>"))
            cells.append(cell.fill_null(""))
        xml = pl.select(pl.concat_str([pl.lit('<row r="'), pl.lit(numbers), pl.lit('">'), *cells, pl.lit("</row>")])
                        .str.join("")).item()
        self.stream.write(xml.encode())

    def close(self, columns: list[str]) -> dict:
        if not self.sheets:  # no rows: a sheet with the header only
            self._open_sheet(columns)
        self._close_sheet()
        names = [self.title if i == 0 else f"{self.title} ({i + 1})" for i in range(len(self.sheets))]
        sheets = "".join(f'<sheet name="{n}" sheetId="{i + 1}" r:id="rId{i + 1}"/>' for i, n in enumerate(names))
        rels = "".join(f'<Relationship Id="rId{i + 1}" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                       f'relationships/worksheet" Target="worksheets/sheet{i + 1}.xml"/>' for i in range(len(names)))
        styles_id = len(names) + 1
        overrides = "".join(f'<Override PartName="/xl/worksheets/sheet{i + 1}.xml" ContentType="application/'
                            f'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>' for i in range(len(names)))
        parts = {
            "[Content_Types].xml":
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Types xmlns="http://schemas.openxmlformats.org/'
                'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
                'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override '
                'PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
                'sheet.main+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-'
                f'officedocument.spreadsheetml.styles+xml"/>{overrides}</Types>',
            "_rels/.rels":
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="http://schemas.'
                'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
                'openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
                '</Relationships>',
            "xl/workbook.xml":
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="http://schemas.'
                'openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/'
                f'officeDocument/2006/relationships"><sheets>{sheets}</sheets></workbook>',
            "xl/_rels/workbook.xml.rels":
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="http://schemas.'
                f'openxmlformats.org/package/2006/relationships">{rels}<Relationship Id="rId{styles_id}" '
                'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
                'Target="styles.xml"/></Relationships>',
            "xl/styles.xml":
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<styleSheet xmlns="http://schemas.'
                'openxmlformats.org/spreadsheetml/2006/main">'
                f'<numFmts count="1"><numFmt numFmtId="164" formatCode="{XLSX_DATETIME_FORMAT}"/></numFmts>'
                '<fonts count="1"><font><sz val="11"/><name val="Calibri"/>'
                '</font></fonts><fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill '
                'patternType="gray125"/></fill></fills><borders count="1"><border><left/><right/><top/><bottom/>'
                '<diagonal/></border></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" '
                'borderId="0"/></cellStyleXfs><cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" '
                'xfId="0"/><xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
                '</cellXfs></styleSheet>',
        }
        for name, text in parts.items():
            self.zip.writestr(name, text)
        self.zip.close()
        return {"sheets": [{"name": n, "rows": r} for n, r in zip(names, self.sheets)],
                "cells_truncated": self.truncated}


WRITERS = {"csv": CsvWriter, "jsonl": JsonlWriter, "xlsx": XlsxWriter}


# ----------------------------------------------------------------------------------------------
# Destinations: a local path or s3://
# ----------------------------------------------------------------------------------------------


def _s3_client():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def _split_s3(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ExportError(f"{uri}: names no bucket")
    return bucket, key


def _target(out: str, name: str, extension: str) -> tuple[str, str]:
    """(file URI, manifest URI). ``out`` ending in ``/`` (or an existing directory) is a directory."""
    is_dir = out.endswith("/") or (not out.startswith("s3://") and Path(out).is_dir())
    if is_dir:
        base = out.rstrip("/") + "/" + name
        return f"{base}.{extension}", f"{base}{MANIFEST_SUFFIX}"
    stem = re.sub(rf"\.{extension}$", "", out)
    return out if out.endswith(f".{extension}") else f"{out}.{extension}", f"{stem}{MANIFEST_SUFFIX}"


def _exists(uri: str) -> bool:
    if uri.startswith("s3://"):
        from botocore.exceptions import ClientError

        bucket, key = _split_s3(uri)
        try:
            _s3_client().head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise ExportError(f"{uri}: cannot be checked ({exc})") from None
    return os.path.lexists(uri)  # a symbolic link counts, dangling or not: never written through


def _put(local: Path, uri: str) -> None:
    if uri.startswith("s3://"):
        from boto3.s3.transfer import TransferConfig

        bucket, key = _split_s3(uri)
        # Multipart above 64 MiB, in 64 MiB parts.
        _s3_client().upload_file(str(local), bucket, key, Config=TransferConfig(multipart_threshold=64 * 2**20,
                                                                                multipart_chunksize=64 * 2**20))
    else:
        target = Path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(local), target)


def _read_bytes(uri: str):
    """Chunks of the object's bytes (local file or s3://)."""
    if uri.startswith("s3://"):
        bucket, key = _split_s3(uri)
        body = _s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        yield from iter(lambda: body.read(2**20), b"")
    else:
        with open(uri, "rb") as handle:
            yield from iter(lambda: handle.read(2**20), b"")


def sha256_of(uri: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for chunk in _read_bytes(uri):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


# ----------------------------------------------------------------------------------------------
# The export
# ----------------------------------------------------------------------------------------------


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
    file_uri, manifest_uri = _target(out, name, export_format)
    for uri in (file_uri, manifest_uri):  # an export handed to an auditor is never silently replaced
        if _exists(uri):
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
            "integrity": _integrity(lake, [d["day"] for d in days]),
        }
        manifest_local = work / Path(manifest_uri).name
        manifest_local.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        _put(local, file_uri)
        _put(manifest_local, manifest_uri)
        return ExportResult(file_uri, manifest_uri, manifest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _integrity(lake: Lake, days: list[str]) -> dict | None:
    """The integrity-chain digest of each day covered (``activitylog verify`` checks the chain)."""
    from transforms.integrity import ACTIVITY_DIGESTS, digests, latest

    if not lake.exists(ACTIVITY_DIGESTS) or not days:
        return None
    rows = latest(digests(lake)).filter(pl.col("day").is_in([date.fromisoformat(d) for d in days]))
    return {"table": ACTIVITY_DIGESTS, "days": {row["day"].isoformat(): {
        "digest": row["digest"], "version": row["version"], "events": row["events"],
        "signature_kind": row["signature_kind"]} for row in rows.sort("day").iter_rows(named=True)}}


def verify_manifest(manifest_uri: str) -> tuple[dict, list[str]]:
    """Recompute the SHA-256 and size of every file the manifest lists. Returns (manifest, problems)."""
    try:
        text = b"".join(_read_bytes(manifest_uri)).decode("utf-8")
    except FileNotFoundError:
        raise ExportError(f"{manifest_uri}: no such manifest") from None
    except Exception as exc:  # noqa: BLE001 - S3 errors come in many types; say which
        raise ExportError(f"{manifest_uri}: cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        manifest = json.loads(text)
        files = manifest["files"]
    except (ValueError, KeyError, TypeError):
        raise ExportError(f"{manifest_uri}: not an export manifest") from None
    base = manifest_uri.rsplit("/", 1)[0] if "/" in manifest_uri else "."
    problems = []
    for entry in files:
        uri = f"{base}/{entry['path']}"
        try:
            digest, size = sha256_of(uri)
        except FileNotFoundError:
            problems.append(f"{entry['path']}: missing")
            continue
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{entry['path']}: cannot be read ({type(exc).__name__})")
            continue
        if size != entry["bytes"]:
            problems.append(f"{entry['path']}: {size:,} bytes, the manifest says {entry['bytes']:,}")
        if digest != entry["sha256"]:
            problems.append(f"{entry['path']}: SHA-256 {digest} does not match the manifest's {entry['sha256']}")
    return manifest, problems
