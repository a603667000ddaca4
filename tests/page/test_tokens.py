"""Viewer tokens of the activity log page: made with an organization's admin key (API) or by
`activitylog keys viewer-token` (CLI), showing one project's or one organization's rows only; refusals,
forged, expired and revoked tokens; the signing secret's file."""

import html
import re
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from tests.helpers.page import assert_no_org_b, entry_ids, page_client, sign_in, viewer_token
from tests.helpers.servers import child_env, script
from transforms.keys import create_key, revoke_key


# ------------------------------------------------------------------------------------------------
# Viewer tokens


def test_viewer_token_of_a_project_shows_only_that_project(client, world):
    made = viewer_token(client, world, "admin-a", {"project_id": 1, "ttl": "15m"})
    assert made["organization_id"] == "org-a" and made["project_id"] == 1
    token = made["token"]
    expires = datetime.fromisoformat(made["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=14) < expires - datetime.now(timezone.utc) <= timedelta(minutes=15)
    for path, extra in (("/", {}), ("/embed/feed", {}), ("/embed/history", {"scope": "FeatureFlag", "item_id": "42"})):
        response = client.get(path, params={"token": token, **extra})
        assert response.status_code == 200, path
        assert_no_org_b(response.text)
        assert "a-p2" not in response.text and "project-two-cohort" not in response.text
    feed = client.get("/embed/feed", params={"token": token})
    assert "a-recent" in entry_ids(feed.text)
    more_links = re.findall(r'href="([^"]+)"', feed.text)
    assert all("token=" in html.unescape(link) for link in more_links if "/entry/" in link or "/history" in link)
    assert client.get("/", params={"token": token, "project": "2"}).status_code == 404
    assert client.get("/", params={"token": token, "project": "3"}).status_code == 404
    assert 'class="export"' not in client.get("/", params={"token": token}).text  # a token only reads
    refused = client.post("/export", params={"token": token}, data={"csrf": "x"})
    assert refused.status_code == 403 and "signed-in session" in refused.text


def test_viewer_token_of_org_b_never_shows_org_a(client, world):
    token = viewer_token(client, world, "admin-b", {"ttl": "2m"})["token"]
    text = client.get("/embed/feed", params={"token": token}).text
    assert "b-secret" in entry_ids(text)
    assert not entry_ids(text) - {"b-secret"} and "Alice" not in text


def test_viewer_token_refusals(client, world):
    admin = {"Authorization": f"Bearer {world['keys']['admin-a']}"}
    for body, status, detail in [
        ({"project_id": 3}, 404, "not found"),                 # org-b's project
        ({"project_id": 999}, 404, "not found"),
        ({"ttl": "2d"}, 400, "between 1 second and 24 hours"),
        ({"ttl": "soon"}, 400, "is not a duration"),
    ]:
        response = client.post("/api/organizations/org-a/viewer_tokens", json=body, headers=admin)
        assert response.status_code == status and detail in response.json()["detail"], body
    project_key = {"Authorization": f"Bearer {world['keys']['p1']}"}
    assert client.post("/api/organizations/org-a/viewer_tokens", json={}, headers=project_key).status_code == 404
    assert client.post("/api/organizations/org-b/viewer_tokens", json={}, headers=admin).status_code == 404
    assert client.post("/api/organizations/org-a/viewer_tokens", json={}).status_code == 401

    token = viewer_token(client, world, "admin-a", {"project_id": 1})["token"]
    head, payload, signature = token.split(".")
    import base64
    import json as json_module

    claims = json_module.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["project"] = 3
    forged = base64.urlsafe_b64encode(json_module.dumps(claims).encode()).rstrip(b"=").decode()
    for bad, reason in [(f"{head}.{forged}.{signature}", "signature does not match"),
                        (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "signature does not match"),
                        ("garbage", "not a viewer token"), ("", "not a viewer token")]:
        response = client.get("/embed/feed", params={"token": bad})
        assert response.status_code == 401 and reason in response.text, bad
        assert_no_org_b(response.text)


def test_an_expired_token_or_a_revoked_issuer_ends_the_token(client, world):
    from pipelines.web import tokens

    secret = client.app.state.page_secret.get()
    expired, _ = tokens.mint(secret, "org-a", 1, 60, issuer=tokens.CLI_ISSUER, now=time.time() - 120)
    response = client.get("/embed/feed", params={"token": expired})
    assert response.status_code == 401 and "expired" in response.text
    admin_token, admin = create_key(world["lake"], "org-a", admin=True, label="issuer")
    made = client.post("/api/organizations/org-a/viewer_tokens", json={"project_id": 1},
                       headers={"Authorization": f"Bearer {admin_token}"}).json()["token"]
    assert client.get("/embed/feed", params={"token": made}).status_code == 200
    revoke_key(world["lake"], admin.key_id)
    response = client.get("/embed/feed", params={"token": made})
    assert response.status_code == 401 and "revoked" in response.text


@settings(max_examples=60, deadline=None)
@given(organization=st.text(min_size=1, max_size=20), project=st.one_of(st.none(), st.integers(0, 2**40)),
       ttl=st.integers(1, 86400), flip=st.integers(0, 400))
def test_property_tokens_verify_only_unaltered(organization, project, ttl, flip):
    from pipelines.web import tokens

    secret = b"s" * 64
    token, expires = tokens.mint(secret, organization, project, ttl, issuer="k1")
    claims = tokens.verify(secret, token)
    assert (claims.organization_id, claims.project_id, claims.expires_at) == (organization, project, expires)
    position = flip % len(token)
    altered = token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1:]
    with pytest.raises(tokens.TokenError):
        tokens.verify(secret, altered)
    with pytest.raises(tokens.TokenError, match="signature"):
        tokens.verify(b"t" * 64, token)


def test_the_secret_file_is_private_kept_and_made_only_when_used(world, app_env, tmp_path):
    from pipelines.web import tokens

    app_env.setenv("ACTIVITYLOG_PAGE_SECRET_FILE", str(tmp_path / "lazy" / "page.secret"))
    client = sign_in(page_client(world), world)
    assert client.get("/").status_code == 200 and not (tmp_path / "lazy").exists()  # no token: no file
    assert client.get("/embed/feed", params={"token": "alv1.x.y"}).status_code == 401
    assert (tmp_path / "lazy" / "page.secret").exists()
    (tmp_path / "bad").write_text("short\n")
    app_env.setenv("ACTIVITYLOG_PAGE_SECRET_FILE", str(tmp_path / "bad"))
    refused = page_client(world).get("/embed/feed", params={"token": "alv1.x.y"})
    assert refused.status_code == 503 and "too short" in refused.text

    path = tmp_path / "conf" / "page.secret"
    first = tokens.load_secret(path)
    assert path.stat().st_mode & 0o777 == 0o600 and len(first) == 64
    assert tokens.load_secret(path) == first


def test_viewer_token_body_is_checked(client, world):
    admin = {"Authorization": f"Bearer {world['keys']['admin-a']}"}
    response = client.post("/api/organizations/org-a/viewer_tokens", json={"project": 3}, headers=admin)
    assert response.status_code == 400 and response.json()["attr"] == "project"


def test_cli_viewer_token(world, tmp_path):
    env = child_env({"ACTIVITYLOG_LAKE": world["lake"].root, "ACTIVITYLOG_PAGE_SECRET_FILE": str(tmp_path / "s"),
                     "DAGSTER_HOME": str(tmp_path)})
    run = subprocess.run([str(script("activitylog")), "keys", "viewer-token", "--project", "1", "--ttl", "15m"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    from pipelines.web import tokens

    claims = tokens.verify(tokens.load_secret(tmp_path / "s"), run.stdout.strip())
    assert (claims.organization_id, claims.project_id, claims.issuer) == ("org-a", 1, "cli")
    assert 14 * 60 < claims.expires_at - time.time() <= 15 * 60
    run = subprocess.run([str(script("activitylog")), "keys", "viewer-token", "--organization", "org-b", "--ttl", "1h"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    claims = tokens.verify(tokens.load_secret(tmp_path / "s"), run.stdout.strip())
    assert (claims.organization_id, claims.project_id) == ("org-b", None)
    for argv, message in [(["--project", "1", "--ttl", "2d"], "between 1 second and 24 hours"),
                          ([], "for a project (--project ID) or an organization"),
                          (["--organization", "org-z"], "organization 'org-z' is unknown"),
                          (["--project", "999"], "project 999 is unknown"),
                          (["--project", "3", "--organization", "org-a"], "not a project of organization org-a")]:
        run = subprocess.run([str(script("activitylog")), "keys", "viewer-token", *argv], capture_output=True,
                             text=True, env=env, timeout=120)
        assert run.returncode == 2 and message in run.stderr, (argv, run.stderr)
