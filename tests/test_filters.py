"""The filter language: validation, JSON semantics of detail filters, every field, windows, cursors."""

import json
from datetime import date, datetime, timezone

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from pipelines.config import ConfigError, load_config
from transforms.durations import Duration
from transforms.export import export_days, export_rows
from transforms.filters import (ActivityFilter, DetailFilter, FilterError, check_ip_filter, decode_cursor,
                                encode_cursor, json_equal, query_list, type_variants)
from transforms.lake import ACTIVITY_LOG
from transforms.notify import evaluate
from transforms.query import query, query_page


def at(day: int, hour: int = 10, second: int = 0) -> str:
    return f"2024-01-{day:02d}T{hour:02d}:00:{second:02d}.000000Z"


def flag_event(after, *, field="rollout_percentage", before=0, **overrides):
    detail = {"name": "new-checkout-flow", "changes": [
        {"type": "FeatureFlag", "action": "changed", "field": field, "before": before, "after": after}]}
    return make_event(detail=detail, **overrides)


PLAIN = {"name": "plain", "changes": []}


@pytest.fixture
def events():
    return {
        "int": flag_event(1, created_at=at(10)),
        "float": flag_event(1.0, created_at=at(10, 11)),
        "string": flag_event("1", created_at=at(10, 12)),
        "bool": flag_event(True, created_at=at(10, 13)),
        "exp": flag_event(1e2, created_at=at(11)),  # written as 100.0
        "unicode": make_event(detail={"name": "café ünïcode", "changes": []}, created_at=at(11, 11)),
        "object": flag_event({"groups": [{"rollout_percentage": 50}]}, field="filters", created_at=at(12)),
        "trigger": make_event(scope="BatchExport", detail={"name": "nightly", "trigger": {"job_type": "Export_S3"}},
                              created_at=at(12, 11), user=None, is_system=True),
        "org": make_event(scope="OrganizationMembership", detail=PLAIN, team_id=None, organization_id="org-1", item_id="m-1",
                          created_at=at(13), user={"uuid": "u-2", "email": "Bob@Example.com", "first_name": "Bob"}),
        "other_org": make_event(scope="OrganizationMembership", detail=PLAIN, team_id=None, organization_id="org-9",
                                item_id="m-9", created_at=at(13, 11)),
        "team2": make_event(detail=PLAIN, team_id=2, organization_id="org-2", created_at=at(14), client="api-v2",
                            ip_address="198.51.100.20", was_impersonated=True),
        "long": make_event(detail={"name": "many", "changes": [
            {"field": f"f{i}", "before": i + 1000, "after": i + 1001} for i in range(5000)] + [
            {"field": "needle", "before": None, "after": "checkout"}]}, created_at=at(15)),
    }


@pytest.fixture
def built(lake, landing, events):
    lines = []
    for name, event in events.items():
        event["item_id"] = event.get("item_id") or name
        if event["item_id"] == "12345":
            event["item_id"] = name
        lines.append(event)
    # a raw line keeps number formats: write the 1e2 event by hand
    text = [json.dumps(e) for e in lines]
    text[list(events).index("exp")] = text[list(events).index("exp")].replace('"after": 100.0', '"after": 1e2')
    build_lake(lake, landing, text)
    ids = {name: event["id"] for name, event in events.items()}
    return lake, ids


def matching(lake, ids, **fields):
    frame = query(lake, ActivityFilter(**fields))
    got = set(frame.collect()["id"].to_list())
    return {name for name, event_id in ids.items() if event_id in got}


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("data, message", [
    ({"colour": "red"}, r"^filter: unknown field 'colour' \(allowed: start, end, users"),
    ({"start": "yesterday"}, r"^filter: start: 'yesterday' is not a date"),
    ({"start": "2024-02-01", "end": "2024-01-01"}, r"^filter: end: 2024-01-01 is before start 2024-02-01"),
    ({"scopes": [1.5]}, r"^filter: scopes\[0\]: must be text, not a number"),
    ({"scopes": [""]}, r"^filter: scopes\[0\]: must not be empty"),
    ({"team_ids": ["seven"]}, r"^filter: team_ids\[0\]: must be a project id \(an integer\), not 'seven'"),
    ({"is_system": "yes"}, r"^filter: is_system: must be true or false, not a string"),
    ({"detail_filters": {"changes[": {"operation": "exact", "value": 1}}}, r"path 'changes\[' is malformed"),
    ({"detail_filters": {"a..b": {"operation": "exact", "value": 1}}}, r"path 'a\.\.b' has an empty segment"),
    ({"detail_filters": {"name": {"operation": "like", "value": "x"}}},
     r"detail_filters\['name'\]\.operation: 'like' is not one of exact, contains, in"),
    ({"detail_filters": {"name": {"operation": "in", "value": "x"}}},
     r"detail_filters\['name'\]\.value: operation 'in' takes a list, not a string"),
    ({"detail_filters": {"name": {"operation": "contains", "value": ""}}}, r"needs non-empty text"),
    ({"detail_filters": {"name": {"operation": "exact"}}}, r"detail_filters\['name'\]: missing 'value'"),
    ({"detail_filters": {"name": {"op": "exact", "value": 1}}}, r"unknown key 'op'"),
    (["scopes"], r"^filter: must be a mapping of filter fields, not a list"),
])
def test_invalid_filters_are_rejected_naming_the_field(data, message):
    with pytest.raises(FilterError, match=message):
        ActivityFilter.from_dict(data)


def test_errors_carry_where_the_filter_came_from():
    with pytest.raises(FilterError, match=r"^activitylog.yaml: exports\[0\].filter: scopes"):
        ActivityFilter.from_dict({"scopes": {"a": 1}}, where="activitylog.yaml: exports[0].filter")


def test_unknown_scope_is_allowed_with_a_warning():
    activity_filter = ActivityFilter.from_dict({"scopes": ["FeatureFlag", "FeatureFlags"]})
    assert activity_filter.warnings() == [
        "scopes: 'FeatureFlags' is not a known scope (it matches only events that use exactly this name); "
        "did you mean 'FeatureFlag'?"]


def test_dict_python_and_aliases_describe_the_same_filter():
    data = {"start": "2024-01-10", "end": "2024-01-12T08:00:00Z", "users": ["jane@example.com"],
            "scopes": ["FeatureFlag"], "activities": ["updated"], "item_ids": [42], "team_ids": ["1"],
            "include_organization": True, "was_impersonated": False, "is_system": False, "clients": ["web"],
            "ip_addresses": ["203.0.113.*"], "search": "checkout",
            "detail_filters": {"changes[].field": {"operation": "exact", "value": "active"},
                               "name": {"operation": "exact", "value": "new-checkout-flow"}}}
    from_dict = ActivityFilter.from_dict(data)
    assert from_dict.item_ids == ("42",) and from_dict.team_ids == (1,)
    assert ActivityFilter.from_dict(from_dict.to_dict()) == from_dict
    assert ActivityFilter.from_json(json.dumps(from_dict.to_dict())) == from_dict
    python = ActivityFilter(start=date(2024, 1, 10), end=datetime(2024, 1, 12, 8, tzinfo=timezone.utc),
                            users=["jane@example.com"], scopes=["FeatureFlag"], activities=["updated"],
                            item_ids=["42"], team_ids=[1], include_organization=True, was_impersonated=False,
                            is_system=False, clients=["web"], ip_addresses=["203.0.113.*"], search="checkout",
                            detail_filters=data["detail_filters"])
    assert python == from_dict
    aliased = ActivityFilter.from_dict({"start_date": "2024-01-10", "search_text": "x", "scope": "Insight"})
    assert aliased == ActivityFilter(start=date(2024, 1, 10), search="x", scopes=["Insight"])


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


# -- every field against a real lake -----------------------------------------------------------


def test_detail_exact_compares_type_variants_as_posthog(built):
    lake, ids = built
    one = {"detail_filters": {"changes[].after": {"operation": "exact", "value": 1}}}
    assert matching(lake, ids, **one) == {"int", "float", "string"}  # 1, 1.0 and "1"; not true
    string = {"detail_filters": {"changes[].after": {"operation": "exact", "value": "1"}}}
    assert matching(lake, ids, **string) == {"int", "float", "string", "bool"}  # "1" is also 1 and true
    boolean = {"detail_filters": {"changes[].after": {"operation": "exact", "value": True}}}
    assert matching(lake, ids, **boolean) == {"bool", "string"}  # true, "true", "True", "1"; not the number 1
    hundred = {"detail_filters": {"changes[].after": {"operation": "exact", "value": 100}}}
    assert matching(lake, ids, **hundred) == {"exp"}
    whole = {"detail_filters": {"changes[].after": {"operation": "exact", "value": {"groups": [{"rollout_percentage": 50}]}}}}
    assert matching(lake, ids, **whole) == {"object"}


def test_detail_contains_in_and_nested_paths(built):
    lake, ids = built
    assert matching(lake, ids, detail_filters={"name": {"operation": "contains", "value": "CAFÉ"}}) == {"unicode"}
    assert matching(lake, ids, detail_filters={"name": {"operation": "exact", "value": "café ünïcode"}}) == {"unicode"}
    assert matching(lake, ids, detail_filters={"trigger.job_type": {"operation": "contains", "value": "export"}}) == {"trigger"}
    assert matching(lake, ids, detail_filters={"changes[].after": {"operation": "in", "value": ["1", True]}}) == {
        "int", "float", "string", "bool"}
    assert matching(lake, ids, detail_filters={"changes[].after[]": {"operation": "exact", "value": 1}}) == set()
    assert matching(lake, ids, detail_filters={
        "changes[].after.groups[].rollout_percentage": {"operation": "in", "value": [50]}}) == {"object"}


def test_any_element_has_no_length_limit(built):
    lake, ids = built
    assert matching(lake, ids, detail_filters={"changes[].field": {"operation": "exact", "value": "needle"}}) == {"long"}
    assert matching(lake, ids, detail_filters={"changes[].after": {"operation": "exact", "value": 6000}}) == {"long"}
    assert matching(lake, ids, detail_filters={"changes[].field": {"operation": "in", "value": ["f4999", "zzz"]}}) == {"long"}
    assert matching(lake, ids, detail_filters={"changes[].field": {"operation": "contains", "value": "NEEDL"}}) == {"long"}


def test_search_is_case_insensitive_over_detail_and_summary(built):
    lake, ids = built
    assert matching(lake, ids, search="CHECKOUT") == {"int", "float", "string", "bool", "exp", "object", "long"}
    assert matching(lake, ids, search="café") == {"unicode"}
    assert matching(lake, ids, search="System exported") == set()  # not a substring of any summary here
    assert matching(lake, ids, search="batch export") == {"trigger"}  # in the summary only


def test_users_by_uuid_or_email_and_flags(built):
    lake, ids = built
    assert matching(lake, ids, users=["u-2"]) == {"org"}
    assert matching(lake, ids, users=["bob@EXAMPLE.com"]) == {"org"}
    assert matching(lake, ids, is_system=True) == {"trigger"}
    assert matching(lake, ids, was_impersonated=True) == {"team2"}
    assert matching(lake, ids, clients=["api*"]) == {"team2"}
    assert matching(lake, ids, ip_addresses=["198.51.*"]) == {"team2"}
    assert matching(lake, ids, ip_addresses=["198.51.100.20"], clients=["web"]) == set()


def test_organization_rows_join_a_project_only_when_asked(built):
    lake, ids = built
    everything = set(ids)
    assert matching(lake, ids) == everything
    team1 = everything - {"org", "other_org", "team2"}
    assert matching(lake, ids, team_ids=[1]) == team1
    assert matching(lake, ids, team_ids=[1], include_organization=True) == team1 | {"org"}
    assert matching(lake, ids, team_ids=[2], include_organization=True) == {"team2"}


def test_time_bounds_and_read_window(built):
    lake, ids = built
    assert matching(lake, ids, start="2024-01-14") == {"team2", "long"}
    assert matching(lake, ids, end="2024-01-10") == {"int", "float", "string", "bool"}
    assert matching(lake, ids, start="2024-01-10T11:00:00Z", end="2024-01-10T12:00:00+00:00") == {"float", "string"}
    now = datetime(2024, 1, 16, 0, 0, tzinfo=timezone.utc)
    window = query(lake, ActivityFilter(), read_window=Duration(days=2), now=now).collect()
    assert {ids[n] for n in ("team2", "long")} == set(window["id"])
    narrowed = query(lake, ActivityFilter(start="2024-01-01"), read_window=Duration(days=2), now=now).collect()
    assert set(narrowed["id"]) == set(window["id"])
    assert query(lake, ActivityFilter(), read_window=Duration(months=2), now=now).collect().height == len(ids)


def test_a_day_range_never_reads_other_days(built, tmp_path):
    import shutil

    lake, ids = built
    # Remove every other day's files: a scan that touched them would fail.
    for directory in (tmp_path / "lake" / "activity_log").glob("day=*"):
        if directory.name != "day=2024-01-12":
            shutil.rmtree(directory)
    assert matching(lake, ids, start="2024-01-12", end="2024-01-12") == {"object", "trigger"}


# -- pagination --------------------------------------------------------------------------------


def test_cursor_round_trip_and_garbage():
    moment = datetime(2024, 1, 10, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert decode_cursor(encode_cursor(moment, "id:with:colons")) == (moment, "id:with:colons")
    with pytest.raises(FilterError, match="after: 'nope' is not a cursor"):
        decode_cursor("nope")


def test_pages_never_skip_or_repeat_rows_sharing_a_timestamp(lake, landing):
    same = "2024-01-20T09:00:00.000000Z"
    events = [make_event(id=f"evt-{i:02d}", created_at=same, item_id=str(i)) for i in range(7)]
    events += [make_event(id=f"old-{i}", created_at="2024-01-19T09:00:00.000000Z") for i in range(3)]
    events += [make_event(id="new-0", created_at="2024-01-21T00:00:00.000000Z")]
    build_lake(lake, landing, events, name="page.jsonl")
    seen, cursor, pages = [], None, 0
    while True:
        page = query_page(lake, ActivityFilter(), limit=3, after=cursor)
        seen += page.rows["id"].to_list()
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 4
    expected = ["new-0"] + [f"evt-{i:02d}" for i in reversed(range(7))] + [f"old-{i}" for i in reversed(range(3))]
    assert seen == expected
    # A filter with a page: the cursor continues within the filter.
    first = query_page(lake, ActivityFilter(item_ids=["1", "2", "3"]), limit=2)
    second = query_page(lake, ActivityFilter(item_ids=["1", "2", "3"]), limit=2, after=first.next_cursor)
    assert first.rows["id"].to_list() + second.rows["id"].to_list() == ["evt-03", "evt-02", "evt-01"]
    assert second.next_cursor is None


# -- PostHog's semantics: type variants, validation, query parameters, ordering -----------------


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


@pytest.mark.parametrize("path, message", [
    ("user__email", "Detail filter field path 'user__email' contains '__'."),
    ("regex", "Detail filter field path 'regex' uses reserved segment 'regex'."),
    ("name.regex", "Detail filter field path 'name.regex' uses reserved segment 'regex'."),
    ("changes[].in", "uses reserved segment 'in'."),
    ("a[].b[].c[].d[].e", "Detail filter field path 'a[].b[].c[].d[].e' nests too many arrays."),
    ("a..b", "has an empty segment."),
    ("x" * 501, "must be at most 500 characters."),
])
def test_detail_paths_are_checked_as_posthog_checks_them(path, message):
    with pytest.raises(FilterError) as info:
        ActivityFilter.from_dict({"detail_filters": {path: {"operation": "exact", "value": "x"}}},
                                 where="activitylog.yaml: exports[0].filter")
    assert str(info.value).startswith("activitylog.yaml: exports[0].filter: detail_filters")
    assert message in str(info.value)
    ActivityFilter.from_dict({"detail_filters": {"a[].b[].c[].d": {"operation": "exact", "value": "x"}}})  # three


def test_the_shorthand_and_null_values_are_errors():
    with pytest.raises(FilterError, match=r"Detail filter 'name' must be an object"):
        ActivityFilter.from_dict({"detail_filters": {"name": "test"}})
    with pytest.raises(FilterError, match=r"detail_filters\['name'\]\.value: must not be null"):
        ActivityFilter.from_dict({"detail_filters": {"name": {"operation": "exact", "value": None}}})
    with pytest.raises(FilterError, match="operation: 'regex' is not one of"):
        ActivityFilter.from_dict({"detail_filters": {"name": {"operation": "regex", "value": ".*"}}})


@pytest.mark.parametrize("value, valid", [
    ("203.0.113.42", True), ("2001:db8::1", True), ("203.0.113.*", True), ("*", True), ("255.255.255.255", True),
    ("256.1.1.1", False), ("not-an-ip", False), ("192.168.1.(0|1)", False), ("", False), ("10.0.0", False),
    ("abc", False), ("::1", True),
])
def test_ip_addresses_are_checked_as_posthog_checks_them(value, valid):
    if valid:
        check_ip_filter(value)
        assert ActivityFilter(ip_addresses=[value]).ip_addresses == (value,)
    else:
        with pytest.raises(FilterError, match=r"^ip_addresses\[0\]: "):
            ActivityFilter(ip_addresses=[value])


def test_query_parameters_read_json_encoded_lists_repeated_and_comma_separated():
    assert query_list(['["FeatureFlag","Insight"]'], "scopes") == ["FeatureFlag", "Insight"]
    assert query_list([' ["x"] ']) == ["x"]
    assert query_list(["FeatureFlag", "Insight"]) == ["FeatureFlag", "Insight"]
    assert query_list(["A,B", "C"]) == ["A", "B", "C"]
    assert query_list(["[not json"]) == ["[not json"]
    assert query_list(["", " "]) == [] and query_list([""], "ip_addresses") == [""]
    pairs = [("scopes", '["FeatureFlag","Insight"]'), ("item_ids", '[680699, "123"]'), ("team_ids", "[1, 2]"),
             ("users", '["u-1"]'), ("activities", '["updated"]'), ("clients", '["web"]'),
             ("ip_addresses", '["10.0.0.*"]'), ("start_date", "2024-01-01"), ("was_impersonated", "false"),
             ("is_system", ""), ("page_size", "5"), ("ordering", "created_at"),
             ("detail_filters", json.dumps({"count": {"operation": "exact", "value": "42"},
                                            "skipped": {"operation": "in", "value": None}}))]
    activity_filter = ActivityFilter.from_query(pairs, team_ids=[7])
    assert activity_filter == ActivityFilter(
        scopes=["FeatureFlag", "Insight"], item_ids=["680699", "123"], team_ids=[7], users=["u-1"],
        activities=["updated"], clients=["web"], ip_addresses=["10.0.0.*"], start=date(2024, 1, 1),
        was_impersonated=False, detail_filters={"count": {"operation": "exact", "value": "42"}})
    assert ActivityFilter.from_query([("team_ids", "[1, 2]")]).team_ids == (1, 2)
    for pairs, message in [([("ip_addresses", "")], r"^ip_addresses\[0\]: must not be empty"),
                           ([("ip_addresses", '["nope"]')], r"^ip_addresses\[0\]: Invalid IP address"),
                           ([("detail_filters", '{"regex": {"operation": "exact", "value": null}}')],
                            "reserved segment 'regex'"),
                           ([("detail_filters", '["x"]')], "^detail_filters: detail_filters must be an object"),
                           ([("is_system", "maybe")], "^is_system: must be true or false")]:
        with pytest.raises(FilterError, match=message):
            ActivityFilter.from_query(pairs)


def test_ordering_oldest_first_pages_with_the_id_as_tiebreak(lake, landing):
    events = [make_event(created_at=at(10), item_id=str(i)) for i in range(7)] + [
        make_event(created_at=at(11), item_id="later")]
    build_lake(lake, landing, events)
    tied = sorted(e["id"] for e in events[:7])
    seen, cursor = [], None
    while True:
        page = query_page(lake, ActivityFilter(), limit=3, after=cursor, ordering="created_at")
        seen += page.rows["id"].to_list()
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == tied + [events[7]["id"]]
    newest = query_page(lake, ActivityFilter(), limit=3)
    assert newest.rows["id"].to_list() == [events[7]["id"]] + tied[::-1][:2]
    with pytest.raises(FilterError, match="^after: .* other order"):
        query_page(lake, ActivityFilter(), limit=3, after=newest.next_cursor, ordering="created_at")
    with pytest.raises(FilterError, match='^ordering: "scope" is not a valid choice'):
        query(lake, ActivityFilter(), ordering="scope")


def test_notifications_exports_and_configuration_share_the_semantics(built, tmp_path):
    lake, ids = built
    activity_filter = ActivityFilter.from_dict(
        {"detail_filters": {"changes[].after": {"operation": "exact", "value": "1"}}})
    expected = {"int", "float", "string", "bool"}
    log = lake.scan(ACTIVITY_LOG).collect()
    matched = set(evaluate(log, [("ones", activity_filter)])["event_id"])
    assert {name for name, event_id in ids.items() if event_id in matched} == expected
    exported = set(export_rows(lake, activity_filter, export_days(lake, activity_filter))["id"])
    assert {name for name, event_id in ids.items() if event_id in exported} == expected
    path = tmp_path / "activitylog.yaml"
    path.write_text('exports:\n  - {name: x, schedule: "0 2 * * *", format: csv, destination: "%s",\n'
                    '     filter: {detail_filters: {"name.regex": {operation: exact, value: x}}}}\n'
                    % (tmp_path / "out").as_posix())
    with pytest.raises(ConfigError, match=r"exports\[0\]\.filter: detail_filters: Detail filter field path "
                                          r"'name\.regex' uses reserved segment 'regex'"):
        load_config(path)
