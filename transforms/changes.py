"""``detail.changes`` → one row per change, with ``before``/``after`` as exact JSON text, and masking.

Exactness: ``before``/``after`` keep their JSON type (``1``, ``"1"``, ``true``, ``null``, objects and
lists stay distinct); numbers are written in normal form (``1.50`` → ``1.5``). The byte-exact line
stays in ``activity_raw.payload``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import polars as pl

from transforms.ndjson import ndjson_buffer

MASKED = "masked"
MASKED_JSON = json.dumps(MASKED)
DEFAULT_MASKED_FIELDS = ("password", "encrypted_inputs", "secret", "token", "api_key", "Integration.config")

CHANGE_SCHEMA = {"type": pl.String, "action": pl.String, "field": pl.String, "before": pl.String, "after": pl.String}
CHANGE_KEYS = [
    "id", "day", "created_at", "level", "team_id", "organization_id", "scope", "item_id", "activity",
    "actor_uuid", "actor_email",
]
CHANGE_COLUMNS = CHANGE_KEYS + [
    "change_index", "change_type", "action", "field", "before", "after", "before_text", "after_text", "masked",
]


@dataclass(frozen=True)
class MaskRules:
    """Fields whose values are secrets: ``field`` for every scope, ``Scope.field`` for one scope."""

    entries: tuple[str, ...] = field(default=DEFAULT_MASKED_FIELDS)

    def expression(self, scope: str = "scope", field_name: str = "field") -> pl.Expr:
        """True where the change's field is masked (field names compare case-insensitively)."""
        field_lower = pl.col(field_name).str.to_lowercase()
        everywhere = [e.lower() for e in self.entries if "." not in e]
        matches = [field_lower.is_in(everywhere)] if everywhere else []
        for entry in (e for e in self.entries if "." in e):
            entry_scope, entry_field = entry.split(".", 1)
            matches.append((pl.col(scope) == entry_scope) & (field_lower == entry_field.lower()))
        return pl.any_horizontal(matches).fill_null(False) if matches else pl.lit(False)

    def masks(self, scope: str | None, field_name: str | None) -> bool:
        if field_name is None:
            return False
        lowered = field_name.lower()
        return any(
            (e.split(".", 1)[1].lower() == lowered and e.split(".", 1)[0] == scope) if "." in e else e.lower() == lowered
            for e in self.entries
        )


def _read_json_lines(texts: pl.Series, schema: dict, *, ignore_errors: bool = False) -> pl.DataFrame:
    return pl.read_ndjson(ndjson_buffer(texts), schema=schema, infer_schema_length=None, ignore_errors=ignore_errors)


def _json_text(value: str, quote_first_char: str) -> pl.Expr:
    """JSON text of a value read as a Polars String: strings get quoted back, other types are
    already their JSON text; a missing value is JSON null."""
    quoted = pl.struct(pl.col(value).alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}")
    return (
        pl.when(pl.col(quote_first_char) == '"').then(quoted)
        .otherwise(pl.col(value).fill_null("null"))
    )


def _scalar_text(value: str, quote_first_char: str) -> pl.Expr:
    """The value as plain text when it is a string, number or boolean; null for null, objects, lists."""
    first = pl.col(quote_first_char)
    return pl.when(first.is_in(["{", "[", "n"]) | first.is_null()).then(None).otherwise(pl.col(value))


def explode_changes(events: pl.DataFrame, rules: MaskRules = MaskRules()) -> tuple[pl.DataFrame, int]:
    """One row per entry of ``detail.changes`` of each event. Returns (changes, events without changes)."""
    with_detail = events.filter(pl.col("detail").is_not_null()).select(CHANGE_KEYS + ["detail"])
    if with_detail.height == 0:
        return pl.DataFrame(schema=_change_schema(events)), events.height
    lists = _read_json_lines(with_detail["detail"], {"changes": pl.List(pl.String)}, ignore_errors=True)
    exploded = (
        with_detail.drop("detail")
        .with_columns(lists["changes"].alias("_change"))
        .filter(pl.col("_change").list.len() > 0)
        .with_columns(pl.int_ranges(pl.col("_change").list.len()).alias("change_index"))
        .explode("_change", "change_index")
    )
    without_changes = events.height - exploded["id"].n_unique()
    if exploded.height == 0:
        return pl.DataFrame(schema=_change_schema(events)), without_changes
    # The element texts come from Polars' own serializer (`"key": value`), so the character after
    # `"before": ` tells a string from a number. When a key occurs more than once in an element (a
    # nested object with the same key), Python's parser decides that row.
    ambiguous = (pl.col("_change").str.count_matches('"before": ', literal=True) > 1) | (
        pl.col("_change").str.count_matches('"after": ', literal=True) > 1
    ) | ~pl.col("_change").str.starts_with("{")
    exploded = exploded.with_columns(ambiguous.alias("_python"))
    fast = exploded.filter(~pl.col("_python"))
    slow = exploded.filter(pl.col("_python"))
    parts = []
    if fast.height:
        fields = _read_json_lines(fast["_change"], CHANGE_SCHEMA)
        parts.append(
            pl.concat([fast, fields.rename({"type": "change_type"})], how="horizontal").with_columns(
                pl.col("_change").str.extract(r'"before": (.)').alias("_before_first"),
                pl.col("_change").str.extract(r'"after": (.)').alias("_after_first"),
            )
        )
    if slow.height:
        parts.append(_python_fields(slow))
    changes = pl.concat(parts, how="diagonal_relaxed").select(
        *CHANGE_KEYS,
        pl.col("change_index").cast(pl.Int32),
        "change_type",
        "action",
        "field",
        _json_text("before", "_before_first").alias("before"),
        _json_text("after", "_after_first").alias("after"),
        _scalar_text("before", "_before_first").alias("before_text"),
        _scalar_text("after", "_after_first").alias("after_text"),
    )
    return mask_changes(changes, rules), without_changes


def _python_fields(rows: pl.DataFrame) -> pl.DataFrame:
    """The rare elements the fast path cannot read: parse each with Python."""
    records = []
    for text in rows["_change"]:
        try:
            change = json.loads(text)
        except json.JSONDecodeError:
            change = text
        if not isinstance(change, dict):  # a change entry that is not an object: keep it whole
            change = {"after": change}
        record = {"change_type": _str(change.get("type")), "action": _str(change.get("action")),
                  "field": _str(change.get("field"))}
        for side in ("before", "after"):
            value = change.get(side)
            encoded = json.dumps(value, ensure_ascii=False)
            record[side] = value if isinstance(value, str) else (None if value is None else encoded)
            record[f"_{side}_first"] = encoded[0] if side in change else None
        records.append(record)
    extra = pl.DataFrame(records, schema={
        "change_type": pl.String, "action": pl.String, "field": pl.String, "before": pl.String,
        "_before_first": pl.String, "after": pl.String, "_after_first": pl.String,
    }, orient="row")
    return pl.concat([rows, extra], how="horizontal")


def _str(value: object) -> str | None:
    return None if value is None else value if isinstance(value, str) else json.dumps(value)


def mask_changes(changes: pl.DataFrame, rules: MaskRules) -> pl.DataFrame:
    masked = rules.expression()
    return changes.with_columns(
        *(pl.when(masked).then(pl.lit(MASKED_JSON)).otherwise(pl.col(c)).alias(c) for c in ("before", "after")),
        *(pl.when(masked).then(pl.lit(MASKED)).otherwise(pl.col(c)).alias(c) for c in ("before_text", "after_text")),
        masked.alias("masked"),
    )


def _change_schema(events: pl.DataFrame) -> dict:
    schema = {k: events.schema[k] for k in CHANGE_KEYS if k in events.schema}
    schema.update({"change_index": pl.Int32, "change_type": pl.String, "action": pl.String, "field": pl.String,
                   "before": pl.String, "after": pl.String, "before_text": pl.String, "after_text": pl.String,
                   "masked": pl.Boolean})
    return schema


def mask_detail(events: pl.DataFrame, rules: MaskRules) -> pl.DataFrame:
    """Replace masked fields' before/after inside the ``detail`` JSON text (only rows that need it)."""
    if events.height == 0:
        return events
    candidates = [e.split(".", 1)[-1] for e in rules.entries]
    pattern = "|".join(f'"field": "{c}"' for c in candidates)
    # Only events whose detail names a maskable field are re-encoded (with Python's json).
    needs = events["detail"].str.contains(f"(?i){pattern}").fill_null(False) if pattern else None
    if needs is None or not needs.any():
        return events
    def rewrite(detail: str, scope: str) -> str:
        value = json.loads(detail)
        for change in value.get("changes") or []:
            if isinstance(change, dict) and rules.masks(scope, change.get("field")):
                change["before"] = change["after"] = MASKED
        return json.dumps(value, ensure_ascii=False)
    rows = events.with_row_index("_row").filter(needs)
    rewritten = [rewrite(d, s) for d, s in zip(rows["detail"], rows["scope"])]
    fixes = pl.DataFrame({"_row": rows["_row"], "_detail": rewritten}, schema={"_row": pl.UInt32, "_detail": pl.String})
    return (
        events.with_row_index("_row").join(fixes, on="_row", how="left", maintain_order="left")
        .with_columns(pl.coalesce("_detail", "detail").alias("detail")).drop("_row", "_detail")
    )
