"""posthog/api/advanced_activity_logs/test_ocsf.py :: TestActivityLogOCSF, over HTTP: PostHog serializes
with ActivityLogOCSFSerializer directly; here each row is read back with ?schema=ocsf."""

import pytest

from tests.helpers.posthog import USER, project

DETAIL_WITH_VALUES = {"name": "beta-checkout", "changes": [
    {"type": "FeatureFlag", "action": "changed", "field": "filters", "before": {"a": 1}, "after": {"a": 2}}]}


def _log(activity: str = "updated", detail=None) -> int:
    return project([{"scope": "FeatureFlag", "activity": activity, "item_id": "flag-1", "user": USER,
                     "ip_address": "203.0.113.4", "detail": detail}])


def _ocsf(posthog, pid: int, **params) -> dict:
    response = posthog.get(f"/api/projects/{pid}/advanced_activity_logs/", {"schema": "ocsf", **params})
    assert response.status_code == 200, response.text
    return response.json()["results"][0]


ACTIVITIES = [
    ("created", 3004, 1, None),
    ("updated", 3004, 3, None),
    ("deleted", 3004, 4, None),
    ("logged_in", 3002, 1, None),
    ("scim_provisioned", 3001, 1, None),
    ("exported for opengraph image", 3004, 99, "exported for opengraph image"),
]
BY_ACTIVITY = {activity: _log(activity=activity) for activity, *_ in ACTIVITIES}
WITH_VALUES = _log(detail=DETAIL_WITH_VALUES)
REJECTED = {"save_rejected_conflict": _log(activity="save_rejected_conflict"), "updated": BY_ACTIVITY["updated"]}
PLAIN = _log()


@pytest.mark.parametrize("activity, class_uid, activity_id, activity_name", ACTIVITIES,
                         ids=[a[0].replace(" ", "_") for a in ACTIVITIES])
def test_activity_maps_to_class_and_activity_id(posthog, activity, class_uid, activity_id, activity_name):
    event = _ocsf(posthog, BY_ACTIVITY[activity])

    assert event["class_uid"] == class_uid
    assert event["activity_id"] == activity_id
    if activity_name is None:
        assert "activity_name" not in event
    else:
        assert event["activity_name"] == activity_name


def test_values_are_excluded_by_default_but_field_names_are_kept(posthog):
    event = _ocsf(posthog, WITH_VALUES)

    assert event["unmapped"]["changed_fields"] == ["filters"]
    assert "data" not in event["entity"]
    assert "entity_result" not in event


def test_include_values_maps_before_and_after_onto_entity_and_entity_result(posthog):
    event = _ocsf(posthog, WITH_VALUES, include_values="true")

    assert event["entity"]["data"] == {"filters": {"a": 1}}
    assert event["entity_result"]["data"] == {"filters": {"a": 2}}


def test_actor_entity_and_source_endpoint_are_mapped(posthog):
    event = _ocsf(posthog, WITH_VALUES)

    assert event["actor"]["user"]["email_addr"] == USER["email"]
    assert event["src_endpoint"]["ip"] == "203.0.113.4"
    assert event["entity"] == {"type": "FeatureFlag", "uid": "flag-1", "name": "beta-checkout"}
    assert event["metadata"]["version"] == "1.5.0"
    assert event["category_uid"] == 3


@pytest.mark.parametrize("activity, status_id", [
    ("save_rejected_conflict", 2),
    ("updated", 1),
])
def test_rejected_writes_are_reported_as_failures(posthog, activity, status_id):
    assert _ocsf(posthog, REJECTED[activity])["status_id"] == status_id


def test_endpoint_returns_ocsf_when_requested(posthog):
    response = posthog.get(f"/api/projects/{PLAIN}/advanced_activity_logs/?schema=ocsf")

    assert response.status_code == 200, response.json()
    assert response.json()["results"][0]["class_uid"] == 3004


def test_endpoint_include_values_is_opt_in(posthog):
    base = f"/api/projects/{WITH_VALUES}/advanced_activity_logs/?schema=ocsf"

    without = posthog.get(base).json()["results"][0]
    assert "entity_result" not in without

    with_values = posthog.get(f"{base}&include_values=true").json()["results"][0]
    assert with_values["entity_result"]["data"] == {"filters": {"a": 2}}


def test_endpoint_default_shape_is_unchanged(posthog):
    response = posthog.get(f"/api/projects/{PLAIN}/advanced_activity_logs/")

    row = response.json()["results"][0]
    assert row["activity"] == "updated"
    assert "class_uid" not in row
