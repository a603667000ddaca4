"""The CSV (RFC 4180) and JSONL writers: rows in day batches, timestamps as ISO 8601 UTC text."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from transforms.export import format_timestamps, neutralise_formulas


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
