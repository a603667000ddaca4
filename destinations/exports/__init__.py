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

from destinations.exports.errors import ExportError
from destinations.exports.manifest import verify_manifest
from destinations.exports.run import FORMATS, NEUTRALISATION, WRITERS, ExportResult, default_name, run_export
from destinations.exports.targets import MANIFEST_SUFFIX, sha256_of
from destinations.exports.text import CsvWriter, JsonlWriter
from destinations.exports.xlsx import XLSX_DATETIME_FORMAT, XLSX_MAX_CELL_CHARS, XLSX_MAX_DATA_ROWS, XlsxWriter

__all__ = ["FORMATS", "MANIFEST_SUFFIX", "NEUTRALISATION", "WRITERS", "XLSX_DATETIME_FORMAT", "XLSX_MAX_CELL_CHARS",
           "XLSX_MAX_DATA_ROWS", "CsvWriter", "ExportError", "ExportResult", "JsonlWriter", "XlsxWriter",
           "default_name", "run_export", "sha256_of", "verify_manifest"]
