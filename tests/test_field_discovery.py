"""transforms/field_discovery.py: the detail fields of available_filters/, against an independent reading of
the paths (hypothesis), and its bounds (sample per scope, depth, fields per scope)."""

import json
from datetime import datetime, timedelta, timezone

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms import field_discovery
from transforms.field_discovery import MAX_DEPTH, MAX_NAME, detail_fields, json_paths, json_type

keys = st.text(alphabet="abcxyz_1", min_size=1, max_size=4) | st.text(alphabet="k", min_size=100, max_size=160)
values = st.recursive(st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=False) | st.text(max_size=3),
                      lambda inner: st.lists(inner, max_size=12) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=30)
details = st.dictionaries(keys, values, max_size=5)


def resolve(value, path: str) -> list:
    """Every value ``path`` reaches in ``value``: ``a.b`` object keys, ``a[]`` the first ten non-null items."""
    found = [value]
    for segment in path.split("."):
        name, arrays = segment.rstrip("[]"), (len(segment) - len(segment.rstrip("[]"))) // 2
        found = [v[name] for v in found if isinstance(v, dict) and name in v]
        for _ in range(arrays):
            found = [item for v in found if isinstance(v, list) for item in v[:10] if item is not None]
    return found


def every_path(value, prefix="", depth=0):
    """Every path of ``value`` down to MAX_DEPTH containers (independently of json_paths)."""
    if depth >= MAX_DEPTH:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            if len(path) > MAX_NAME:
                continue
            yield path
            yield from every_path(item, path, depth + 1)
    elif isinstance(value, list) and len(prefix) + 2 <= MAX_NAME:
        for item in value[:10]:
            if item is not None:
                yield prefix + "[]"
                yield from every_path(item, prefix + "[]", depth + 1)


@settings(max_examples=200, deadline=None)
@given(details)
def test_paths_are_exactly_those_reachable_with_their_types(detail):
    found = json_paths(detail)
    by_path: dict[str, set[str]] = {}
    for path, kind in found:
        by_path.setdefault(path, set()).add(kind)
    assert set(by_path) == set(every_path(detail))
    for path, kinds in by_path.items():
        assert kinds == {json_type(v) for v in resolve(detail, path)}, path


def test_posthog_patterns():
    detail = {"field": "v", "obj": [], "arr": [{"field": 1}, {"field": "x"}, None],
              "deep": {"list": [[{"leaf": True}]]}}
    found = {(p, t) for p, t in json_paths(detail)}
    assert {("field", "string"), ("obj", "array"), ("arr", "array"), ("arr[]", "object"), ("arr[].field", "number"),
            ("arr[].field", "string"), ("deep", "object"), ("deep.list", "array"), ("deep.list[]", "array"),
            ("deep.list[][]", "object"), ("deep.list[][].leaf", "boolean")} == found


def _rows(entries):
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return pl.LazyFrame({"scope": [s for s, _ in entries], "detail": [None if d is None else json.dumps(d)
                                                                      for _, d in entries],
                         "created_at": [start + timedelta(minutes=i) for i in range(len(entries))]})


def test_detail_fields_shape_and_general_scope():
    result = detail_fields(_rows([("Flag", {"a": 1}), ("Flag", {"a": "x", "b": None}), ("Insight", None),
                                  (None, {"ignored": 1}), ("Flag", None)]))
    assert result["Flag"] == {"fields": [{"name": "a", "types": ["number", "string"]},
                                         {"name": "b", "types": ["null"]}]}
    assert "Insight" not in result and "ignored" not in json.dumps(result)
    assert [f["name"] for f in result["General"]["fields"]] == [
        "changes[].type", "changes[].action", "changes[].field", "changes[].before", "changes[].after"]


def test_detail_fields_read_only_the_newest_sample_per_scope():
    entries = [("Flag", {f"old_{i}": 1}) for i in range(5)] + [("Flag", {"newest": 1}), ("Other", {"o": 1})]
    names = {f["name"] for f in detail_fields(_rows(entries), sample=2)["Flag"]["fields"]}
    assert names == {"old_4", "newest"}
    assert detail_fields(_rows(entries), sample=2)["Other"]["fields"] == [{"name": "o", "types": ["number"]}]


def test_depth_and_field_count_are_bounded(monkeypatch):
    deep: dict = {}
    node = deep
    for _ in range(MAX_DEPTH + 10):
        node["n"] = {}
        node = node["n"]
    assert max(len(p.split(".")) for p, _ in json_paths(deep)) == MAX_DEPTH
    monkeypatch.setattr(field_discovery, "MAX_FIELDS", 3)
    wide = detail_fields(_rows([("Flag", {f"k{i:02d}": i for i in range(20)})]))
    assert [f["name"] for f in wide["Flag"]["fields"]] == ["k00", "k01", "k02"]


def test_a_detail_that_is_not_an_object_or_not_json_is_skipped():
    frame = pl.LazyFrame({"scope": ["Flag", "Flag"], "detail": ["[1, 2]", "{not json"],
                          "created_at": [datetime(2024, 1, 1, tzinfo=timezone.utc)] * 2})
    assert "Flag" not in detail_fields(frame)


def test_long_paths_are_left_out_with_what_lies_below():
    long_key = "k" * (MAX_NAME + 1)
    found = {p for p, _ in json_paths({"short": {"x": 1}, long_key: {"below": 1}, "a": {"b" * MAX_NAME: 1}})}
    assert found == {"short", "short.x", "a"}
