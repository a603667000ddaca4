"""Split landing files into lines and validate them as PostHog change events, vectorized.

The rules are the README's "Landing files and validation". Every non-blank line ends up either
accepted (with typed key columns next to its verbatim text) or rejected with a precise
``quarantine_reason``; the per-line Python fallback only ever runs on lines already known to be bad.

Splitting files into lines lives in :mod:`transforms.validate.split`, the key fields' decoding in
:mod:`transforms.validate.keys`; the settings, :func:`parse_keys` and the rules (:func:`validate`)
here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import polars as pl

from transforms import jsontext
from transforms.validate.keys import (  # noqa: F401  (the names callers import from transforms.validate)
    _BOOLEANS,
    _FAST,
    _LENIENT,
    _OBJECTS,
    _STRINGS,
    KEY_FIELDS,
    PARSED_SCHEMA,
    _key_columns,
)
from transforms.validate.split import (  # noqa: F401  (the names callers import from transforms.validate)
    LINES_SCHEMA,
    LONG_LINE_PREFIX,
    REJECTED_SCHEMA,
    SPLIT_REJECTED_SCHEMA,
    UTF8_BOM,
    _array_elements,
    _member_start,
    _split_off_long,
    json_document_incomplete,
    split_json_document,
    split_ndjson,
)

MAX_NAME_LENGTH = 79  # activity, scope
MAX_ITEM_ID_LENGTH = 72


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
# Parsing JSON (transforms.jsontext: msgspec, exact, the same reader as every later stage)


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
