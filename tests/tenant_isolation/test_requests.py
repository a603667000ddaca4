"""Tenant isolation of the read API's requests, served for real (`activitylog serve` in a subprocess on
127.0.0.1): one access dependency on every route, scopes on every route, no key for another
organization's project, no 500 on hostile input, private headers. A hypothesis property: random keys
never see another tenant's rows through any route."""

import os

import httpx
import pytest

from tests.helpers.tenants import ORGS, SHARED, auth_headers, get, post
from transforms.keys import create_key, revoke_key


def test_every_api_route_depends_on_the_access_rule(tmp_path):
    from fastapi.routing import APIRoute, iter_route_contexts

    from pipelines.api import create_app
    from pipelines.api.deps import require_access

    # Every route of the app, the routers' included (FastAPI includes routers lazily).
    routes = [c.route for c in iter_route_contexts(create_app(str(tmp_path / "lake")).routes)
              if isinstance(c.route, APIRoute)]
    api = [r for r in routes if r.path.startswith("/api/")]
    assert len(api) >= 11
    missing = [r.path for r in api if require_access not in [d.call for d in r.dependant.dependencies]]
    assert missing == []
    undocumented = [r.path for r in api if r.response_model is None and not r.path.endswith("/file")]
    assert undocumented == []  # every route but the downloads has a response model
    assert "/api/organizations/{org_id}/advanced_activity_logs/exports/{export_id}/file" in [r.path for r in api]
    assert all(not r.path.startswith("/api") for r in routes if r not in api)


@pytest.mark.slow
@pytest.mark.parametrize("method, path", [
    ("get", "/api/projects/1/activity_log/"), ("get", "/api/projects/1/advanced_activity_logs/"),
    ("get", "/api/projects/1/advanced_activity_logs/available_filters/"),
    ("post", "/api/projects/1/advanced_activity_logs/export"),
    ("get", "/api/projects/1/advanced_activity_logs/exports/" + "0" * 32),
    ("get", "/api/projects/1/advanced_activity_logs/exports/" + "0" * 32 + "/file"),
])
def test_scopes_are_checked_on_the_keys_own_projects(world, method, path):
    response = getattr(httpx, method)(world["url"] + path, headers=auth_headers(world, "other-scope"), timeout=30)
    assert response.status_code == 403, response.text
    assert response.json() == {"type": "permission_denied", "detail": "this key does not have the scope activity_log:read"}


def test_keys_create_refuses_a_project_of_another_organization(world, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.setenv("ACTIVITYLOG_LAKE", world["lake"].root)
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", os.devnull)
    assert main(["keys", "create", "--organization", "org-a", "--project", "3"]) == 2
    assert "project 3 is not a project of organization org-a: it belongs to organization org-b" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("params, attr, reason", [
    ({"page": str(2**62)}, "page", "must be between 1 and 100,000"),
    ({"page": "0"}, "page", "must be between 1 and 100,000"),
])
def test_page_numbers_are_bounded(world, params, attr, reason):
    response = get(world, "/api/projects/1/activity_log/", "p1", **params)
    assert response.status_code == 400 and response.json()["attr"] == attr and response.json()["detail"] == reason


@pytest.mark.slow
@pytest.mark.parametrize("params, attr, reason", [
    ({"end_date": "9999-12-31T23:59:59-23:59"}, "end", "is out of range (years 1 to 9999, in UTC)"),
    ({"start_date": "0001-01-01T00:00:00+23:59"}, "start", "is out of range (years 1 to 9999, in UTC)"),
    ({"detail_filters": "[" * 5000 + "]" * 5000}, "detail_filters", "nested deeper than 32 levels"),
    ({"detail_filters": '{"a":' * 2000 + "1" + "}" * 2000}, "detail_filters", "nested deeper than 32 levels"),
    ({"search_text": "x" * 55_000}, "search_text", "at most 1,000 characters, not 55,000"),
    ({"scopes": ",".join(["A"] * 1001)}, "scopes", "at most 1,000 values, not 1,001"),
])
def test_hostile_parameters_are_400_with_the_reason(world, params, attr, reason):
    for path in ("/api/projects/1/advanced_activity_logs/", "/api/organizations/org-a/advanced_activity_logs/"):
        key = "p1" if "projects" in path else "admin-a"
        response = httpx.get(world["url"] + path, params=params, headers=auth_headers(world, key), timeout=30)
        assert response.status_code == 400, response.text
        assert response.json()["attr"] == attr and reason in response.json()["detail"], response.text


@pytest.mark.slow
@pytest.mark.parametrize("content, reason", [
    ('{"filters": ' * 3000 + "{}" + "}" * 3000, "the body is nested deeper than 32 levels"),
    ("[" * 3000 + "]" * 3000, "the body is nested deeper than 32 levels"),
    ('{"format": "csv", "filters": {"search": "' + "x" * 70_000 + '"}}', "the body is at most 65,536 bytes"),
    ("{not json", "the body must be JSON"),
    ("[]", "the body must be a JSON object"),
    (b"\xff\xfe", "the body must be UTF-8 JSON"),
])
def test_hostile_export_bodies_are_400_with_the_reason(world, content, reason):
    response = post(world, "/api/projects/1/advanced_activity_logs/export", "p1", content=content)
    assert response.status_code == 400, response.text
    assert response.json()["attr"] == "body" and response.json()["detail"].startswith(reason), response.text


@pytest.mark.slow
def test_private_headers_and_links_that_ignore_host(world):
    ok = get(world, "/api/projects/1/advanced_activity_logs/", "p1", page_size=1)
    assert ok.headers["cache-control"] == "no-store"
    missing = get(world, "/api/projects/1/activity_log/")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == 'Bearer realm="activitylog"'
    assert missing.headers["cache-control"] == "no-store"
    wrong = get(world, "/api/projects/1/activity_log/", "alk_nope_nope")
    assert wrong.headers["www-authenticate"] == 'Bearer realm="activitylog", error="invalid_token"'
    assert get(world, "/api/projects/3/activity_log/", "p1").headers["cache-control"] == "no-store"
    headers = {**auth_headers(world, "p1"), "Host": "evil.example"}
    for path in ("/api/projects/1/advanced_activity_logs/?page_size=1", "/api/projects/1/activity_log/?page_size=1"):
        body = httpx.get(world["url"] + path, headers=headers, timeout=30).json()
        assert body["next"].startswith(world["url"] + "/api/projects/1/") and "evil" not in body["next"]


# -- the property: random keys and requests never see another tenant's rows ------------------------

ALL_PROJECTS = [p for ps in ORGS.values() for p in ps] + [SHARED, 999]


def _project_orgs(rows, project):
    return {r["organization_id"] for r in rows if r["team_id"] == project and r["organization_id"]}


def _allowed(rows, key, project, org):
    """(expected status, the ids the key may see) by the rule written out independently of the server."""
    if key["revoked"]:
        return 401, set()
    if "activity_log:read" not in key["scopes"]:
        return 403, set()
    if project is not None:
        owners = _project_orgs(rows, project)
        named = project in key["projects"] and (not owners or key["org"] in owners)
        if not (named or (key["admin"] and key["org"] in owners)):
            return 404, set()
        visible = [r for r in rows if (r["team_id"] == project and r["organization_id"] in (None, key["org"]))
                   or (r["team_id"] is None and r["organization_id"] == key["org"])]
    else:
        if not (key["admin"] and org == key["org"]):
            return 404, set()
        visible = [r for r in rows if r["organization_id"] == key["org"]]
    visible = [r for r in visible if not (r["was_impersonated"] and r["activity"] in ("logged_in", "logged_out"))]
    return 200, {r["id"] for r in visible}


@pytest.mark.slow
def test_random_keys_never_see_another_tenants_rows(world):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    rows, lake = world["rows"], world["lake"]
    by_id = {r["id"]: r for r in rows}
    keys_made: dict[tuple, str] = {}

    def token_for(key) -> str:
        identity = (key["org"], tuple(key["projects"]), key["admin"], tuple(key["scopes"]), key["revoked"])
        if identity not in keys_made:
            token, record = create_key(lake, key["org"], list(key["projects"]) or None, admin=key["admin"],
                                       scopes=list(key["scopes"]), check=False)  # as a careless operator could
            if key["revoked"]:
                revoke_key(lake, record.key_id)
            keys_made[identity] = token
        return keys_made[identity]

    key_strategy = st.fixed_dictionaries({
        "org": st.sampled_from(list(ORGS) + ["org-x"]),
        "projects": st.lists(st.sampled_from(ALL_PROJECTS), max_size=3, unique=True).map(sorted),
        "admin": st.booleans(),
        "scopes": st.sampled_from([["activity_log:read"], ["activity_log:read"], ["other:read"],
                                   ["activity_log:read", "other:read"]]),
        "revoked": st.sampled_from([False, False, False, True]),
    }).filter(lambda k: k["admin"] or k["projects"])
    request_strategy = st.fixed_dictionaries({
        "route": st.sampled_from(["activity_log", "advanced", "filters", "org_advanced", "org_filters", "export_status"]),
        "project": st.sampled_from(ALL_PROJECTS + [SHARED] * 3),  # the project two organizations share, often
        "org": st.sampled_from(list(ORGS) + ["org-x"]),
        "params": st.fixed_dictionaries({}, optional={
            "include_organization": st.sampled_from(["true", "false"]),
            "page_size": st.integers(1, 5).map(str),
            "was_impersonated": st.sampled_from(["true", "false"]),
            "search_text": st.sampled_from(["org", "someone", "shared"]),
            "scopes": st.sampled_from(["User", "OrganizationMembership", "Scope1,Scope3"]),
        }),
    })

    @given(key=key_strategy, request=request_strategy, own=st.booleans())
    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(key, request, own):
        route, project, org = request["route"], request["project"], request["org"]
        if own:  # half the requests ask for what the key names: its own project, its own organization
            project, org = (key["projects"] or [project])[0], key["org"]
        path = {"activity_log": f"/api/projects/{project}/activity_log/",
                "advanced": f"/api/projects/{project}/advanced_activity_logs/",
                "filters": f"/api/projects/{project}/advanced_activity_logs/available_filters/",
                "org_advanced": f"/api/organizations/{org}/advanced_activity_logs/",
                "org_filters": f"/api/organizations/{org}/advanced_activity_logs/available_filters/",
                "export_status": f"/api/projects/{project}/advanced_activity_logs/exports/{'a' * 32}"}[route]
        on_project = not route.startswith("org_")
        expected, allowed = _allowed(rows, key, project if on_project else None, org)
        if route == "filters":  # a project's filter lists: that project's rows only
            allowed = {i for i in allowed if by_id[i]["team_id"] == project}
        if expected == 200 and route == "export_status":
            expected = 404  # no such export
        params = dict(request["params"]) if route != "activity_log" else {
            k: v for k, v in request["params"].items() if k in ("page_size", "scopes")}
        url, seen = world["url"] + path, []
        headers = {"Authorization": f"Bearer {token_for(key)}"}
        response = httpx.get(url, params=params, headers=headers, timeout=30)
        assert response.status_code == expected, (key, path, params, response.text)
        text = response.text
        for other in set(ORGS) - {key["org"]}:
            assert other not in text, (key, path, other)  # no row, count, filter or message of another tenant
        assert lake.root not in text
        if expected != 200:
            return
        body = response.json()
        if route.endswith("filters"):
            emails = {by_id[i]["actor_email"] for i in allowed}
            assert {u["email"] for u in body["users"]} <= emails
            assert set(body["scopes"]) <= {by_id[i]["scope"] for i in allowed}
            return
        for _ in range(20):  # follow every page
            seen += [r["id"] for r in body["results"]]
            if not body["next"]:
                break
            body = httpx.get(body["next"], headers=headers, timeout=30).json()
        assert set(seen) <= allowed, (key, path, params, set(seen) - allowed)

    check()
