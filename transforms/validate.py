"""Split landing files into lines and validate them as PostHog change events, vectorized.

The rules are DESIGN.md "Input event". Every non-blank line ends up either accepted (with typed key
columns next to its verbatim text) or rejected with a precise ``quarantine_reason``; the per-line
Python fallback only ever runs on lines that are already known to be bad.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import polars as pl

MAX_NAME_LENGTH = 79  # activity, scope
MAX_ITEM_ID_LENGTH = 72
UTF8_BOM = b"\xef\xbb\xbf"

# Top-level fields read for validation and keys; everything else stays in the verbatim payload.
# Declared as strings so Polars hands back numbers as their text and objects as JSON text.
KEY_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "activity": pl.String(),
    "scope": pl.String(),
    "item_id": pl.String(),
    "created_at": pl.String(),
    "user": pl.String(),
    "detail": pl.String(),
    "is_system": pl.String(),
    "was_impersonated": pl.String(),
    "team_id": pl.String(),
    "organization_id": pl.String(),
}

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
    rejected = pl.DataFrame(schema=SPLIT_REJECTED_SCHEMA)
    if max_line_bytes is not None and len(content) > max_line_bytes:
        size = pl.col("text").str.len_bytes()
        long = non_blank.filter(size > max_line_bytes)
        if long.height:
            non_blank = non_blank.filter(size <= max_line_bytes)
            rejected = long.select(
                pl.col("line"),
                pl.col("text").str.slice(0, _prefix_chars(max_line_bytes)),
                pl.format(_too_long_reason(max_line_bytes), size).alias("quarantine_reason"),
                pl.lit(None, dtype=pl.Binary).alias("raw_bytes"),
            )
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
    ``max_line_bytes`` (as compact JSON) is rejected like a long NDJSON line.
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
    if isinstance(document, dict) and isinstance(document.get("results"), list):
        elements = document["results"]
    elif isinstance(document, list):
        elements = document
    elif isinstance(document, dict) and "id" in document:
        elements = [document]  # a single event in a .json file
    else:
        reason = "JSON document is neither an array of events nor a page with a \"results\" array"
        return pl.DataFrame(schema=LINES_SCHEMA), whole(reason), False
    rows = [(i, json.dumps(e, ensure_ascii=False, separators=(",", ":"))) for i, e in enumerate(elements, 1)]
    lines = pl.DataFrame(rows, schema=LINES_SCHEMA, orient="row")
    rejected = empty_rejected
    if max_line_bytes is not None and len(content) > max_line_bytes:
        size = pl.col("text").str.len_bytes()
        long = lines.filter(size > max_line_bytes)
        if long.height:
            lines = lines.filter(size <= max_line_bytes)
            rejected = long.select(
                pl.col("line"),
                pl.col("text").str.slice(0, _prefix_chars(max_line_bytes)),
                pl.format(_too_long_reason(max_line_bytes), size).alias("quarantine_reason"),
                pl.lit(None, dtype=pl.Binary).alias("raw_bytes"),
            )
    return lines, rejected, False


# ----------------------------------------------------------------------------------------------
# Parsing JSON


def _json_error(text: str) -> str | None:
    """Why a line is not a JSON object, or None if it is one (exact messages, Python's parser)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"invalid JSON at column {exc.colno}: {exc.msg}"
    except RecursionError:
        return "invalid JSON: nested too deeply"
    if not isinstance(value, dict):
        return f"not a JSON object (found {_json_type(value)})"
    return None


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


# First try: `detail` and `user` as an empty struct. Polars then checks "object or null" while
# parsing without turning each object back into JSON text (the costly part), and raises on any other
# type, in which case the batch is read again with the text schema and the rules decide.
_PLACEHOLDER_OBJECT = pl.Struct({"__object__": pl.Null})
FAST_KEY_SCHEMA = {**KEY_SCHEMA, "user": _PLACEHOLDER_OBJECT, "detail": _PLACEHOLDER_OBJECT}


def _read_keys(data: bytes) -> pl.DataFrame:
    try:
        keys = pl.read_ndjson(io.BytesIO(data), schema=FAST_KEY_SCHEMA, infer_schema_length=None)
    except pl.exceptions.PolarsError:
        return pl.read_ndjson(io.BytesIO(data), schema=KEY_SCHEMA, infer_schema_length=None)
    # The rules only need to know that an object was there.
    return keys.with_columns(
        pl.when(pl.col(name).is_not_null()).then(pl.lit("{}")).otherwise(None).alias(name)
        for name in ("user", "detail")
    )


def _joined(texts: pl.Series) -> bytes:
    return texts.str.join("\n").item().encode()


def parse_keys(
    lines: pl.DataFrame, content: bytes | None = None, chunk_rows: int = 4096
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse the key fields of each line. Returns (parsed lines + key columns, rejected lines).

    ``content``: the file's bytes when they hold exactly ``lines`` (see ``split_ndjson``), read
    directly instead of re-joining the lines. Fast path: one Polars NDJSON read of the whole file;
    if any line is not a JSON object, it is re-read in chunks and only failing chunks are checked
    line by line.
    """
    if lines.height == 0:
        return lines.with_columns(pl.lit(None, dtype=t).alias(k) for k, t in KEY_SCHEMA.items()), \
            pl.DataFrame(schema=REJECTED_SCHEMA)
    try:
        keys = _read_keys(content if content is not None else _joined(lines["text"]))
        if keys.height == lines.height:
            return pl.concat([lines, keys], how="horizontal"), pl.DataFrame(schema=REJECTED_SCHEMA)
    except pl.exceptions.PolarsError:
        pass
    parsed: list[pl.DataFrame] = []
    rejected: list[tuple[int, str, str]] = []
    for start in range(0, lines.height, chunk_rows):
        chunk = lines.slice(start, chunk_rows)
        try:
            parsed.append(pl.concat([chunk, _read_keys(_joined(chunk["text"]))], how="horizontal"))
            continue
        except pl.exceptions.PolarsError:
            pass
        errors = [_json_error(t) for t in chunk["text"]]
        good = chunk.filter(pl.Series([e is None for e in errors]))
        rejected.extend(
            (n, t, e) for n, t, e in zip(chunk["line"], chunk["text"], errors) if e is not None
        )
        if good.height:
            try:
                parsed.append(pl.concat([good, _read_keys(_joined(good["text"]))], how="horizontal"))
            except pl.exceptions.PolarsError as exc:  # valid for Python, not for Polars: rare
                rejected.extend(
                    (n, t, f"JSON object could not be read: {exc}".splitlines()[0])
                    for n, t in zip(good["line"], good["text"])
                )
    frame = pl.concat(parsed) if parsed else lines.clear().with_columns(
        pl.lit(None, dtype=t).alias(k) for k, t in KEY_SCHEMA.items()
    )
    return frame, pl.DataFrame(rejected, schema=REJECTED_SCHEMA, orient="row")


# ----------------------------------------------------------------------------------------------
# Validating fields

_ZONE_SUFFIX = r"(?i)(z|[+-]\d{2}(:?\d{2})?)$"


CONTAINER_RULES: dict[str, tuple[str, tuple[type, ...]]] = {
    "id": ("id must be a string", (str, int)),
    "item_id": ("item_id must be a string or a number", (str, int, float)),
    "organization_id": ("organization_id must be a string", (str,)),
    "detail": ("detail must be an object or null", (dict, type(None))),
    "user": ("user must be an object or null", (dict, type(None))),
}


def _present(name: str) -> pl.Expr:
    return pl.col(name).is_not_null()


def _looks_like_container(name: str) -> pl.Expr:
    return pl.col(name).str.starts_with("{") | pl.col(name).str.starts_with("[")


def validate(parsed: pl.DataFrame, settings: ValidationSettings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply the input-event rules to parsed lines.

    Returns (accepted, rejected). Accepted rows carry typed keys: ``id, created_at`` (UTC),
    ``day``, ``activity, scope, item_id, team_id`` (the default project filled in),
    ``organization_id, level`` and the verbatim ``text``.
    """
    now = settings.clock()
    latest = now + settings.max_future_skew
    skew = describe_duration(settings.max_future_skew)
    created = pl.col("created_at").str.strip_chars()
    created_ts = created.str.to_datetime(format="%+", time_zone="UTC", time_unit="us", strict=False)
    created_day_text = created.str.slice(0, 10)
    team_int = pl.col("team_id").str.to_integer(strict=False)

    checks: list[tuple[pl.Expr, pl.Expr | str]] = []

    def reject(condition: pl.Expr, reason: pl.Expr | str) -> None:
        checks.append((condition, reason))

    for name in ("id", "activity", "scope", "created_at"):
        reject(~_present(name), f"missing required field: {name}")
    reject(pl.col("id").str.strip_chars() == "", "id is empty")
    for name in ("activity", "scope"):
        reject(pl.col(name).str.strip_chars() == "", f"{name} is empty")
        reject(pl.col(name).str.len_chars() > MAX_NAME_LENGTH, f"{name} longer than {MAX_NAME_LENGTH} characters")
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
    reject(pl.col("item_id").str.len_chars() > MAX_ITEM_ID_LENGTH, f"item_id longer than {MAX_ITEM_ID_LENGTH} characters")
    for name in ("is_system", "was_impersonated"):
        reject(_present(name) & ~pl.col(name).is_in(["true", "false"]), f"{name} must be a boolean")
    reject(_present("team_id") & team_int.is_null(), "team_id must be an integer")
    if settings.default_team_id is None:
        reject(
            ~_present("team_id") & ~_present("organization_id"),
            "no team_id or organization_id, and ACTIVITYLOG_DEFAULT_TEAM_ID is not set",
        )
    # Type rules Polars can only suspect (see _confirm_container_suspects); they go last so that a
    # suspect row has passed every other rule.
    for name, (message, _) in CONTAINER_RULES.items():
        if name in ("detail", "user"):
            reject(_present(name) & ~pl.col(name).str.starts_with("{"), message)
        else:
            reject(_looks_like_container(name), message)

    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    for condition, message in reversed(checks):  # the first failing rule names the reason
        value = pl.lit(message) if isinstance(message, str) else message
        reason = pl.when(condition.fill_null(False)).then(value).otherwise(reason)

    checked = parsed.with_columns(reason.alias("quarantine_reason"))
    checked = _confirm_container_suspects(checked)
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


def _confirm_container_suspects(checked: pl.DataFrame) -> pl.DataFrame:
    """String values that merely start with ``{``/``[`` are not containers: re-check those rows exactly.

    Polars returns objects as JSON text when the schema says String, so ``"id": {"a": 1}`` and
    ``"id": "{a"`` look alike; the handful of such rows are decided with Python's parser.
    """
    messages = {message for message, _ in CONTAINER_RULES.values()}
    suspects = checked.filter(pl.col("quarantine_reason").is_in(list(messages)))
    if suspects.height == 0:
        return checked
    decided: dict[int, str | None] = {}
    for line, text in suspects.select("line", "text").iter_rows():
        event = json.loads(text)
        decided[line] = next(
            (
                message
                for name, (message, allowed) in CONTAINER_RULES.items()
                if name in event and not (isinstance(event[name], allowed) and not isinstance(event[name], bool))
            ),
            None,
        )
    verdicts = pl.DataFrame(
        {"line": list(decided), "confirmed_reason": list(decided.values())},
        schema={"line": pl.Int64, "confirmed_reason": pl.String},
    )
    return (
        checked.join(verdicts, on="line", how="left", maintain_order="left")
        .with_columns(
            pl.when(pl.col("quarantine_reason").is_in(list(messages)))
            .then(pl.col("confirmed_reason"))
            .otherwise(pl.col("quarantine_reason"))
            .alias("quarantine_reason")
        )
        .drop("confirmed_reason")
    )
