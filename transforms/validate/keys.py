"""The key fields of an event line, decoded by msgspec (``transforms.jsontext``): the usual types
column by column on the fast path, the odd lines field by field from their raw JSON."""

from __future__ import annotations

from operator import attrgetter
from typing import Annotated

import msgspec
import polars as pl

from transforms import jsontext


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
