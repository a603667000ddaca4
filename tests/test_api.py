"""The read API, served for real (`activitylog serve` in a subprocess on 127.0.0.1): isolation between
projects and organizations, keys, pagination, OCSF, bad input, rate limits."""

import json
import os

import httpx
import pytest

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server
from transforms.keys import create_key, revoke_key
from transforms.lake import Lake


def _events():
    events = []
    for i in range(5):  # project 1 (org-1): five events sharing one timestamp
        events.append(make_event(id=f"p1-{i}", team_id=1, organization_id="org-1", created_at="2024-01-10T10:00:00Z",
                                 item_id=f"{i}"))
    events += [make_event(id="p2-0", team_id=2, organization_id="org-1", created_at="2024-01-11T10:00:00Z"),
               make_event(id="p3-0", team_id=3, organization_id="org-2", created_at="2024-01-11T10:00:00Z"),
               make_event(id="o1-0", team_id=None, organization_id="org-1", scope="OrganizationMembership",
                          created_at="2024-01-12T10:00:00Z"),
               make_event(id="o2-0", team_id=None, organization_id="org-2", scope="OrganizationMembership",
                          created_at="2024-01-12T10:00:00Z"),
               make_event(id="imp-login", team_id=1, organization_id="org-1", activity="logged_in", scope="User",
                          was_impersonated=True, created_at="2024-01-12T11:00:00Z")]
    return events


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    landing = root / "landing"
    lake = Lake.at(root / "lake")
    build_lake(lake, landing, _events(), name="a.jsonl")
    keys = {
        "p1": create_key(lake, "org-1", [1])[0],
        "p2": create_key(lake, "org-1", [2])[0],
        "admin1": create_key(lake, "org-1", admin=True)[0],
        "p3": create_key(lake, "org-2", [3])[0],
        "revoked": create_key(lake, "org-1", [1])[0],
    }
    servers = []

    def start(rate: int):
        port = free_port()
        home = root / f"dagster-{port}"  # each server its own instance: two fresh ones would race to migrate
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = child_env({"ACTIVITYLOG_LAKE": lake.root, "ACTIVITYLOG_API_RATE": str(rate),
                         "ACTIVITYLOG_CONFIG": os.devnull, "DAGSTER_HOME": str(home)})
        server = start_server("activitylog-serve", [script("activitylog"), "serve", "--host", LOOPBACK, "--port",
                                                    str(port)], url=f"http://{LOOPBACK}:{port}/openapi.json",
                              env=env, timeout=60)
        servers.append(server)
        return f"http://{LOOPBACK}:{port}"

    try:
        yield {"url": start(10_000), "start": start, "lake": lake, "keys": keys}
    finally:
        for server in servers:
            server.stop()


def get(served, path, key=None, **params):
    headers = {"Authorization": f"Bearer {served['keys'][key]}"} if key in served["keys"] else (
        {"Authorization": f"Bearer {key}"} if key else {})
    return httpx.get(served["url"] + path, params=params, headers=headers, timeout=30)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["results"]]


@pytest.mark.slow
def test_isolation_between_projects_and_organizations(served):
    assert set(ids(get(served, "/api/projects/1/advanced_activity_logs/", "p1"))) == {f"p1-{i}" for i in range(5)}
    for key, path in [("p1", "/api/projects/2/advanced_activity_logs/"), ("p1", "/api/projects/3/activity_log/"),
                      ("p2", "/api/projects/1/advanced_activity_logs/"), ("p3", "/api/projects/1/activity_log/"),
                      ("p1", "/api/organizations/org-1/advanced_activity_logs/"),
                      ("admin1", "/api/organizations/org-2/advanced_activity_logs/"),
                      ("admin1", "/api/projects/3/advanced_activity_logs/"),
                      ("p1", "/api/projects/999/activity_log/")]:
        response = get(served, path, key)
        assert response.status_code == 404, (key, path)  # not 403: existence does not leak
    organization = ids(get(served, "/api/organizations/org-1/advanced_activity_logs/", "admin1"))
    assert set(organization) == {f"p1-{i}" for i in range(5)} | {"p2-0", "o1-0"}  # admins too: no impersonated login
    assert set(ids(get(served, "/api/projects/2/advanced_activity_logs/", "admin1"))) == {"p2-0"}
    with_org = ids(get(served, "/api/projects/2/advanced_activity_logs/", "p2", include_organization="true"))
    assert set(with_org) == {"p2-0", "o1-0"}  # its organization's rows, never org-2's


@pytest.mark.slow
def test_keys_missing_wrong_and_revoked(served):
    assert get(served, "/api/projects/1/activity_log/").status_code == 401
    assert get(served, "/api/projects/1/activity_log/", "alk_nope_nope").status_code == 401
    assert get(served, "/api/projects/1/activity_log/", "revoked").status_code == 200
    assert revoke_key(served["lake"], served["keys"]["revoked"])
    response = get(served, "/api/projects/1/activity_log/", "revoked")
    assert response.status_code == 401 and response.json()["type"] == "authentication_error"


@pytest.mark.slow
def test_cursor_pages_have_no_gaps_or_repeats(served):
    seen, url = [], served["url"] + "/api/projects/1/advanced_activity_logs/?page_size=2"
    headers = {"Authorization": f"Bearer {served['keys']['p1']}"}
    while url:
        body = httpx.get(url, headers=headers, timeout=30).json()
        seen += [r["id"] for r in body["results"]]
        url = body["next"]
    assert seen == [f"p1-{i}" for i in reversed(range(5))]  # the impersonated login is hidden (visibility rules)
    admin = ids(get(served, "/api/projects/1/advanced_activity_logs/", "admin1"))
    assert admin == seen  # from admin keys too: no key is PostHog staff


@pytest.mark.slow
def test_activity_log_endpoint_pages_and_row_shape(served):
    first = get(served, "/api/projects/1/activity_log/", "p1", page_size=3)
    second = get(served, "/api/projects/1/activity_log/", "p1", page_size=3, page=2)
    assert ids(first) + ids(second) == [f"p1-{i}" for i in reversed(range(5))]
    assert first.json()["next"].endswith("page=2") and second.json()["next"] is None
    row = first.json()["results"][0]
    assert set(row) == {"id", "user", "unread", "activity", "scope", "item_id", "detail", "created_at", "is_system",
                        "was_impersonated", "client", "ip_address", "organization_id", "project_id", "summary"}
    assert (row["unread"], row["client"], row["ip_address"]) == (None, "web", "203.0.113.7")
    assert row["user"]["email"] == "jane@example.com" and row["detail"]["name"] == "new-checkout-flow"
    assert row["created_at"] == "2024-01-10T10:00:00Z" and row["project_id"] == 1
    ascending = ids(get(served, "/api/projects/1/activity_log/", "p1", ordering="created_at", scope="FeatureFlag"))
    assert ascending == [f"p1-{i}" for i in range(5)]


@pytest.mark.slow
def test_filters_ocsf_and_available_filters(served):
    detail = json.dumps({"changes[].field": {"operation": "exact", "value": "active"}})
    assert len(ids(get(served, "/api/projects/1/advanced_activity_logs/", "p1", detail_filters=detail,
                       item_ids="1,2"))) == 2
    ocsf = get(served, "/api/projects/2/advanced_activity_logs/", "p2", schema="ocsf").json()["results"][0]
    assert ocsf["class_uid"] == 3004 and ocsf["metadata"]["uid"] == "p2-0" and "entity_result" not in ocsf
    valued = get(served, "/api/projects/2/advanced_activity_logs/", "p2", schema="ocsf", include_values="true")
    assert valued.json()["results"][0]["entity_result"]["data"] == {"active": True}
    refused = get(served, "/api/projects/2/advanced_activity_logs/", "p2", schema="ocsf", include_values="maybe")
    assert refused.status_code == 400 and "include_values" in refused.text
    filters = get(served, "/api/projects/1/advanced_activity_logs/available_filters/", "p1").json()
    assert filters["scopes"] == ["FeatureFlag"] and filters["users"][0]["email"] == "jane@example.com"
    assert "changes[].field" in filters["detail_paths"]


@pytest.mark.slow
def test_a_date_only_end_date_is_that_days_midnight_as_in_posthog(served):
    """PostHog compares ``created_at <= end_date`` with a date read as its 00:00: the day is not included."""
    path = "/api/projects/1/advanced_activity_logs/"
    assert ids(get(served, path, "p1", end_date="2024-01-10")) == []
    assert len(ids(get(served, path, "p1", end_date="2024-01-10T10:00:00Z"))) == 5  # inclusive
    assert len(ids(get(served, path, "p1", end_date="2024-01-11"))) == 5
    assert len(ids(get(served, path, "p1", start_date="2024-01-10", end_date="2024-01-11"))) == 5
    assert ids(get(served, path, "p1", start_date="2024-01-11")) == []


@pytest.mark.slow
@pytest.mark.parametrize("params, attr", [
    ({"start_date": "yesterday"}, "start"),
    ({"start_date": "2024-02-01", "end_date": "2024-01-01"}, "end"),
    ({"detail_filters": "{not json"}, "detail_filters"),
    ({"detail_filters": json.dumps({"name": {"operation": "like", "value": 1}})}, "detail_filters"),
    ({"detail_filters": json.dumps({f"k{i}": 1 for i in range(101)})}, "detail_filters"),
    ({"detail_filters": json.dumps({"x" * 501: 1})}, "detail_filters"),
    ({"page_size": "5000"}, "page_size"),
    ({"page_size": "abc"}, "page_size"),
    ({"after": "garbage"}, "after"),
    ({"was_impersonated": "maybe"}, "was_impersonated"),
    ({"schema": "xml"}, "schema"),
])
def test_bad_input_is_400_naming_the_parameter(served, params, attr):
    response = get(served, "/api/projects/1/advanced_activity_logs/", "p1", **params)
    assert response.status_code == 400, response.text
    assert response.json()["attr"] == attr and response.json()["type"] == "validation_error"


@pytest.mark.slow
def test_rate_limit_answers_429_with_retry_after(served):
    url = served["start"](3)
    headers = {"Authorization": f"Bearer {served['keys']['p1']}"}
    codes = [httpx.get(url + "/api/projects/1/activity_log/", headers=headers, timeout=30) for _ in range(4)]
    assert [c.status_code for c in codes] == [200, 200, 200, 429]
    assert 1 <= int(codes[-1].headers["retry-after"]) <= 61
    other = httpx.get(url + "/api/projects/2/activity_log/", headers={"Authorization": f"Bearer {served['keys']['p2']}"})
    assert other.status_code == 200  # per key


def test_keys_cli(tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.setenv("ACTIVITYLOG_LAKE", str(tmp_path / "lake"))
    (tmp_path / "lake" / "reference").mkdir(parents=True)  # a key names a known organization and its projects
    (tmp_path / "lake" / "reference" / "projects.csv").write_text("team_id,name,organization_id\n1,Web,org-1\n")
    assert main(["keys", "create", "--organization", "org-1", "--project", "1", "--label", "dashboards"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("alk_") and token not in "".join(p.read_text(errors="ignore") for p in (
        tmp_path / "lake").rglob("*.json"))
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert "active" in listed and "dashboards" in listed and token.split("_")[2] not in listed
    assert main(["keys", "revoke", token.split("_")[1]]) == 0
    assert main(["keys", "revoke", token.split("_")[1]]) == 2
    assert main(["keys", "create", "--organization", "org-1"]) == 2  # neither a project nor --admin


@pytest.mark.slow
def test_export_round_trip_runs_in_dagster(served):
    import time

    headers = {"Authorization": f"Bearer {served['keys']['p1']}"}
    started = httpx.post(served["url"] + "/api/projects/1/advanced_activity_logs/export", headers=headers,
                         json={"format": "csv", "filters": {"scopes": ["FeatureFlag"], "team_ids": [3],
                                                            "end_date": "2024-01-11"}}, timeout=30)
    assert started.status_code == 202, started.text
    assert started.json()["export_format"] == "csv"  # PostHog's {id, export_format}, a superset
    export_id = started.json()["id"]
    status_url = served["url"] + f"/api/projects/1/advanced_activity_logs/exports/{export_id}"
    body = {}
    for _ in range(120):
        body = httpx.get(status_url, headers=headers, timeout=30).json()
        if body.get("status") in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    assert body["status"] == "succeeded", body
    assert body["manifest"]["rows"] == 5 and body["manifest"]["filter"]["team_ids"] == [1]  # never project 3
    assert str(body["manifest"]["filter"]["end"]).startswith("2024-01-11T00:00:00")  # PostHog's end_date
    csv_text = httpx.get(body["file"], headers=headers, timeout=30).text
    assert csv_text.count("\r\n") == 6 and "p1-0" in csv_text
    other = {"Authorization": f"Bearer {served['keys']['p2']}"}
    assert httpx.get(served["url"] + f"/api/projects/2/advanced_activity_logs/exports/{export_id}",
                     headers=other).status_code == 404
    bad = httpx.post(served["url"] + "/api/projects/1/advanced_activity_logs/export", headers=headers,
                     json={"format": "pdf"})
    assert bad.status_code == 400 and bad.json()["attr"] == "format"


@pytest.mark.slow
def test_fuzzed_requests_never_get_a_server_error(served):
    """schemathesis generates requests (valid and invalid parameters) for every operation of the OpenAPI
    document: none may answer 5xx. Bounded: 30 examples per operation."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(served["url"] + "/openapi.json")
    headers = {"Authorization": f"Bearer {served['keys']['admin1']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    failures = []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call(headers=headers, timeout=30)
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, case.query, response.text[:200]))

        check()
    assert failures == []
