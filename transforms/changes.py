"""``detail.changes`` → one row per change, with ``before``/``after`` as exact JSON text, and masking.

Exactness: ``before``/``after`` are the values' JSON text exactly as received (``1``, ``"1"``,
``1.50``, ``1e999``, ``"C:\\temp"``, objects with their key order), cut out of the detail by
msgspec (``transforms.jsontext``); ``before_text``/``after_text`` are the plain text of scalars.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from operator import attrgetter

import msgspec
import polars as pl

from transforms import jsontext
from transforms.jsontext import ABSENT

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


class _Change(msgspec.Struct, gc=False):
    type: str | None = None
    action: str | None = None
    field: str | None = None
    before: msgspec.Raw = ABSENT
    after: msgspec.Raw = ABSENT


class _Changes(msgspec.Struct, gc=False):
    changes: list[_Change] | None = None


_RawChange = msgspec.defstruct("_RawChange", [(n, msgspec.Raw, ABSENT) for n in _Change.__struct_fields__], gc=False)
_RawChanges = msgspec.defstruct("_RawChanges", [("changes", msgspec.Raw, ABSENT)], gc=False)
_CHANGES = jsontext.decoders(_Changes)
_RAW_CHANGES = msgspec.json.Decoder(_RawChanges)
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_RAW_CHANGE = msgspec.json.Decoder(_RawChange)
_SIDE_COLUMNS = ("change_type", "action", "field", "before", "after", "before_text", "after_text")


def _side(raw: bytes, prepared: str | None) -> tuple[str, str | None]:
    """(exact JSON text, plain text) of a before/after value; an absent value is JSON null."""
    kind = jsontext.raw_kind(raw)
    if kind is None:
        return "null", None
    as_json = jsontext.raw_json(raw, prepared)
    if kind in ("null", "object", "array"):
        return as_json, None
    return as_json, jsontext.raw_text(raw, prepared)


def _label(value: str | None, prepared: str | None) -> str | None:
    return None if value is None else jsontext.as_text(value, prepared)


def _raw_label(raw: bytes, prepared: str | None) -> str | None:
    kind = jsontext.raw_kind(raw)
    if kind in ("object", "array"):
        return jsontext.raw_json(raw, prepared)
    return jsontext.raw_text(raw, prepared)


def _change_entries(obj: object) -> list:
    """The entries of ``detail.changes`` (fast objects, or raw twins); none unless it is an array."""
    if isinstance(obj, _Changes):
        return obj.changes or []
    raw = bytes(obj.changes)
    if jsontext.raw_kind(raw) != "array":
        return []
    return _RAW_LIST.decode(raw)


def _change_row(entry: object, prepared: str | None) -> tuple:
    if isinstance(entry, _Change):
        before, before_text = _side(bytes(entry.before), prepared)
        after, after_text = _side(bytes(entry.after), prepared)
        return (_label(entry.type, prepared), _label(entry.action, prepared), _label(entry.field, prepared),
                before, after, before_text, after_text)
    raw = bytes(entry)
    if jsontext.raw_kind(raw) != "object":  # an entry that is not an object: kept whole, as the after value
        after, after_text = _side(raw, prepared)
        return None, None, None, "null", after, None, after_text
    change = _RAW_CHANGE.decode(raw)
    before, before_text = _side(bytes(change.before), prepared)
    after, after_text = _side(bytes(change.after), prepared)
    return (_raw_label(bytes(change.type), prepared), _raw_label(bytes(change.action), prepared),
            _raw_label(bytes(change.field), prepared), before, after, before_text, after_text)


def explode_changes(events: pl.DataFrame, rules: MaskRules = MaskRules()) -> tuple[pl.DataFrame, int]:
    """One row per entry of ``detail.changes`` of each event. Returns (changes, events without changes).

    The usual entry (an object whose type/action/field are strings or null) is read column by column:
    its ``before``/``after`` raw texts become the JSON columns as they are, and the plain-text columns
    follow from them with Polars. Other entries, and details that held unpaired surrogates, are read
    one by one."""
    with_detail = events.filter(pl.col("detail").is_not_null()).select(CHANGE_KEYS + ["detail"])
    if with_detail.height == 0:
        return pl.DataFrame(schema=_change_schema(events)), events.height
    objects, reasons, prepared = jsontext.decode_many(with_detail["detail"], _CHANGES, _RAW_CHANGES)
    fast, positions, indexes = [], [], []
    odd_rows, odd_positions, odd_indexes = [], [], []
    for position, (obj, reason, key) in enumerate(zip(objects, reasons, prepared)):
        if obj is None:
            raise ValueError(f"event {with_detail['id'][position]}: detail cannot be read: {reason}")
        for index, entry in enumerate(_change_entries(obj)):
            if key is None and isinstance(entry, _Change):
                fast.append(entry)
                positions.append(position)
                indexes.append(index)
            else:
                odd_rows.append(_change_row(entry, key))
                odd_positions.append(position)
                odd_indexes.append(index)
    without_changes = events.height - len(set(positions) | set(odd_positions))
    parts = []
    if fast:
        parts.append(_fast_sides(fast).with_columns(_position=pl.Series(positions, dtype=pl.UInt32),
                                                    change_index=pl.Series(indexes, dtype=pl.Int32)))
    if odd_rows:
        parts.append(pl.DataFrame(odd_rows, schema={name: pl.String for name in _SIDE_COLUMNS}, orient="row")
                     .with_columns(_position=pl.Series(odd_positions, dtype=pl.UInt32),
                                   change_index=pl.Series(odd_indexes, dtype=pl.Int32)))
    if not parts:
        return pl.DataFrame(schema=_change_schema(events)), without_changes
    sides = pl.concat(parts).sort("_position", "change_index")
    changes = pl.concat([
        with_detail.drop("detail")[sides["_position"]],
        sides.drop("_position"),
    ], how="horizontal").select(*CHANGE_KEYS, "change_index", *_SIDE_COLUMNS)
    return mask_changes(changes, rules), without_changes


def _fast_sides(entries: list[_Change]) -> pl.DataFrame:
    """The side columns of usual entries, vectorized from their raw before/after texts."""
    frame = pl.DataFrame({
        "change_type": pl.Series(list(map(attrgetter("type"), entries)), dtype=pl.String),
        "action": pl.Series(list(map(attrgetter("action"), entries)), dtype=pl.String),
        "field": pl.Series(list(map(attrgetter("field"), entries)), dtype=pl.String),
        "before": pl.Series([bytes(r) for r in map(attrgetter("before"), entries)], dtype=pl.Binary),
        "after": pl.Series([bytes(r) for r in map(attrgetter("after"), entries)], dtype=pl.Binary),
    }).with_columns(pl.col("before", "after").cast(pl.String))
    frame = frame.with_columns(
        # An absent value is JSON null.
        pl.when(pl.col(side) == "").then(pl.lit("null")).otherwise(pl.col(side)).alias(side)
        for side in ("before", "after"))
    texts = {side: _plain_text(frame[side]) for side in ("before", "after")}
    return frame.with_columns(texts["before"].alias("before_text"), texts["after"].alias("after_text"))


def _plain_text(json_texts: pl.Series) -> pl.Series:
    """A scalar's plain text from its JSON text: a string's characters, a number's or boolean's JSON
    text; null for null, objects and arrays."""
    first = json_texts.str.slice(0, 1)
    string = first == '"'
    escaped = string & json_texts.str.contains("\\", literal=True)
    plain = (pl.select(
        pl.when(pl.lit(first).is_in(["{", "[", "n"])).then(None)
        .when(pl.lit(string)).then(pl.lit(json_texts).str.slice(1, pl.lit(json_texts).str.len_bytes() - 2))
        .otherwise(pl.lit(json_texts)).alias("text"))["text"])
    if escaped.any():  # strings with escapes: decoded exactly, one by one
        values = plain.to_list()
        for index in escaped.arg_true().to_list():
            values[index] = msgspec.json.decode(json_texts[index])
        plain = pl.Series(values, dtype=pl.String)
    return plain


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
    """Replace masked fields' before/after inside the ``detail`` JSON text (only rows that need it).

    Everything else in the detail stays as received: its members are re-emitted as their raw JSON
    text (a repeated key keeps its last value, the rule every reader applies)."""
    if events.height == 0:
        return events
    candidates = [e.split(".", 1)[-1] for e in rules.entries]
    pattern = "|".join(re.escape(c) for c in candidates)
    # A cheap first look (a masked name appears, or escapes that could spell one); exact on the few.
    needs = (events["detail"].str.contains(f"(?i){pattern}") | events["detail"].str.contains("\\u", literal=True)
             ).fill_null(False) if pattern else None
    if needs is None or not needs.any():
        return events
    rows = events.with_row_index("_row").filter(needs)
    rewritten = [_masked_detail(d, s, rules) for d, s in zip(rows["detail"], rows["scope"])]
    fixes = pl.DataFrame({"_row": rows["_row"], "_detail": rewritten}, schema={"_row": pl.UInt32, "_detail": pl.String})
    return (
        events.with_row_index("_row").join(fixes, on="_row", how="left", maintain_order="left")
        .with_columns(pl.coalesce("_detail", "detail").alias("detail")).drop("_row", "_detail")
    )


_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_MASKED_RAW = msgspec.Raw(MASKED_JSON.encode())


def _masked_detail(detail: str, scope: str, rules: MaskRules) -> str:
    readable, prepared = jsontext.prepare(detail)
    members = _MEMBERS.decode(readable)
    entries = members.get("changes")
    if entries is None or jsontext.raw_kind(bytes(entries)) != "array":
        return detail
    changed = False
    new_entries = []
    for entry in _RAW_LIST.decode(bytes(entries)):
        if jsontext.raw_kind(bytes(entry)) == "object":
            change = _MEMBERS.decode(bytes(entry))
            field_raw = change.get("field")
            field_name = None if field_raw is None else jsontext.raw_text(bytes(field_raw), prepared)
            if rules.masks(scope, field_name):
                change["before"] = change["after"] = _MASKED_RAW
                entry, changed = msgspec.Raw(msgspec.json.encode(change)), True
        new_entries.append(entry)
    if not changed:
        return detail
    members["changes"] = msgspec.Raw(msgspec.json.encode(new_entries))
    text = msgspec.json.encode(members).decode()
    return jsontext.restore(text, prepared)
