"""Splitting landing files into lines: NDJSON lines (a bytewise slow path for invalid UTF-8) and the
elements of a JSON document, each as its exact text; lines over the length limit are rejected here."""

from __future__ import annotations

import json

import polars as pl

UTF8_BOM = b"\xef\xbb\xbf"

LINES_SCHEMA = {"line": pl.Int64, "text": pl.String}
REJECTED_SCHEMA = {"line": pl.Int64, "text": pl.String, "quarantine_reason": pl.String}
# Lines rejected while splitting a file: with the exact bytes of a line that is not valid UTF-8.
SPLIT_REJECTED_SCHEMA = {**REJECTED_SCHEMA, "raw_bytes": pl.Binary}
# A line longer than the limit is quarantined with only this much of it (characters) as raw_text.
LONG_LINE_PREFIX = 4096


def _prefix_chars(limit: int) -> int:
    return min(LONG_LINE_PREFIX, limit)


def _too_long_reason(limit: int) -> str:
    from transforms.landing import describe_bytes

    return (f"line is longer than ACTIVITYLOG_MAX_LINE_BYTES ({describe_bytes(limit)}): {{}} bytes; "
            f"raw_text keeps its first {_prefix_chars(limit):,} characters")


def _split_off_long(lines: pl.DataFrame, max_line_bytes: int | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(lines within the limit, the longer ones as rejected rows keeping a bounded prefix)."""
    rejected = pl.DataFrame(schema=SPLIT_REJECTED_SCHEMA)
    if max_line_bytes is None:
        return lines, rejected
    size = pl.col("text").str.len_bytes()
    long = lines.filter(size > max_line_bytes)
    if not long.height:
        return lines, rejected
    return lines.filter(size <= max_line_bytes), long.select(
        pl.col("line"),
        pl.col("text").str.slice(0, _prefix_chars(max_line_bytes)),
        pl.format(_too_long_reason(max_line_bytes), size).alias("quarantine_reason"),
        pl.lit(None, dtype=pl.Binary).alias("raw_bytes"),
    )


def split_ndjson(
    content: bytes, *, first_line: int = 1, max_line_bytes: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, bool]:
    """Non-blank lines of an NDJSON file (1-based line numbers), lines that are rejected already (not
    UTF-8, longer than ``max_line_bytes``), and whether the lines map one-to-one onto the file's
    bytes (no blank lines, no CR, no BOM, none rejected), which lets the parser read the bytes
    directly. ``first_line``: the number of the content's first line (a tail read of a grown file)."""
    had_bom = content.startswith(UTF8_BOM)
    content = content.removeprefix(UTF8_BOM)
    try:
        lines = pl.read_lines(content, name="text", row_index_name="line", row_index_offset=first_line)
    except pl.exceptions.ComputeError:
        good, bad = _split_ndjson_bytewise(content, first_line, max_line_bytes)
        return good, bad, False
    lines = lines.with_columns(pl.col("line").cast(pl.Int64))
    has_cr = b"\r" in content
    if has_cr:
        lines = lines.with_columns(pl.col("text").str.strip_chars_end("\r"))
    non_blank = lines.filter(pl.col("text").str.contains(r"\S"))
    non_blank, rejected = _split_off_long(non_blank, max_line_bytes if len(content) > (max_line_bytes or 0) else None)
    aligned = not (had_bom or has_cr) and non_blank.height == lines.height
    return non_blank, rejected, aligned


def _split_ndjson_bytewise(
    content: bytes, first_line: int = 1, max_line_bytes: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Slow path for files with invalid UTF-8: keep the good lines, reject the bad ones (with their
    exact bytes in ``raw_bytes``; ``raw_text`` shows them with U+FFFD for the invalid sequences)."""
    good: list[tuple[int, str]] = []
    bad: list[tuple[int, str, str, bytes | None]] = []
    long_reason = _too_long_reason(max_line_bytes) if max_line_bytes is not None else ""
    for number, raw in enumerate(content.split(b"\n"), start=first_line):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        if max_line_bytes is not None and len(raw) > max_line_bytes:
            keep = _prefix_chars(max_line_bytes)
            prefix = raw[: keep * 4].decode("utf-8", errors="replace")[:keep]
            bad.append((number, prefix, long_reason.format(len(raw)), None))
            continue
        try:
            good.append((number, raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            bad.append((number, raw.decode("utf-8", errors="replace"),
                        f"line is not valid UTF-8 (byte {exc.start + 1})", raw))
    return (
        pl.DataFrame(good, schema=LINES_SCHEMA, orient="row"),
        pl.DataFrame(bad, schema=SPLIT_REJECTED_SCHEMA, orient="row"),
    )


def json_document_incomplete(content: bytes) -> bool:
    """Whether a ``.json`` file looks cut short (still being written) rather than broken: it fails
    to parse only at its very end."""
    text = content.removeprefix(UTF8_BOM).decode("utf-8", errors="replace").rstrip()
    if not text:
        return True
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.pos >= len(text) or exc.msg.startswith("Unterminated string")
    except RecursionError:
        return False
    return False


def split_json_document(
    content: bytes, *, max_line_bytes: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, bool]:
    """Elements of a JSON array or of a PostHog API page's ``results``, one per "line".

    The line number of an element is its 1-based position in the array. An element longer than
    ``max_line_bytes`` (its text in the document) is rejected like a long NDJSON line.
    """
    empty_rejected = pl.DataFrame(schema=SPLIT_REJECTED_SCHEMA)
    text = content.removeprefix(UTF8_BOM).decode("utf-8", errors="replace")
    if not text.strip():
        return pl.DataFrame(schema=LINES_SCHEMA), empty_rejected, False

    def whole(reason: str) -> pl.DataFrame:
        shown = text
        if max_line_bytes is not None and len(content) > max_line_bytes:
            shown = text[:_prefix_chars(max_line_bytes)]
            reason += f" (raw_text keeps the first {len(shown):,} characters of the document)"
        return pl.DataFrame([(1, shown, reason, None)], schema=SPLIT_REJECTED_SCHEMA, orient="row")

    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON document at line {exc.lineno} column {exc.colno}: {exc.msg}"
        return pl.DataFrame(schema=LINES_SCHEMA), whole(reason), False
    except RecursionError:
        return pl.DataFrame(schema=LINES_SCHEMA), whole("invalid JSON document: nested too deeply"), False
    start = len(text) - len(text.lstrip())
    if isinstance(document, dict) and isinstance(document.get("results"), list):
        elements = _array_elements(text, _member_start(text, start, "results"))
    elif isinstance(document, list):
        elements = _array_elements(text, start)
    elif isinstance(document, dict) and "id" in document:
        elements = [text.strip()]  # a single event in a .json file
    else:
        reason = "JSON document is neither an array of events nor a page with a \"results\" array"
        return pl.DataFrame(schema=LINES_SCHEMA), whole(reason), False
    # Each element is its exact text in the document (a slice, never re-encoded).
    lines = pl.DataFrame(list(enumerate(elements, 1)), schema=LINES_SCHEMA, orient="row")
    lines, rejected = _split_off_long(lines, max_line_bytes if len(content) > (max_line_bytes or 0) else None)
    return lines, rejected, False


_WHITESPACE = " \t\n\r"


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def _array_elements(text: str, start: int) -> list[str]:
    """The exact text of each element of the (valid) JSON array that starts at ``start``."""
    decoder = json.JSONDecoder()
    elements: list[str] = []
    index = _skip(text, start + 1)
    if text[index] == "]":
        return elements
    while True:
        _, end = decoder.raw_decode(text, index)
        elements.append(text[index:end])
        index = _skip(text, end)
        if text[index] == "]":
            return elements
        index = _skip(text, index + 1)  # past the comma


def _member_start(text: str, start: int, name: str) -> int:
    """Where the value of the (last) member ``name`` of the valid JSON object at ``start`` begins."""
    decoder = json.JSONDecoder()
    found = -1
    index = _skip(text, start + 1)
    while text[index] != "}":
        key, end = decoder.raw_decode(text, index)
        value_start = _skip(text, _skip(text, end) + 1)  # past the colon
        _, value_end = decoder.raw_decode(text, value_start)
        if key == name:
            found = value_start  # a repeated key: the last one wins, as json.loads decided
        index = _skip(text, value_end)
        if text[index] == ",":
            index = _skip(text, index + 1)
    return found
