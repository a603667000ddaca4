"""The filter language: validation, JSON semantics of detail filters, every field, windows, cursors."""

import json
from datetime import date, datetime, timezone

import pytest

from conftest import make_event, write_lines
from transforms.durations import Duration
from transforms.filters import ActivityFilter, DetailFilter, FilterError, decode_cursor, encode_cursor, json_equal
from transforms.ingest import ingest
from transforms.lake import ACTIVITY_RAW
from transforms.query import query, query_page
from transforms.refresh import refresh_all
from transforms.validate import ValidationSettings


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
    write_lines(landing / "events.jsonl", text)
    ingest(lake, str(landing), ValidationSettings(start_date=date(2020, 1, 1)))
    refresh_all(lake, lake.days(ACTIVITY_RAW))
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
    write_lines(landing / "page.jsonl", events)
    ingest(lake, str(landing), ValidationSettings(start_date=date(2020, 1, 1)))
    refresh_all(lake, lake.days(ACTIVITY_RAW))
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
