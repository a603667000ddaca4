"""The filter language's JSON semantics of detail filters: JSON equality keeps types apart, paths walk objects
and arrays, the vectorized expression agrees with a plain reading of PostHog's rule on arbitrary JSON (a
property), escaped keys and values compare decoded, type variants are PostHog's."""

import json

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms.filters import DetailFilter, json_equal, type_variants


def test_json_equality_keeps_types_apart():
    assert json_equal(1, 1.0) and json_equal(100, 1e2)
    assert not json_equal(1, "1") and not json_equal(True, 1) and not json_equal(0, False)
    assert not json_equal(None, False) and json_equal(None, None)
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert not json_equal([1, 2], [2, 1]) and not json_equal({"a": 1}, {"a": 1, "b": 2})


def test_paths_walk_objects_and_arrays():
    detail = {"changes": [{"field": "a", "after": [1, 2]}, {"field": "b", "after": {"x": "Y"}}],
              "trigger": {"job_type": "Export"}}
    assert DetailFilter("changes[].field", "exact", "b").matches(detail)
    assert DetailFilter("changes[1].field", "exact", "b").matches(detail)
    assert not DetailFilter("changes[0].field", "exact", "b").matches(detail)
    assert DetailFilter("changes[].after[]", "in", [2, 3]).matches(detail)
    assert DetailFilter("changes[].after.x", "contains", "y").matches(detail)
    assert DetailFilter("changes[].after", "contains", '"x":"y"').matches(detail)  # compact JSON text form
    assert DetailFilter("trigger.job_type", "contains", "EXPORT").matches(detail)
    assert not DetailFilter("trigger.job_type.deeper", "exact", "Export").matches(detail)
    assert not DetailFilter("missing[]", "exact", 1).matches(detail)


# -- PostHog's rule, read plainly, and its type variants ---------------------------------------


def posthog_variants(value):
    """A plain reading of PostHog's ``_get_type_variants`` (posthog/api/advanced_activity_logs/filters.py)."""
    out = [value]
    if isinstance(value, str) and value.strip():
        s = value.strip()
        try:
            if str(int(s)) == s:
                out.append(int(s))
        except ValueError:
            pass
        try:
            f = float(s)
            if str(f) == s or (s.endswith(".0") and str(f) == s[:-2]):
                out.append(f)
        except ValueError:
            pass
        if s.lower() in ("true", "1"):
            out.append(True)
        elif s.lower() in ("false", "0"):
            out.append(False)
    elif isinstance(value, bool):
        out += [str(value).lower(), str(value), "1" if value else "0"]
    elif isinstance(value, (int, float)):
        out.append(str(value))
    return out


def jsonb_equal(stored, variant):
    """PostgreSQL jsonb equality of scalars: the JSON types apart, numbers by value; a list or an object
    compares as its compact JSON text (the documented rule of this project)."""
    kind = lambda v: "bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else type(v).__name__  # noqa: E731
    if isinstance(stored, (list, dict)) or isinstance(variant, (list, dict)):
        return (isinstance(stored, (list, dict)) and isinstance(variant, (list, dict))
                and json.dumps(stored, separators=(",", ":"), ensure_ascii=False)
                == json.dumps(variant, separators=(",", ":"), ensure_ascii=False))
    return kind(stored) == kind(variant) and stored is not None and stored == variant


def reference(document, path, operation, value):
    """PostHog's rule, per value the path reaches ([] is every element)."""
    found = [document]
    for step in path.replace("[", ".[").split("."):
        nxt = []
        for current in found:
            if step == "[]":
                nxt += current if isinstance(current, list) else []
            elif step.startswith("["):
                index = int(step[1:-1])
                nxt += [current[index]] if isinstance(current, list) and index < len(current) else []
            elif isinstance(current, dict) and step in current:
                nxt.append(current[step])
        found = nxt
    if operation == "contains":
        needle = (value if isinstance(value, str) else json.dumps(value)).lower()
        texts = [v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), ensure_ascii=False)
                 for v in found if v is not None]
        return any(needle in text.lower() for text in texts)
    options = value if operation == "in" else [value]
    variants = [variant for option in options for variant in posthog_variants(option)]
    return any(jsonb_equal(stored, variant) for stored in found for variant in variants)


_TEXT = st.text(alphabet=st.sampled_from(list("abAB01 .-+e\"\\:,[]{}é")), max_size=6)
_NUMERIC_TEXT = st.sampled_from(["42", "42.0", " 42 ", "-0", "-0.0", "1", "0", "1.0", "1.5", "1e5", "007", "true",
                                 "True", "FALSE", "false", "", " ", "nan", "inf", "1_000"])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 53), 2 ** 53),
                     st.floats(allow_nan=False, allow_infinity=False), _TEXT, _NUMERIC_TEXT,
                     st.sampled_from([0, 1, 42, 42.0, 1.5, -0.0, 100000.0]))
_STORED = st.one_of(_SCALARS, st.lists(_SCALARS, max_size=4))
_DETAILS = st.fixed_dictionaries({}, optional={
    "v": _STORED, "items": st.lists(st.one_of(st.fixed_dictionaries({"id": _STORED}), _SCALARS), max_size=4)})
_FILTERS = st.one_of(
    st.tuples(st.just("exact"), st.one_of(_SCALARS.filter(lambda v: v is not None), st.lists(_SCALARS, max_size=2))),
    st.tuples(st.just("in"), st.lists(_SCALARS.filter(lambda v: v is not None), min_size=1, max_size=3)),
    st.tuples(st.just("contains"), st.one_of(_TEXT, _NUMERIC_TEXT, st.integers(-100, 100), st.booleans())
              .filter(lambda v: v != "")),
)
_PATHS = st.sampled_from(["v", "v[]", "v[1]", "items[].id", "items[]", "items[].id[]", "items[0].id"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(details=st.lists(_DETAILS, min_size=1, max_size=6), path=_PATHS, spec=_FILTERS)
def test_detail_expression_agrees_with_a_plain_reading_of_posthogs_rule(details, path, spec):
    """Arbitrary JSON scalars and arrays in ``detail``, arbitrary filter values: the vectorized Polars
    expression selects exactly the rows the plain-Python reading of PostHog's rule selects."""
    operation, value = spec
    frame = pl.DataFrame({"detail": [json.dumps(d, ensure_ascii=False) for d in details],
                          "changed_fields": [[] for _ in details]})
    detail_filter = DetailFilter(path, operation, value)
    got = frame.select(detail_filter.expression()).to_series().to_list()
    want = [reference(d, path, operation, value) for d in details]
    assert got == want
    assert [detail_filter.matches(d) for d in details] == want


def test_escaped_keys_and_values_compare_decoded():
    frame = pl.DataFrame({"detail": ['{"caf\\u00e9": "\\u00e9t\\u00e9", "q": "a\\"b"}', '{"café": "été"}', "null", None]})
    assert frame.select(DetailFilter("café", "exact", "été").expression()).to_series().to_list() == [
        True, True, False, False]
    assert frame.select(DetailFilter("q", "contains", 'A"B').expression()).to_series().to_list() == [
        True, False, False, False]


def test_type_variants_are_posthogs():
    assert type_variants("42") == ["42", 42]
    assert type_variants("42.0") == ["42.0", 42.0]
    assert type_variants("1") == ["1", 1, True]
    assert type_variants("FALSE") == ["FALSE", False]
    assert type_variants(True) == [True, "true", "True", "1"]
    assert type_variants(42) == [42, "42"] and type_variants(1.5) == [1.5, "1.5"]
    assert type_variants("1_000") == ["1_000"] and type_variants(" ") == [" "]
