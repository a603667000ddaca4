"""posthog/api/advanced_activity_logs/test_field_discovery.py :: FieldDiscoveryTest, over HTTP: PostHog runs
AdvancedActivityLogFieldDiscovery.get_available_filters on a queryset; here the project's
advanced_activity_logs/available_filters/ answers for the same rows."""

import pytest

from tests.helpers.posthog import USER, project


def _generate_test_data_from_pattern(pattern: str, value=None) -> dict:
    if value is None:
        value = "test_value"

    def create_nested_structure(parts: list[str], val):
        if not parts:
            return val
        current_part, remaining_parts = parts[0], parts[1:]
        if current_part.endswith("[]"):
            field_name = current_part[:-2]
            if remaining_parts:
                return {field_name: [create_nested_structure(remaining_parts, val)]}
            if isinstance(val, str):
                return {field_name: [val, f"{val}_2"]}
            if isinstance(val, int | float):
                return {field_name: [val, val + 1]}
            return {field_name: [val, val]}
        return {current_part: create_nested_structure(remaining_parts, val)}

    return create_nested_structure(pattern.split("."), value)


SUPPORTED_PATTERNS = [
    ("field", ["string"], "test_value"),
    ("obj", ["array"], []),
    ("obj[]", ["object"], {}),
    ("arr[].field", ["string"], "array_field_value"),
    ("obj[].field", ["string"], "obj_field"),
    ("obj[].arr[]", ["string"], "nested_array_item"),
    ("obj.obj.field", ["string"], "nested_obj_field"),
    ("obj.arr[]", ["string"], "obj_array_item"),
    ("obj[].subobj.field", ["string"], "deep_obj_field"),
    ("obj[].subobj.arr[].subarr[].field", ["string"], "very_deep_field"),
    ("obj[].subobj.arr[].subarr[].nested_obj.field", ["string"], "ultra_deep_field"),
]
# PostHog deletes the organization's rows between sub-tests; here each pattern has a project of its own.
PATTERN_PROJECTS = {pattern: project([{"scope": "Dashboard", "activity": "updated", "item_id": "test-item",
                                       "detail": _generate_test_data_from_pattern(pattern, value)}])
                    for pattern, _, value in SUPPORTED_PATTERNS}
STATIC = project([{"scope": "Dashboard", "activity": "updated", "item_id": "test-item", "user": USER,
                   "detail": {"field": f"value_{index}"}} for index in range(3)])


@pytest.mark.parametrize("field_pattern, expected_types", [(p, t) for p, t, _ in SUPPORTED_PATTERNS],
                         ids=[p for p, _, _ in SUPPORTED_PATTERNS])
def test_supported_patterns(posthog, field_pattern, expected_types):
    response = posthog.get(f"/api/projects/{PATTERN_PROJECTS[field_pattern]}/advanced_activity_logs/available_filters/")
    assert response.status_code == 200, response.text
    results = response.json()
    scope_fields = results.get("detail_fields", {}).get("Dashboard", {}).get("fields", [])
    matching_fields = [f for f in scope_fields if f["name"] == field_pattern]
    assert matching_fields, f"{field_pattern!r} not in {[f['name'] for f in scope_fields]}"
    assert set(matching_fields[0]["types"]) == set(expected_types)


def test_static_filters_dedupe_in_sql_for_an_ordered_queryset(posthog):
    # The response half of PostHog's test; its SQL-statement half is Django-specific (README).
    response = posthog.get(f"/api/projects/{STATIC}/advanced_activity_logs/available_filters/")
    assert response.status_code == 200, response.text
    static_filters = response.json()["static_filters"]
    assert "Dashboard" in [entry["value"] for entry in static_filters["scopes"]]
    assert "updated" in [entry["value"] for entry in static_filters["activities"]]
    assert [entry["value"] for entry in static_filters["users"]] == [USER["uuid"]]
