"""The XLSX writer: a streamed Office Open XML package written straight from Polars.

Inline strings, deflate level 1; every text cell a string cell (never a formula or a link); at most
1,048,575 data rows a sheet (more continue on ``activity_log (2)``…); a text over Excel's cell limit cut
with a visible marker and counted; ``created_at`` a real Excel date-time.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import polars as pl


XLSX_MAX_DATA_ROWS = 1_048_575
XLSX_MAX_CELL_CHARS = 32_767
XML_ROWS = 25_000
TRUNCATED = "…[truncated]"
XLSX_DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss.000"
_XLSX_DATETIME_STYLE = 1  # index into cellXfs (styles.xml below)
_EXCEL_EPOCH_DAYS = 25_569  # 1970-01-01 as an Excel serial day (1900 date system)
_MICROS_PER_DAY = 86_400_000_000


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
