"""The filter language, validation: invalid filters refused naming the field (and where the filter came
from), unknown scopes warned about, the dictionary, Python and aliased forms of one filter, detail paths,
values and IP addresses checked as PostHog checks them, query parameters as the API reads them."""

import json
from datetime import date, datetime, timezone

import pytest

from transforms.filters import ActivityFilter, FilterError, check_ip_filter, query_list


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
