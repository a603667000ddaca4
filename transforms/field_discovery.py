"""The fields of ``detail`` per scope, as PostHog's ``available_filters/`` discovers them.

A path names a value inside ``detail``: object keys joined by ``.``, an array's items by ``[]``
(``changes[].field``, ``filters.groups[].properties[]``); each path carries the JSON types seen there
(``string``, ``number``, ``boolean``, ``null``, ``object``, ``array``). As in PostHog, an array
contributes the types of its first ten items, and a ``General`` scope lists the fields of a change
(``changes[].type``/``action``/``field`` strings, ``before``/``after`` any).

The cost is bounded, not proportional to the lake: at most ``sample`` distinct details per scope (the
newest first), at most :data:`MAX_DEPTH` levels into each, paths of at most :data:`MAX_NAME`
characters and :data:`MAX_FIELDS` paths per scope.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from transforms.jsontext import json_type

__all__ = ["CHANGE_FIELDS", "MAX_DEPTH", "MAX_FIELDS", "MAX_NAME", "SAMPLE", "detail_fields", "json_paths", "json_type"]

SAMPLE = 100           # distinct detail texts read per scope (the newest)
MAX_DEPTH = 16         # levels of nesting walked in one detail
MAX_FIELDS = 500       # paths listed per scope
MAX_NAME = 300         # characters of one path (a longer one, and what lies below it, is left out)
ARRAY_ITEMS = 10       # items of one array looked at (PostHog's sample size)

#: PostHog's ``Change`` fields, listed under the scope ``General``.
CHANGE_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("changes[].type", ("string",)), ("changes[].action", ("string",)), ("changes[].field", ("string",)),
    ("changes[].before", ("any",)), ("changes[].after", ("any",)),
)




def json_paths(value: Any, prefix: str = "", depth: int = 0) -> set[tuple[str, str]]:
    """``(path, type)`` of everything inside ``value`` (a parsed ``detail``), ``MAX_DEPTH`` levels deep."""
    found: set[tuple[str, str]] = set()
    _walk(value, prefix, depth, found.add)
    return found


def _walk(value: Any, prefix: str, depth: int, add: Any) -> None:
    if depth >= MAX_DEPTH:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if len(path) > MAX_NAME:
                continue
            add((path, json_type(item)))
            if isinstance(item, dict | list):
                _walk(item, path, depth + 1, add)
    elif isinstance(value, list):
        path = f"{prefix}[]"
        if len(path) > MAX_NAME:
            return
        for item in value[:ARRAY_ITEMS]:
            if item is not None:
                add((path, json_type(item)))
                if isinstance(item, dict | list):
                    _walk(item, path, depth + 1, add)


def _fields(pairs: set[tuple[str, str]]) -> list[dict[str, Any]]:
    types: dict[str, set[str]] = {}
    for path, kind in pairs:
        types.setdefault(path, set()).add(kind)
    return [{"name": name, "types": sorted(kinds)} for name, kinds in sorted(types.items())[:MAX_FIELDS]]


def detail_fields(rows: pl.LazyFrame, sample: int = SAMPLE) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{scope: {"fields": [{name, types}]}}`` for ``rows`` (``activity_log`` rows: ``scope``, ``detail``
    as JSON text, ``created_at``), from the newest ``sample`` distinct details of each scope; plus
    ``General`` with the fields of a change."""
    sampled = (rows.filter(pl.col("detail").is_not_null() & pl.col("scope").is_not_null())
               .group_by("scope", "detail").agg(pl.col("created_at").max())
               .sort("created_at", descending=True)
               .group_by("scope").head(sample)
               .select("scope", "detail").collect())
    per_scope: dict[str, set[tuple[str, str]]] = {}
    for scope, text in sampled.iter_rows():
        try:
            detail = json.loads(text)
        except (ValueError, RecursionError):
            continue
        if isinstance(detail, dict):
            _walk(detail, "", 0, per_scope.setdefault(scope, set()).add)
    result = {scope: {"fields": _fields(pairs)} for scope, pairs in sorted(per_scope.items())}
    general = result.setdefault("General", {"fields": []})["fields"]
    known = {f["name"]: f for f in general}
    for name, kinds in CHANGE_FIELDS:
        if name in known:
            known[name]["types"] = sorted(set(known[name]["types"]) | set(kinds))
        else:
            general.append({"name": name, "types": list(kinds)})
    return result
