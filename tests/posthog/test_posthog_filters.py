"""posthog/api/advanced_activity_logs/test_filters.py, over HTTP: PostHog calls
AdvancedActivityLogFilterManager / AdvancedActivityLogFiltersSerializer directly; here the same rows are
served and the same filters are sent as query parameters of advanced_activity_logs/."""

import json

import pytest

from tests.helpers.posthog import ids, project


def _logs(details: list) -> tuple[int, list[str]]:
    """PostHog's _create_activity_log for each detail: scope TestScope, activity updated, item test-item."""
    events = [{"scope": "TestScope", "activity": "updated", "item_id": "test-item", "detail": d} for d in details]
    pid = project(events)
    return pid, [e["id"] for e in events]


def _detail(posthog, pid: int, detail_filters: dict, **params):
    return posthog.get(f"/api/projects/{pid}/advanced_activity_logs/",
                       {"detail_filters": json.dumps(detail_filters), **params})


# -- TestAdvancedActivityLogFilterManager ------------------------------------------------------------

EXACT, EXACT_IDS = _logs([{"count": 42}, {"count": "42"}, {"count": 42.0}, {"count": "other"}])


@pytest.mark.parametrize("value", [
    pytest.param("42", id="string"),
    pytest.param(42, id="number"),
])
def test_apply_detail_filters_exact_type_insensitive(posthog, value):
    log1, log2, log3, _ = EXACT_IDS
    assert ids(_detail(posthog, EXACT, {"count": {"operation": "exact", "value": value}})) == {log1, log2, log3}


IN, IN_IDS = _logs([{"count": "42"}, {"count": 42}, {"count": "other"}])


def test_apply_detail_filters_in_type_insensitive(posthog):
    log1, log2, _ = IN_IDS
    assert ids(_detail(posthog, IN, {"count": {"operation": "in", "value": ["42"]}})) == {log1, log2}


CONTAINS, CONTAINS_IDS = _logs([{"message": "Error code 404"}, {"message": "Success"}])


def test_apply_detail_filters_contains_unchanged(posthog):
    assert ids(_detail(posthog, CONTAINS, {"message": {"operation": "contains", "value": "Error"}})) == {
        CONTAINS_IDS[0]}


NESTED, NESTED_IDS = _logs([{"config": {"timeout": 30}}, {"config": {"timeout": "30"}}, {"config": {"timeout": 60}}])


def test_nested_object_type_conversion(posthog):
    log1, log2, _ = NESTED_IDS
    assert ids(_detail(posthog, NESTED, {"config.timeout": {"operation": "exact", "value": "30"}})) == {log1, log2}


ARRAY, ARRAY_IDS = _logs([{"items": [{"id": 1}, {"id": 2}]}, {"items": [{"id": "1"}, {"id": "3"}]},
                          {"items": [{"id": "other"}]}])


def test_array_field_type_conversion(posthog):
    log1, log2, _ = ARRAY_IDS
    assert ids(_detail(posthog, ARRAY, {"items[].id": {"operation": "exact", "value": "1"}})) == {log1, log2}


ARRAY_IN, ARRAY_IN_IDS = _logs([{"tags": [{"priority": 1}, {"priority": 3}]},
                                {"tags": [{"priority": "2"}, {"priority": "1"}]}, {"tags": [{"priority": "high"}]}])


def test_array_field_in_operation_type_conversion(posthog):
    log1, log2, _ = ARRAY_IN_IDS
    assert ids(_detail(posthog, ARRAY_IN, {"tags[].priority": {"operation": "in", "value": ["1", "2"]}})) == {
        log1, log2}


DEEP, DEEP_IDS = _logs([
    {"changes": [{"after": [{"field": {"subarray": [{"value": 42}]}}]},
                 {"after": [{"field": {"subarray": [{"value": "other"}]}}]}]},
    {"changes": [{"after": [{"field": {"subarray": [{"value": "42"}]}}]}]},
    {"changes": [{"after": [{"field": {"subarray": [{"value": "different"}]}}]}]},
])


def test_deeply_nested_array_fields(posthog):
    log1, log2, _ = DEEP_IDS
    assert ids(_detail(posthog, DEEP, {"changes[].after[].field.subarray[].value": {
        "operation": "exact", "value": "42"}})) == {log1, log2}


# -- TestDetailFilterValidation ----------------------------------------------------------------------

ANY, _ = _logs([{"name": "x"}])


@pytest.mark.parametrize("field_path, filter_config", [
    pytest.param("user__email", {"operation": "exact", "value": "admin@example.com"}, id="relationship_traversal"),
    pytest.param("name", {"operation": "regex", "value": ".*"}, id="unsupported_operation"),
    pytest.param("name.regex", {"operation": "exact", "value": "^(a+)+$"}, id="lookup_suffixed_path"),
    pytest.param("regex", {"operation": "exact", "value": "^(a+)+$"}, id="lookup_named_path"),
    pytest.param("a[].b[].c[].d[].e", {"operation": "exact", "value": "x"}, id="array_nesting_fan_out"),
    pytest.param("name", "test", id="non_object_filter_config"),
])
def test_rejects_unsafe_detail_filters(posthog, field_path, filter_config):
    response = _detail(posthog, ANY, {field_path: filter_config})
    assert response.status_code == 400, response.text


# -- TestIpAddressFilter -------------------------------------------------------------------------------

def _ip_logs(addresses: list) -> tuple[int, list[str]]:
    events = [{"scope": "TestScope", "activity": "updated", "item_id": "test-item", "detail": {}, "ip_address": a}
              for a in addresses]
    return project(events), [e["id"] for e in events]


def _ips(posthog, pid, values):
    return ids(posthog.get(f"/api/projects/{pid}/advanced_activity_logs/", [("ip_addresses", v) for v in values]))


SINGLE, SINGLE_IDS = _ip_logs(["203.0.113.42", "198.51.100.7", None])
MULTI, MULTI_IDS = _ip_logs(["203.0.113.42", "198.51.100.7", "192.0.2.99"])
NONE, NONE_IDS = _ip_logs(["203.0.113.42", None])
WILD, WILD_IDS = _ip_logs(["203.0.113.42", "203.0.113.99", "198.51.100.7", None])
COMBINED, COMBINED_IDS = _ip_logs(["198.51.100.7", "203.0.113.42", "10.0.0.1"])


def test_filters_by_single_ip(posthog):
    assert _ips(posthog, SINGLE, ["203.0.113.42"]) == {SINGLE_IDS[0]}


def test_filters_by_multiple_ips(posthog):
    assert _ips(posthog, MULTI, ["203.0.113.42", "198.51.100.7"]) == set(MULTI_IDS[:2])


def test_no_ip_filter_returns_all(posthog):
    assert _ips(posthog, NONE, []) == set(NONE_IDS)


def test_filters_by_wildcard_prefix(posthog):
    assert _ips(posthog, WILD, ["203.0.113.*"]) == set(WILD_IDS[:2])


def test_combines_exact_and_wildcard(posthog):
    assert _ips(posthog, COMBINED, ["198.51.100.7", "203.0.*"]) == set(COMBINED_IDS[:2])


# -- TestAdvancedActivityLogFiltersSerializerValidation ------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    pytest.param("203.0.113.42", True, id="ipv4"),
    pytest.param("2001:db8::1", True, id="ipv6"),
    pytest.param("203.0.113.*", True, id="wildcard"),
    pytest.param("not-an-ip", False, id="text"),
    pytest.param("192.168.1.(0|1)", False, id="regex_metachar"),
    pytest.param("", False, id="empty"),
])
def test_serializer_validates_ip_filter_shape(posthog, value, expected):
    response = posthog.get(f"/api/projects/{ANY}/advanced_activity_logs/", [("ip_addresses", value)])
    assert (response.status_code == 200) is expected, response.text
    if not expected:
        assert response.status_code == 400


def test_serializer_rejects_unsafe_detail_filter_paths(posthog):
    response = _detail(posthog, ANY, {"name.regex": {"operation": "exact", "value": "^(a+)+$"}})
    assert response.status_code == 400
    assert response.json().get("attr") == "detail_filters"


# -- TestTypeConversionIntegration ---------------------------------------------------------------------

PIPELINE_EVENTS = [
    {"scope": "Dashboard", "activity": "updated", "item_id": "123",
     "detail": {"version": 2, "active": True, "name": "Test Dashboard"}},
    {"scope": "Dashboard", "activity": "created", "item_id": "456",
     "detail": {"version": "2", "active": "true", "name": "Another Dashboard"}},
]
PIPELINE = project(PIPELINE_EVENTS)


def test_full_filter_pipeline_with_type_conversion(posthog):
    response = _detail(posthog, PIPELINE, {"version": {"operation": "exact", "value": "2"},
                                           "active": {"operation": "exact", "value": "true"}}, scopes="Dashboard")
    assert ids(response) == {e["id"] for e in PIPELINE_EVENTS}


# -- TestOptionalBooleanFilters ------------------------------------------------------------------------

BOOLS_EVENTS = [
    {"scope": "TestScope", "activity": "updated", "item_id": "test", "detail": {}, "was_impersonated": True,
     "is_system": True},
    {"scope": "TestScope", "activity": "updated", "item_id": "test", "detail": {}, "was_impersonated": False,
     "is_system": False},
]
BOOLS = project(BOOLS_EVENTS)


def test_missing_boolean_params_serialize_to_none_not_false(posthog):
    # PostHog checks validated_data; over HTTP, omitting both means no filtering on either.
    response = posthog.get(f"/api/projects/{BOOLS}/advanced_activity_logs/", {"start_date": "2024-01-01"})
    assert ids(response) == {e["id"] for e in BOOLS_EVENTS}


def test_none_filter_values_return_all_records(posthog):
    response = posthog.get(f"/api/projects/{BOOLS}/advanced_activity_logs/", {"was_impersonated": "", "is_system": ""})
    assert len(ids(response)) == 2
