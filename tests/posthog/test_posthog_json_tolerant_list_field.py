"""posthog/api/advanced_activity_logs/test_json_tolerant_list_field.py :: TestJSONTolerantListField, over HTTP
(PostHog checks the serializer's validated_data; here the rows each form of the parameter selects)."""

import pytest

from tests.helpers.posthog import ids, project

P = project([{"id": "jt-flag", "scope": "FeatureFlag", "item_id": "680699"},
             {"id": "jt-insight", "scope": "Insight", "item_id": "123"},
             {"id": "jt-dashboard", "scope": "Dashboard", "item_id": "999"}])
URL = f"/api/projects/{P}/advanced_activity_logs/"
SCOPE_ROWS = {"FeatureFlag": "jt-flag", "Insight": "jt-insight"}


@pytest.mark.parametrize("pairs, expected", [
    pytest.param([("scopes", '["FeatureFlag","Insight"]')], ["FeatureFlag", "Insight"], id="json_encoded_array"),
    pytest.param([("scopes", "FeatureFlag"), ("scopes", "Insight")], ["FeatureFlag", "Insight"], id="repeated_params"),
    pytest.param([("scopes", '["FeatureFlag"]')], ["FeatureFlag"], id="json_single_element"),
    pytest.param([("scopes", "FeatureFlag")], ["FeatureFlag"], id="single_plain_value"),
])
def test_scopes_accepts_json_and_repeated(posthog, pairs, expected):
    assert ids(posthog.get(URL, pairs)) == {SCOPE_ROWS[s] for s in expected}


def test_item_ids_accepts_json_encoded_array(posthog):
    assert ids(posthog.get(URL, [("item_ids", '["680699","123"]')])) == {"jt-flag", "jt-insight"}
