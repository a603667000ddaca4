"""The visibility rules through the served API (``activitylog serve`` in a subprocess, a configuration file
with one added rule): no key, admin or not, is served a hidden row by any route — listings, both path
forms, organization-level rows, available_filters and export files; an export made under other rules is
not handed out. Also PostHog's available_filters shape over real rows, and the parameter rejections."""

import json
import os
import time

import httpx
import pytest

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from pipelines.config import ConfigError, load_config
from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server
from transforms.keys import create_key
from transforms.lake import Lake

CONFIG = """visibility:
  add:
    - {scope: Integration, activities: [updated], when: {is_system: true}}
"""
WITH_SECRET = CONFIG + """notifications:  # the server reads only its section: it needs no secret of the others
  destinations:
    hook: {type: webhook, url: {env: ACTIVITYLOG_TEST_UNSET_WEBHOOK_URL}}
"""
HIDDEN_USER = {"id": 7, "uuid": "uuid-hidden", "email": "only-hidden@example.com", "first_name": "Only",
               "last_name": "Hidden"}


def _events() -> list[dict]:
    minutes = iter(range(10, 60))

    def ev(id_, **kw):
        return make_event(id=id_, team_id=1, organization_id="org-1", created_at=f"2024-01-10T10:{next(minutes)}:00Z",
                          **kw)

    return [
        ev("flag", scope="FeatureFlag", activity="updated", detail={"name": "f", "rollout": {"percent": 50}}),
        ev("integration-manual", scope="Integration", activity="updated", is_system=False, detail={"kind": "slack"}),
        ev("user-updated", scope="User", activity="updated", user=HIDDEN_USER, detail={"secret_user_field": "x"}),
        ev("imp-login", scope="User", activity="logged_in", was_impersonated=True, user=HIDDEN_USER),
        ev("credit", scope="AIGatewayCredit", activity="credit_added", detail={"wallet_balance": 5}),
        ev("ticket-comment", scope="Ticket", activity="commented", detail={"changes": [
            {"type": "Comment", "field": "content", "action": "created", "after": "plaintext body"}]}),
        ev("integration-system", scope="Integration", activity="updated", is_system=True,
           detail={"system_only_field": 1}),
        make_event(id="org-row", team_id=None, organization_id="org-1", scope="OrganizationMembership",
                   activity="created", created_at="2024-01-12T10:00:00Z"),
        make_event(id="org-role-scim", team_id=None, organization_id="org-1", scope="Role", activity="scim_updated",
                   created_at="2024-01-12T11:00:00Z", detail={"role_secret": 1}),
    ]


VISIBLE = {"flag", "integration-manual"}
HIDDEN = {"user-updated", "imp-login", "credit", "ticket-comment", "integration-system", "org-role-scim"}


def _write(root, name: str, text: str):
    path = root / name
    path.write_text(text)
    return path


def _serve(root, lake, config_text: str, name: str):
    port = free_port()
    home = root / f"dagster-{name}"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    config = root / f"{name}.yaml"
    config.write_text(config_text)
    env = child_env({"ACTIVITYLOG_LAKE": lake.root, "ACTIVITYLOG_API_RATE": "100000", "ACTIVITYLOG_CONFIG": str(config),
                     "DAGSTER_HOME": str(home), "ACTIVITYLOG_API_EXPORTS": str(root / "exports")})
    return start_server(f"activitylog-serve-{name}", [script("activitylog"), "serve", "--host", LOOPBACK, "--port",
                                                      str(port)], url=f"http://{LOOPBACK}:{port}/openapi.json",
                        env=env, timeout=60), f"http://{LOOPBACK}:{port}"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("visibility")
    lake = Lake.at(root / "lake")
    build_lake(lake, root / "landing", _events(), name="a.jsonl")
    keys = {"p1": create_key(lake, "org-1", [1])[0], "admin": create_key(lake, "org-1", admin=True)[0]}
    server, url = _serve(root, lake, CONFIG, "main")
    try:
        yield {"url": url, "keys": keys, "root": root, "lake": lake}
    finally:
        server.stop()


def get(served, path, key="p1", **params):
    return httpx.get(served["url"] + path, params=params, headers={"Authorization": f"Bearer {served['keys'][key]}"},
                     timeout=30)


def post(served, path, body, key="p1"):
    return httpx.post(served["url"] + path, json=body, headers={"Authorization": f"Bearer {served['keys'][key]}"},
                      timeout=30)


def ids(response) -> set[str]:
    assert response.status_code == 200, response.text
    return {row["id"] for row in response.json()["results"]}


@pytest.mark.slow
@pytest.mark.parametrize("key", ["p1", "admin"])
@pytest.mark.parametrize("path", ["/api/projects/1/activity_log/", "/api/projects/1/activity_log",
                                  "/api/projects/1/advanced_activity_logs/", "/api/projects/1/advanced_activity_logs"])
def test_project_listings_hide_the_rules_rows_from_every_key(served, key, path):
    response = get(served, path, key)
    assert response.status_code == 200 and not response.history  # no redirect
    assert ids(response) == VISIBLE
    with_org = ids(get(served, path, key, include_organization_scoped="1"))
    assert with_org == VISIBLE | {"org-row"}  # the organization's rows, but not the hidden Role SCIM row


@pytest.mark.slow
def test_organization_listing_and_every_filter_hide_them_too(served):
    for path in ("/api/organizations/org-1/advanced_activity_logs/", "/api/organizations/org-1/advanced_activity_logs"):
        assert ids(get(served, path, "admin")) == VISIBLE | {"org-row"}
    # Asking for them by name changes nothing.
    for params in ({"scopes": "User,AIGatewayCredit,Ticket,Role,Integration"}, {"is_system": "true"},
                   {"was_impersonated": "true"}, {"search_text": "plaintext"}, {"item_ids": "12345"}):
        found = ids(get(served, "/api/organizations/org-1/advanced_activity_logs/", "admin", **params))
        assert not found & HIDDEN, params


@pytest.mark.slow
@pytest.mark.parametrize("key, path", [("p1", "/api/projects/1/advanced_activity_logs/available_filters/"),
                                       ("p1", "/api/projects/1/advanced_activity_logs/available_filters"),
                                       ("admin", "/api/organizations/org-1/advanced_activity_logs/available_filters/")])
def test_available_filters_show_nothing_of_hidden_rows(served, key, path):
    response = get(served, path, key)
    assert response.status_code == 200, response.text
    body = response.json()
    text = json.dumps(body)
    for secret in ("AIGatewayCredit", "Ticket", "Role", "uuid-hidden", "only-hidden@example.com", "secret_user_field",
                   "wallet_balance", "system_only_field", "role_secret", "logged_in", "credit_added", "commented"):
        assert secret not in text, secret
    scopes = {entry["value"] for entry in body["static_filters"]["scopes"]}
    assert {"FeatureFlag", "Integration"} <= scopes and "User" not in scopes
    assert body["static_filters"]["users"] == [{"value": "user-uuid-42", "label": "Jane Doe"}]
    assert {"value": "web", "label": "web"} in body["static_filters"]["clients"]
    assert body["scopes"] == sorted(scopes)  # the plain lists stay, from the same rows
    flag = {f["name"]: f["types"] for f in body["detail_fields"]["FeatureFlag"]["fields"]}
    assert flag["rollout"] == ["object"] and flag["rollout.percent"] == ["number"] and flag["name"] == ["string"]
    assert {f["name"] for f in body["detail_fields"]["Integration"]["fields"]} == {"kind"}
    assert "changes[].field" in {f["name"] for f in body["detail_fields"]["General"]["fields"]}


@pytest.mark.slow
@pytest.mark.parametrize("path, attr", [
    ("/api/projects/1/activity_log/", "include_organization_scoped"),
    ("/api/projects/1/advanced_activity_logs/", "include_organization_scoped"),
])
def test_include_organization_scoped_must_be_a_boolean(served, path, attr):
    response = get(served, path, include_organization_scoped="maybe")
    assert response.status_code == 400
    assert response.json()["attr"] == attr and response.json()["detail"] == "must be true or false, not 'maybe'"


def _wait(served, path, key):
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        body = get(served, path, key).json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"export not finished: {body}")


@pytest.mark.slow
def test_exports_hold_no_hidden_row_and_answer_only_under_the_same_rules(served):
    base = "/api/organizations/org-1/advanced_activity_logs"
    started = post(served, base + "/export/", {"format": "jsonl"}, "admin")  # PostHog's form, with the slash
    assert started.status_code == 202, started.text
    export_id = started.json()["id"]
    status = _wait(served, f"{base}/exports/{export_id}", "admin")
    assert status["status"] == "succeeded", status
    file = httpx.get(status["file"], headers={"Authorization": f"Bearer {served['keys']['admin']}"}, timeout=30)
    exported = {json.loads(line)["id"] for line in file.text.splitlines()}
    assert exported == VISIBLE | {"org-row"}
    project = post(served, "/api/projects/1/advanced_activity_logs/export", {"format": "csv"}, "p1")
    assert project.status_code == 202, project.text
    done = _wait(served, f"/api/projects/1/advanced_activity_logs/exports/{project.json()['id']}", "p1")
    assert done["manifest"]["rows"] == len(VISIBLE)
    # The same lake served under other rules (none): the exports made under PostHog's + one are not handed out.
    other, url = _serve(served["root"], served["lake"], "visibility: {rules: []}\n", "norules")
    try:
        response = httpx.get(url + f"{base}/exports/{export_id}",
                             headers={"Authorization": f"Bearer {served['keys']['admin']}"}, timeout=30)
        assert response.status_code == 404 and response.json()["detail"] == "not found"
        everything = httpx.get(url + "/api/projects/1/advanced_activity_logs/",
                               headers={"Authorization": f"Bearer {served['keys']['p1']}"}, timeout=30)
        assert {r["id"] for r in everything.json()["results"]} == VISIBLE | HIDDEN - {"org-role-scim"}
    finally:
        other.stop()


def test_serve_refuses_a_bad_visibility_section(tmp_path):
    import subprocess

    config = tmp_path / "bad.yaml"
    config.write_text("visibility: {add: [{scope: User}]}\n")
    env = child_env({"ACTIVITYLOG_LAKE": str(tmp_path / "lake"), "ACTIVITYLOG_CONFIG": str(config),
                     "DAGSTER_HOME": str(tmp_path)})
    result = subprocess.run([script("activitylog"), "serve", "--host", LOOPBACK, "--port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"activitylog serve: {config}: visibility.add[0].activities: is required")
    assert os.path.exists(config)


@pytest.mark.slow
@pytest.mark.parametrize("key, path", [("p1", "/api/projects/1/advanced_activity_logs/"),
                                       ("admin", "/api/organizations/org-1/advanced_activity_logs")])
def test_page_number_mode_counts_only_what_the_key_may_see(served, key, path):
    expected = len(VISIBLE) + (1 if "organizations" in path else 0)
    first = get(served, path, key, page=1, page_size=1)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["count"] == expected and len(body["results"]) == 1 and body["previous"] is None
    assert body["next"].endswith("page=2") and "page_size=1" in body["next"]
    walked = [r["id"] for r in body["results"]]
    for number in range(2, expected + 1):
        page = httpx.get(body["next"], headers={"Authorization": f"Bearer {served['keys'][key]}"}, timeout=30).json()
        assert page["previous"].endswith(f"page={number - 1}") and page["count"] == expected
        walked += [r["id"] for r in page["results"]]
        body = page
    assert body["next"] is None and len(walked) == len(set(walked)) == expected
    assert set(walked) == VISIBLE | ({"org-row"} if "organizations" in path else set())
    oldest = get(served, path, key, page=1, page_size=100, ordering="created_at").json()["results"]
    assert [r["id"] for r in oldest] == list(reversed(walked))


@pytest.mark.slow
@pytest.mark.parametrize("params, detail", [
    ({"page": "0"}, "must be between 1 and 100,000"),
    ({"page": "100001"}, "must be between 1 and 100,000"),
    ({"page": "two"}, "must be an integer, not 'two'"),
    ({"page": "1", "after": "x"}, "page and after cannot be combined (page numbers or a cursor)"),
])
def test_page_number_rejections(served, params, detail):
    response = get(served, "/api/projects/1/advanced_activity_logs/", **params)
    assert response.status_code == 400
    assert response.json()["attr"] == "page" and response.json()["detail"] == detail


@pytest.mark.slow
def test_serve_reads_only_its_section(served):
    with pytest.raises(ConfigError, match="ACTIVITYLOG_TEST_UNSET_WEBHOOK_URL is not set"):
        load_config(_write(served["root"], "whole.yaml", WITH_SECRET))  # the whole file would not load here
    server, url = _serve(served["root"], served["lake"], WITH_SECRET, "secret")
    try:
        response = httpx.get(url + "/api/projects/1/advanced_activity_logs/",
                             headers={"Authorization": f"Bearer {served['keys']['p1']}"}, timeout=30)
        assert {r["id"] for r in response.json()["results"]} == VISIBLE  # its visibility rules, the added one too
    finally:
        server.stop()
