"""posthog/api/advanced_activity_logs/test_pagination_schema.py :: TestActivityLogPaginationSchema, over HTTP
(PostHog reads ActivityLogPagination's schema; here the served OpenAPI document)."""

from tests.helpers.posthog import project

P = project([{"scope": "FeatureFlag", "item_id": "1"}])


def _list_schema(openapi: dict, path: str) -> dict:
    schema = openapi["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_count_is_not_required_because_cursor_responses_omit_it(posthog):
    openapi = posthog.get("/openapi.json").json()
    schema = _list_schema(openapi, "/api/projects/{project_id}/advanced_activity_logs/")

    assert "count" not in schema.get("required", [])
    assert "results" in schema.get("required", [])
    assert "count" in schema.get("properties", {})


def test_cursor_response_body_has_no_count(posthog):
    response = posthog.get(f"/api/projects/{P}/advanced_activity_logs/")

    assert response.status_code == 200, response.text
    assert "count" not in response.json()


# Not a PostHog test: ActivityLogPagination (posthog/api/advanced_activity_logs/viewset.py) switches to
# page-number pagination when ?page= is given, and only then carries count.
PAGED = project([{"scope": "FeatureFlag", "item_id": str(i)} for i in range(3)])


def test_page_number_mode_carries_count(posthog):
    response = posthog.get(f"/api/projects/{PAGED}/advanced_activity_logs/", {"page": 1, "page_size": 2})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 3
    assert len(body["results"]) == 2 and body["next"] is not None
