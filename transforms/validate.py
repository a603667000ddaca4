"""Split landing files into lines and validate them as PostHog change events, vectorized.

The rules are DESIGN.md "Input event". Every non-blank line ends up either accepted (with typed key
columns next to its verbatim text) or rejected with a precise ``quarantine_reason``; the per-line
Python fallback only ever runs on lines that are already known to be bad.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from operator import attrgetter
from typing import Annotated

import msgspec
import polars as pl

from transforms import jsontext

MAX_NAME_LENGTH = 79  # activity, scope
MAX_ITEM_ID_LENGTH = 72
UTF8_BOM = b"\xef\xbb\xbf"

LINES_SCHEMA = {"line": pl.Int64, "text": pl.String}
REJECTED_SCHEMA = {"line": pl.Int64, "text": pl.String, "quarantine_reason": pl.String}
# Lines rejected while splitting a file: with the exact bytes of a line that is not valid UTF-8.
SPLIT_REJECTED_SCHEMA = {**REJECTED_SCHEMA, "raw_bytes": pl.Binary}
# A line longer than the limit is quarantined with only this much of it (characters) as raw_text.
LONG_LINE_PREFIX = 4096


@dataclass(frozen=True)
class ValidationSettings:
    """What an operator can tune about acceptance (env: ACTIVITYLOG_DEFAULT_TEAM_ID, _START_DATE, _MAX_FUTURE_SKEW)."""

    start_date: date = date(2020, 1, 1)
    default_team_id: int | None = None
    max_future_skew: timedelta = timedelta(days=1)
    now: datetime | None = None  # fixed clock for tests; None means the time of validation

    def clock(self) -> datetime:
        return self.now or datetime.now(timezone.utc)


def describe_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day" + ("s" if days != 1 else "")
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{seconds} seconds"


# ----------------------------------------------------------------------------------------------
# Splitting files into lines


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


# ----------------------------------------------------------------------------------------------
# Parsing JSON (transforms.jsontext: msgspec, exact, the same reader as every later stage)


_INT64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class _Object(msgspec.Struct, gc=False):
    """Any JSON object (its members are skipped, not built): checks "object or null" while decoding."""


class _FastKeys(msgspec.Struct, gc=False):
    """The key fields when they have their usual types (the fast path)."""

    id: str | None = None
    activity: str | None = None
    scope: str | None = None
    item_id: str | _INT64 | None = None  # a number is coerced to its text
    created_at: str | None = None
    user: _Object | None = None
    detail: _Object | None = None
    is_system: bool | None = None
    was_impersonated: bool | None = None
    team_id: _INT64 | None = None
    organization_id: str | None = None


KEY_FIELDS = tuple(_FastKeys.__struct_fields__)
_RawKeys = msgspec.defstruct("_RawKeys", [(name, msgspec.Raw, jsontext.ABSENT) for name in KEY_FIELDS], gc=False)
_FAST = jsontext.decoders(_FastKeys)
_LENIENT = msgspec.json.Decoder(_RawKeys)
_STRINGS = ("id", "activity", "scope", "item_id", "created_at", "organization_id")
_BOOLEANS = ("is_system", "was_impersonated")
_OBJECTS = ("user", "detail")
# The kind of each field's value on the fast path (a present value has its declared type).
_FAST_KINDS = {**{n: "string" for n in _STRINGS}, **{n: "boolean" for n in _BOOLEANS}, "team_id": "number",
               "user": "object", "detail": "object"}
#: Parsed key columns: each field's text (a string's characters, any other value's JSON text; null
#: when absent or null) and ``<field>_kind`` (string, number, boolean, object, array; null likewise).
PARSED_SCHEMA = {
    **{name: pl.String for name in KEY_FIELDS},
    **{f"{name}_kind": pl.String for name in KEY_FIELDS},
    "unpaired_surrogate_in": pl.String,  # the first key field whose string held an unpaired surrogate
}


def parse_keys(
    lines: pl.DataFrame, content: bytes | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse the key fields of each line. Returns (parsed lines + key columns, rejected lines).

    Each line is decoded by msgspec (standard JSON only: ``NaN``, ``Infinity`` and the like reject
    their own line, with a reason), nested no deeper than ``jsontext.MAX_DEPTH``. ``content`` (the
    file's bytes, when they hold exactly ``lines``) is not needed: the lines are read as texts.
    """
    del content
    if lines.height == 0:
        return lines.with_columns(pl.lit(None, dtype=t).alias(k) for k, t in PARSED_SCHEMA.items()), \
            pl.DataFrame(schema=REJECTED_SCHEMA)
    texts = lines["text"]
    deep = jsontext.too_deep(texts)
    objects, reasons, prepared = jsontext.decode_many(texts, _FAST, _LENIENT)
    for index in deep.arg_true().to_list():
        objects[index], reasons[index] = None, f"invalid JSON: nested deeper than {jsontext.MAX_DEPTH} levels"
    frame = _key_columns(objects, prepared)
    failed = pl.Series("quarantine_reason", reasons, dtype=pl.String)
    good = failed.is_null()
    rejected = lines.filter(~good).with_columns(failed.filter(~good))
    return pl.concat([lines, frame], how="horizontal").filter(good), rejected.select(REJECTED_SCHEMA.keys())


def _surrogate_fields(objects: list, prepared: list[str | None]) -> list[str | None]:
    """Per line: the first key string field that held an unpaired surrogate (a key must be exact text)."""
    found: list[str | None] = [None] * len(objects)
    for index in (i for i, key in enumerate(prepared) if key and objects[i] is not None):
        found[index] = next((name for name in _STRINGS if isinstance(getattr(objects[index], name), str)
                             and jsontext.has_surrogate(getattr(objects[index], name), prepared[index])), None)
    return found


_NO_KEYS = _FastKeys()  # stands for a line that is not a fast object (every field null)


def _fast_columns(objects: list, prepared: list[str | None]) -> pl.DataFrame:
    """Key columns of fast objects (every element a ``_FastKeys``), one field at a time, built as Python
    lists and turned into one frame (a frame per field costs more than the values for small batches)."""
    columns: dict[str, list] = {}
    for name in KEY_FIELDS:
        values = list(map(attrgetter(name), objects))
        if name in _OBJECTS:  # only presence matters here
            text = ["{}" if v is not None else None for v in values]
        elif name in _BOOLEANS:
            text = [None if v is None else ("true" if v else "false") for v in values]
        elif name == "team_id":
            text = [None if v is None else str(v) for v in values]
        else:  # item_id may be an integer: its decimal text
            text = [v if v is None or type(v) is str else str(v) for v in values]
        columns[name] = text
    for name, kind in _FAST_KINDS.items():
        columns[f"{name}_kind"] = [None if v is None else kind for v in columns[name]]
    columns["unpaired_surrogate_in"] = (_surrogate_fields(objects, prepared) if any(prepared)
                                        else [None] * len(objects))
    return pl.DataFrame({name: columns[name] for name in PARSED_SCHEMA}, schema=PARSED_SCHEMA)


def _key_columns(objects: list, prepared: list[str | None]) -> pl.DataFrame:
    """Key columns of decoded lines: fast objects column by column, the odd (lenient) ones field by field."""
    types = set(map(type, objects))
    lenient = [i for i, o in enumerate(objects) if type(o) is _RawKeys] if _RawKeys in types else []
    fast = [o if type(o) is _FastKeys else _NO_KEYS for o in objects] if types - {_FastKeys} else objects
    frame = _fast_columns(fast, prepared)
    if not lenient:
        return frame
    rows = []
    for index in lenient:
        obj, was_prepared = objects[index], prepared[index]
        row: dict[str, object] = {"unpaired_surrogate_in": None}
        for name in KEY_FIELDS:
            raw = bytes(getattr(obj, name))
            kind = jsontext.raw_kind(raw)
            if kind == "string" and name in _STRINGS and row["unpaired_surrogate_in"] is None and \
                    jsontext.has_surrogate(msgspec.json.decode(raw), was_prepared):
                row["unpaired_surrogate_in"] = name
            row[f"{name}_kind"] = None if kind == "null" else kind
            row[name] = jsontext.raw_json(raw, was_prepared) if kind in ("object", "array") else \
                jsontext.raw_text(raw, was_prepared)
        rows.append(row)
    odd = pl.DataFrame(rows, schema=PARSED_SCHEMA, orient="row")
    patched = frame.with_row_index("_row").update(
        odd.with_columns(pl.Series("_row", lenient, dtype=pl.UInt32)), on="_row", include_nulls=True)
    return patched.select(frame.columns)


# ----------------------------------------------------------------------------------------------
# Validating fields

_ZONE_SUFFIX = r"(?i)(z|[+-]\d{2}(:?\d{2})?)$"
# ISO 8601 date-times with a zone: extended or basic format, ``T``/``t``/space between date and
# time, minutes or seconds precision, a fraction of any length (``.`` or ``,``), ``Z`` or an offset
# as ``±HH``, ``±HH:MM`` or ``±HHMM``.
_ISO = (r"^(\d{4})-?(\d{2})-?(\d{2})[Tt ](\d{2}):?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?"
        r"(?:([Zz])|([+-])(\d{2}):?(\d{2})?)$")
_INTEGER = r"^-?(0|[1-9]\d*)$"


def _iso_timestamps(created: pl.Series) -> pl.Series:
    """ISO 8601 texts with a zone → UTC datetimes (null where a text is not one). The common RFC 3339
    form is parsed directly; the other forms are first rewritten to it."""
    frame = created.str.strip_chars().to_frame("text")
    direct = frame.select(pl.col("text").str.to_datetime(format="%+", time_zone="UTC", time_unit="us",
                                                         strict=False))["text"]
    missed = direct.is_null() & frame["text"].is_not_null()
    if not missed.any():
        return direct
    parts = frame.filter(missed).select(pl.col("text").str.extract_groups(_ISO)).unnest("text")
    field = pl.col
    canonical = parts.select(pl.format(
        "{}-{}-{}T{}:{}:{}.{}{}{}:{}",
        field("1"), field("2"), field("3"), field("4"), field("5"),
        field("6").fill_null("00"),
        field("7").fill_null("0").str.slice(0, 9).str.pad_end(9, "0"),
        pl.when(field("8").is_not_null()).then(pl.lit("+")).otherwise(field("9")),
        pl.when(field("8").is_not_null()).then(pl.lit("00")).otherwise(field("10")),
        pl.when(field("8").is_not_null()).then(pl.lit("00")).otherwise(field("11").fill_null("00")),
    ).str.to_datetime(format="%Y-%m-%dT%H:%M:%S%.9f%:z", time_zone="UTC", time_unit="us", strict=False)
        .alias("ts"))["ts"]
    values = direct.to_list()
    for index, value in zip(missed.arg_true().to_list(), canonical.to_list()):
        values[index] = value
    return pl.Series("created_at", values, dtype=pl.Datetime("us", "UTC"))


def _present(name: str) -> pl.Expr:
    return pl.col(name).is_not_null()


def _kind(name: str) -> pl.Expr:
    return pl.col(f"{name}_kind")


def validate(parsed: pl.DataFrame, settings: ValidationSettings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply the input-event rules to parsed lines.

    Returns (accepted, rejected). Accepted rows carry typed keys: ``id, created_at`` (UTC),
    ``day``, ``activity, scope, item_id, team_id`` (the default project filled in),
    ``organization_id, level`` and the verbatim ``text``.
    """
    now = settings.clock()
    latest = now + settings.max_future_skew
    skew = describe_duration(settings.max_future_skew)
    # Computed once, as columns: the rules and the accepted rows refer to them.
    parsed = parsed.with_columns(
        _iso_timestamps(parsed["created_at"]).alias("_created_ts"),
        pl.col("team_id").str.to_integer(strict=False).alias("_team_int"),
    )
    created = pl.col("created_at").str.strip_chars()
    created_ts = pl.col("_created_ts")
    created_day_text = created.str.slice(0, 10)
    team_int = pl.col("_team_int")
    integer_literal = pl.col("team_id").str.contains(_INTEGER)

    checks: list[tuple[pl.Expr, pl.Expr | str]] = []

    def reject(condition: pl.Expr, reason: pl.Expr | str) -> None:
        checks.append((condition, reason))

    for name in ("id", "activity", "scope", "created_at"):
        reject(~_present(name), f"missing required field: {name}")
    reject(~_kind("id").is_in(["string", "number"]) | ((_kind("id") == "number") & ~pl.col("id").str.contains(_INTEGER)),
           "id must be a string or an integer")
    reject(pl.col("id").str.strip_chars() == "", "id is empty")
    for name in ("activity", "scope"):
        reject(_kind(name) != "string", f"{name} must be a string")
        reject(pl.col(name).str.strip_chars() == "", f"{name} is empty")
        reject(pl.col(name).str.len_chars() > MAX_NAME_LENGTH, f"{name} longer than {MAX_NAME_LENGTH} characters")
    reject(_kind("created_at") != "string", "created_at must be a string")
    reject(~created.str.contains(_ZONE_SUFFIX), "created_at has no timezone")
    reject(
        created_ts.is_null(),
        pl.format("created_at is not an ISO-8601 timestamp: {}", created.str.slice(0, 40)),
    )
    reject(
        created_ts > pl.lit(latest),
        pl.format("created_at {} is more than {} in the future", created_day_text, pl.lit(skew)),
    )
    reject(
        created_ts.dt.date() < pl.lit(settings.start_date),
        pl.format(
            "created_at {} is before ACTIVITYLOG_START_DATE ({})",
            created_day_text, pl.lit(settings.start_date.isoformat()),
        ),
    )
    reject(_present("item_id") & ~_kind("item_id").is_in(["string", "number"]), "item_id must be a string or a number")
    reject(pl.col("item_id").str.len_chars() > MAX_ITEM_ID_LENGTH, f"item_id longer than {MAX_ITEM_ID_LENGTH} characters")
    for name in _BOOLEANS:
        reject(_present(name) & (_kind(name) != "boolean"), f"{name} must be a boolean")
    reject(_present("team_id") & ((_kind("team_id") != "number") | ~integer_literal), "team_id must be an integer")
    reject(_present("team_id") & team_int.is_null(), "team_id is out of range (a 64-bit integer)")
    reject(_present("organization_id") & (_kind("organization_id") != "string"), "organization_id must be a string")
    for name in _OBJECTS:
        reject(_present(name) & (_kind(name) != "object"), f"{name} must be an object or null")
    if settings.default_team_id is None:
        reject(
            ~_present("team_id") & ~_present("organization_id"),
            "no team_id or organization_id, and ACTIVITYLOG_DEFAULT_TEAM_ID is not set",
        )
    for name in _STRINGS:  # unpaired surrogates read as U+FFFD: a key must be exact text
        reject(pl.col("unpaired_surrogate_in") == name, f"{name} holds an unpaired UTF-16 surrogate (not text)")

    # The first failing rule names the reason: the first non-null of one flat list (a chain of ~40
    # nested when/then costs the query optimizer far more than it costs to evaluate).
    reason = pl.coalesce([pl.when(condition.fill_null(False)).then(pl.lit(message) if isinstance(message, str)
                                                                   else message) for condition, message in checks]
                         + [pl.lit(None, dtype=pl.String)])

    checked = parsed.with_columns(reason.alias("quarantine_reason"))
    rejected = checked.filter(pl.col("quarantine_reason").is_not_null()).select(REJECTED_SCHEMA.keys())

    default_team = settings.default_team_id
    accepted = checked.filter(pl.col("quarantine_reason").is_null()).select(
        pl.col("line"),
        pl.col("text"),
        pl.col("id"),
        created_ts.alias("created_at"),
        created_ts.dt.date().alias("day"),
        pl.col("activity"),
        pl.col("scope"),
        pl.col("item_id"),
        pl.when(team_int.is_not_null()).then(team_int)
        .when(pl.col("organization_id").is_null()).then(pl.lit(default_team, dtype=pl.Int64))
        .otherwise(None).alias("team_id"),
        pl.col("organization_id"),
        pl.when(_present("team_id") | pl.col("organization_id").is_null())
        .then(pl.lit("project")).otherwise(pl.lit("organization")).alias("level"),
    )
    return accepted, rejected
