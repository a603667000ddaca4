"""A rejected filter says where: every :class:`FilterError` carries a :class:`Problem` whose path names a
place that exists in the input (a random or hostile filter mapping, or a query string), and its text
is the problem's location and message as callers show it."""

from __future__ import annotations

import json
from typing import Any, Mapping

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from transforms.filters import (ALIASES, QUERY_LISTS, QUERY_NAMES, ActivityFilter, FilterError, decode_cursor,
                                filter_from_flags, filter_from_query, query_list)
from transforms.problems import Key, Problem

FIELDS = ("start", "end", "users", "scopes", "activities", "item_ids", "team_ids", "include_organization",
          "was_impersonated", "is_system", "clients", "ip_addresses", "search", "detail_filters")

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=12), st.sampled_from(["", " ", "2024-01-15", "2024-13-01", "2024-01-15T10:00:00Z",
                                                           "yesterday", "203.0.113.*", "256.1.1.1", "web", "api*",
                                                           "FeatureFlag", "true", "1", "nope"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=8)
paths = st.one_of(st.sampled_from(["name", "changes[].field", "trigger.job_type", "items[2].id", "a..b", "user__email",
                                   "regex", "name.in", "a[].b[].c[].d[].e", "changes[", "", "x" * 501]),
                  st.text(max_size=10))
specs = st.one_of(
    st.fixed_dictionaries({}, optional={"operation": st.one_of(st.sampled_from(["exact", "contains", "in", "like"]),
                                                               json_values),
                                        "value": json_values, "op": json_values}),
    json_values)
# ``detail_filters`` stays a mapping: another shape is not rejected with a problem today (null or a number
# is a TypeError, a list is taken as it is).
detail_filters = st.dictionaries(paths, specs, max_size=3)
field_values = {
    "detail_filters": st.one_of(detail_filters, st.dictionaries(paths, specs, min_size=101, max_size=102)),
    "start": st.one_of(scalars, st.dates().map(str)), "end": st.one_of(scalars, st.dates().map(str)),
}
keys = st.one_of(st.sampled_from(FIELDS + tuple(ALIASES)), st.text(max_size=8))


@st.composite
def filter_dicts(draw) -> dict[str, Any]:
    data = {}
    for key in draw(st.lists(keys, max_size=5, unique=True)):
        canonical = ALIASES.get(key, key)
        data[key] = draw(field_values.get(canonical, json_values))
    return data


def _walk(node: Any, steps: tuple) -> bool:
    """Whether ``steps`` lead somewhere in ``node`` (a single value stands for a list of one, as the
    filter reads it)."""
    for step in steps:
        if isinstance(node, Mapping):
            if step not in node:
                return False
            node = node[step]
        elif isinstance(node, (list, tuple)):
            if not isinstance(step, int) or not 0 <= step < len(node):
                return False
            node = node[step]
        elif step != 0:
            return False
    return True


def located_in_dict(data: Mapping[str, Any], path: tuple) -> bool:
    """The path's first step is a key of ``data`` (the field's name or one of its other spellings)."""
    if not path:
        return True
    given = [key for key in data if key == path[0] or ALIASES.get(key, key) == path[0]]
    return any(_walk(data[key], path[1:]) for key in given)


def _rejection(build) -> FilterError | None:
    try:
        build()
    except FilterError as exc:
        return exc
    except OverflowError:  # a value beyond the range of dates or integers: the API answers these apart
        return None
    return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filter_dicts())
def test_a_rejected_filter_mapping_names_a_place_in_it(data):
    error = _rejection(lambda: ActivityFilter.from_dict(data, where=""))
    if error is None:
        return
    problem = error.problem
    assert isinstance(problem, Problem) and problem.message
    assert located_in_dict(data, problem.path), (problem, data)
    assert str(error).lstrip(": ") == str(problem)
    named = _rejection(lambda: ActivityFilter.from_dict(data, where="activitylog.yaml: exports[0].filter"))
    assert named.problem == problem and str(named) == f"activitylog.yaml: exports[0].filter: {problem}"


query_names = st.sampled_from(QUERY_LISTS + tuple(QUERY_NAMES.values())
                              + ("was_impersonated", "is_system", "include_organization", "detail_filters",
                                 "page_size", "ordering"))
query_values = st.one_of(st.text(max_size=12), json_values.map(json.dumps),
                         st.sampled_from(["", ",", "a,,b", "[1, 2]", '["x", ""]', "[true]", "maybe", "yes",
                                          "2024-01-15", "2024-02-30", "10.0.0.*", "999.1.1.1"]),
                         detail_filters.map(json.dumps))


def located_in_query(pairs: list[tuple[str, str]], path: tuple) -> bool:
    """The path's first step is a field whose parameter is in the query; an index is one of the
    parameter's values as the list is read; a detail filter's path is a key of the JSON object."""
    if not path:
        return False  # a problem of the query always belongs to a parameter
    field = path[0]
    given = [value for name, value in pairs if name == QUERY_NAMES.get(field, field)]
    if not given:
        return False
    if field in QUERY_LISTS:
        return _walk(query_list(given, field), path[1:])
    if field == "detail_filters":
        try:
            return _walk(json.loads(given[-1]), path[1:])
        except ValueError:
            return len(path) == 1
    return len(path) == 1


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(query_names, query_values), max_size=5))
def test_a_rejected_query_string_names_a_parameter_in_it(pairs):
    error = _rejection(lambda: filter_from_query(pairs))
    if error is None:
        return
    assert located_in_query(pairs, error.problem.path), (error.problem, pairs)
    assert str(error) == str(error.problem)


@pytest.mark.parametrize("data, path, where", [
    ({"scopes": ["FeatureFlag", ""]}, ("scopes", 1), "scopes[1]"),
    ({"start_date": "yesterday"}, ("start",), "start"),
    ({"colour": "red"}, ("colour",), ""),
    ({"detail_filters": {"changes[].field": {"operation": "like", "value": 1}}},
     ("detail_filters", "changes[].field", "operation"), "detail_filters['changes[].field'].operation"),
    ({"detail_filters": {"user__email": {"operation": "exact", "value": 1}}}, ("detail_filters", "user__email"),
     "detail_filters"),
    ({"detail_filters": {"name": {"operation": "exact"}}}, ("detail_filters", "name"), "detail_filters['name']"),
])
def test_the_problem_has_the_path_and_the_text_its_location(data, path, where):
    with pytest.raises(FilterError) as info:
        ActivityFilter.from_dict(data, where="filter")
    assert info.value.problem.path == path and info.value.problem.where == where
    assert str(info.value) == f"filter: {info.value.problem}"
    assert info.value.problems == [info.value.problem]


def test_callers_rename_the_field_not_the_message():
    with pytest.raises(FilterError) as info:
        filter_from_flags(None, lists=[("scopes", ["FeatureFlag", " "])])
    assert str(info.value.problem.renamed({"scopes": "--scope"})) == "--scope[1]: must not be empty"
    with pytest.raises(FilterError) as info:
        filter_from_flags({"scopes": "x"}, details=[("name", "like", "1")])
    assert str(info.value.problem.renamed({"detail_filters": "--detail"})) == (
        "--detail['name'].operation: 'like' is not one of exact, contains, in")
    with pytest.raises(FilterError) as info:
        decode_cursor("nope")
    assert info.value.problem.path == ("after",) and str(info.value) == str(info.value.problem)


def test_problem_rendering():
    assert Problem(("exports", 0, "filter"), "x").where == "exports[0].filter"
    assert Problem(("detail_filters", Key("a.b"), "value"), "x").where == "detail_filters['a.b'].value"
    assert str(Problem((), "must be a mapping")) == "must be a mapping"
    assert str(Problem(("colour",), "unknown field 'colour'", named=True)) == "unknown field 'colour'"
    assert Problem(("b",), "m").within("a", 0).path == ("a", 0, "b")
    assert FilterError("no location").problem == Problem((), "no location")
