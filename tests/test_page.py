"""The activity log page (pipelines/web) over HTTP: sign-in and sessions, CSRF, expiry, sign-out, revoked
keys, inert hostile details, tenant isolation of the HTML (sessions and viewer tokens), filters in the
URL, entries and their diffs, histories, embeds, security headers, viewer tokens (CLI and API)."""

import html
import re
import subprocess
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from hypothesis import given, settings, strategies as st

from tests.helpers.lakes import build_lake
from tests.helpers.page import (NOW, assert_no_org_b, csrf_token, entry_ids, page_client, page_events, sign_in,
                                viewer_token)
from tests.helpers.servers import child_env, script
from transforms.keys import create_key, revoke_key
from transforms.lake import Lake

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    lake = Lake.at(root / "lake")
    build_lake(lake, root / "landing", page_events(), name="a.jsonl")
    keys = {"p1": create_key(lake, "org-a", [1])[0], "admin-a": create_key(lake, "org-a", admin=True)[0],
            "p3": create_key(lake, "org-b", [3])[0], "admin-b": create_key(lake, "org-b", admin=True)[0],
            "no-scope": create_key(lake, "org-a", [1], scopes=["other:read"])[0]}
    return {"root": root, "lake": lake, "keys": keys}


@pytest.fixture
def app_env(world, monkeypatch, tmp_path):
    monkeypatch.setenv("ACTIVITYLOG_PAGE_SECRET_FILE", str(world["root"] / "page.secret"))
    monkeypatch.setenv("ACTIVITYLOG_API_EXPORTS", str(tmp_path / "exports"))
    monkeypatch.setenv("ACTIVITYLOG_API_RATE", "100000")
    monkeypatch.delenv("ACTIVITYLOG_SESSION_TTL", raising=False)
    monkeypatch.delenv("ACTIVITYLOG_PAGE_FRAME_ANCESTORS", raising=False)
    monkeypatch.delenv("ACTIVITYLOG_PUBLIC_URL", raising=False)
    return monkeypatch


@pytest.fixture
def client(world, app_env):
    return page_client(world)


# ------------------------------------------------------------------------------------------------
# Routes: the one access rule


def test_every_page_route_depends_on_the_access_rule(world, app_env):
    from pipelines.api import create_app
    from pipelines.api.deps import require_access

    routes = [c.route for c in iter_route_contexts(create_app(world["lake"].root).routes)
              if isinstance(c.route, APIRoute)]
    pages = [r for r in routes if not r.path.startswith(("/api/", "/docs", "/redoc", "/openapi.json"))]
    # Sign-in and sign-out show no rows: they take a pasted key or end a session, nothing else.
    no_rows = {("/signin", "GET"), ("/signin", "POST"), ("/signout", "POST")}
    shown = {(r.path, m) for r in pages for m in r.methods}
    assert no_rows <= shown
    missing = [r.path for r in pages if not {(r.path, m) for m in r.methods} <= no_rows
               and require_access not in [d.call for d in r.dependant.dependencies]]
    assert missing == []
    assert {"/", "/entry/{entry_id:path}", "/history", "/embed/feed", "/embed/history", "/export",
            "/export/{export_id}", "/export/{export_id}/file"} <= {r.path for r in pages}
    token_route = next(r for r in routes if r.path == "/api/organizations/{org_id}/viewer_tokens")
    assert require_access in [d.call for d in token_route.dependant.dependencies]


# ------------------------------------------------------------------------------------------------
# Sign-in, sessions, CSRF, sign-out


def test_the_feed_asks_to_sign_in_and_a_key_makes_a_session(client, world):
    first = client.get("/?scopes=FeatureFlag")
    assert first.status_code == 303
    target = urlsplit(first.headers["location"])
    assert target.path == "/signin" and parse_qs(target.query)["next"] == ["/?scopes=FeatureFlag"]
    form = client.get(first.headers["location"])
    assert form.status_code == 200 and 'type="password"' in form.text and '<label for="key">' in form.text
    signin_cookie = form.headers["set-cookie"]
    assert "HttpOnly" in signin_cookie and "SameSite=strict" in signin_cookie and "Secure" not in signin_cookie
    response = client.post("/signin", data={"key": world["keys"]["p1"], "csrf": csrf_token(form.text),
                                            "next": "/?scopes=FeatureFlag"})
    assert response.status_code == 303 and response.headers["location"] == "/?scopes=FeatureFlag"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("alp_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert len(session_id) >= 40 and world["keys"]["p1"] not in cookie
    secret = world["keys"]["p1"].split("_", 2)[2]
    assert secret not in session_id
    page = client.get("/?scopes=FeatureFlag")
    assert page.status_code == 200 and "a-recent" in entry_ids(page.text)
    assert world["keys"]["p1"] not in page.text and secret not in page.text  # the key is never rendered


def test_secure_cookie_behind_an_https_public_url(world, app_env):
    client = page_client(world, public_url="https://audit.example")
    form = client.get("/signin")
    assert "Secure" in form.headers["set-cookie"]
    response = client.post("/signin", data={"key": world["keys"]["p1"], "csrf": csrf_token(form.text)},
                           headers={"cookie": f"alp_signin={form.cookies['alp_signin']}"})
    assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]


@pytest.mark.parametrize("key, status, reason", [
    ("", 400, "Paste an API key"),
    ("alk_0000_wrong", 401, "This is not an active API key."),
    ("not-a-key", 401, "This is not an active API key."),
    ("no-scope", 403, "does not have the scope activity_log:read"),
])
def test_sign_in_refusals_say_why_and_make_no_session(client, world, key, status, reason):
    form = client.get("/signin")
    response = client.post("/signin", data={"key": world["keys"].get(key, key), "csrf": csrf_token(form.text)})
    assert response.status_code == status and reason in response.text
    assert "alp_session" not in response.headers.get("set-cookie", "")
    assert len(client.app.state.page_sessions) == 0


@pytest.mark.parametrize("csrf", [None, "", "wrong-token"])
def test_sign_in_without_the_form_token_is_refused(client, world, csrf):
    client.get("/signin")
    data = {"key": world["keys"]["p1"]} | ({"csrf": csrf} if csrf is not None else {})
    response = client.post("/signin", data=data)
    assert response.status_code == 403 and "CSRF token does not match" in response.text
    assert len(client.app.state.page_sessions) == 0 and "alp_session" not in client.cookies


def test_next_never_leaves_the_server(client, world):
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        form = client.get("/signin")
        response = client.post("/signin", data={"key": world["keys"]["p1"], "csrf": csrf_token(form.text),
                                                "next": target})
        assert response.status_code == 303 and response.headers["location"] == "/", target


@pytest.mark.parametrize("csrf", [None, "", "wrong-token"])
def test_sign_out_needs_the_session_token(client, world, csrf):
    sign_in(client, world)
    response = client.post("/signout", data={"csrf": csrf} if csrf is not None else {})
    assert response.status_code == 403 and "CSRF token does not match" in response.text
    assert len(client.app.state.page_sessions) == 1
    assert client.get("/").status_code == 200  # nothing changed: still signed in


def test_sign_out_ends_the_session(client, world):
    sign_in(client, world)
    page = client.get("/")
    session_id = client.cookies["alp_session"]
    response = client.post("/signout", data={"csrf": csrf_token(page.text)})
    assert response.status_code == 303 and response.headers["location"] == "/signin?reason=signed-out"
    assert 'alp_session=""' in response.headers["set-cookie"] and "Max-Age=0" in response.headers["set-cookie"]
    assert len(client.app.state.page_sessions) == 0
    again = client.get("/", cookies={"alp_session": session_id})  # the old cookie, replayed
    assert again.status_code == 303 and again.headers["location"].startswith("/signin")


def test_sessions_expire_when_idle(world, app_env):
    app_env.setenv("ACTIVITYLOG_SESSION_TTL", "1")
    client = sign_in(page_client(world), world)
    assert client.get("/").status_code == 200
    time.sleep(1.3)
    response = client.get("/")
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["location"]).query)["reason"] == ["ended"]
    assert len(client.app.state.page_sessions) == 0


def test_session_ttl_setting():
    from pipelines.web.sessions import DEFAULT_TTL, session_ttl

    assert session_ttl(None) == DEFAULT_TTL == 8 * 3600
    assert session_ttl("90") == 90 and session_ttl("30m") == 1800 and session_ttl("8h") == 28800
    for bad in ("0", "8 hours", "-5", "1mo"):
        with pytest.raises(ValueError, match="ACTIVITYLOG_SESSION_TTL"):
            session_ttl(bad)


def test_a_revoked_key_ends_its_sessions_at_the_next_request(world, app_env):
    token, key = create_key(world["lake"], "org-a", [1], label="to revoke")
    client = sign_in(page_client(world), world, token)
    assert client.get("/").status_code == 200
    assert revoke_key(world["lake"], key.key_id)
    response = client.get("/")
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["location"]).query)["reason"] == ["revoked"]
    assert len(client.app.state.page_sessions) == 0


# ------------------------------------------------------------------------------------------------
# What pages show


def test_hostile_details_are_rendered_inert(client, world):
    sign_in(client, world)
    for path in ("/", "/entry/a-xss", "/history?scope=Dashboard&item_id=9"):
        text = client.get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text, path
        assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in text, path  # shown, as text
        assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in text, path
        assert re.findall(r"<script[^>]*>", text) == ['<script src="/page-static/htmx/htmx.min.js" defer>',
                                                     '<script src="/page-static/page.js" defer>'], path


def test_security_headers_on_every_page(client, world):
    sign_in(client, world)
    for path in ("/", "/entry/a-recent", "/history?scope=FeatureFlag&item_id=42", "/signin", "/entry/nope",
                 "/page-static/page.css"):
        response = client.get(path)
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        if not path.startswith("/page-static"):
            assert response.headers["cache-control"] == "no-store", path
    assert client.get("/entry/nope").status_code == 404


def test_embeds_may_be_framed_as_configured(world, app_env):
    app_env.setenv("ACTIVITYLOG_PAGE_FRAME_ANCESTORS", "'self' https://host.example")
    client = sign_in(page_client(world), world)
    response = client.get("/embed/feed")
    assert response.status_code == 200
    assert "frame-ancestors 'self' https://host.example" in response.headers["content-security-policy"]
    assert 'class="top"' not in response.text and "Sign out" not in response.text  # no chrome
    history = client.get("/embed/history?scope=FeatureFlag&item_id=42")
    assert "frame-ancestors 'self' https://host.example" in history.headers["content-security-policy"]
    assert client.get("/").headers["content-security-policy"].endswith("frame-ancestors 'none'")
    app_env.setenv("ACTIVITYLOG_PAGE_FRAME_ANCESTORS", "'self'; script-src *")
    with pytest.raises(ValueError, match="ACTIVITYLOG_PAGE_FRAME_ANCESTORS"):
        page_client(world)


def test_feed_filters_from_the_url(client, world):
    sign_in(client, world)
    everything = entry_ids(client.get("/").text)
    assert {"a-recent", "a-xss", "a-imp", "a-sys"} <= everything and "a-p2" not in everything
    assert "a-org" not in everything  # organization-level activity only when asked
    assert entry_ids(client.get("/?scopes=FeatureFlag").text) == {"a-recent", "a-week"}
    assert entry_ids(client.get("/?preset=24h").text) == {"a-recent", "a-xss", "a-imp", "a-sys"}
    seven = entry_ids(client.get("/?preset=7d&scopes=FeatureFlag").text)
    assert seven == {"a-recent", "a-week"}
    assert entry_ids(client.get("/?preset=24h&scopes=FeatureFlag").text) == {"a-recent"}
    day = (NOW - timedelta(days=60)).date().isoformat()
    assert entry_ids(client.get(f"/?preset=custom&start_date={day}&end_date={day}").text) == {"a-old"}
    assert entry_ids(client.get(f"/?start_date={day}&end_date={day}").text) == {"a-old"}  # dates without a preset
    assert entry_ids(client.get(f"/?start_date={day}&end_date={day}&preset=24h").text) == {
        "a-recent", "a-xss", "a-imp", "a-sys"}  # a preset wins over dates left in the form
    assert entry_ids(client.get("/?was_impersonated=true").text) == {"a-imp"}
    assert "a-imp" not in entry_ids(client.get("/?was_impersonated=false&preset=24h").text)
    assert entry_ids(client.get("/?is_system=true").text) == {"a-sys"}
    assert "a-sys" not in entry_ids(client.get("/?is_system=false&preset=24h").text)
    assert entry_ids(client.get("/?item_ids=42").text) == {"a-recent", "a-week"}
    assert entry_ids(client.get("/?search_text=revenue").text) == {"a-old"}
    assert entry_ids(client.get("/?users=uuid-support").text) == {"a-imp"}
    assert entry_ids(client.get("/?activities=created&scopes=Insight").text) == {"a-old"}
    assert "a-org" in entry_ids(client.get("/?include_organization=true&preset=24h").text)
    page = client.get("/?scopes=FeatureFlag&preset=7d")
    assert 'value="FeatureFlag" selected' in page.text and 'value="7d" selected' in page.text  # the form keeps them
    bad = client.get("/?preset=yesterday")
    assert bad.status_code == 400 and "preset" in bad.text and "must be one of 24h" in bad.text
    bad = client.get("/?start_date=not-a-date&preset=custom")
    assert bad.status_code == 400 and "not a date" in bad.text
    bad = client.get("/?after=garbage")
    assert bad.status_code == 400 and "after" in bad.text
    bad = client.get("/?project=abc")
    assert bad.status_code == 400 and "must be a project id" in bad.text
    bad = client.get("/?search_text=" + "x" * 1001)
    assert bad.status_code == 400 and "at most 1,000 characters" in bad.text


def test_cursor_pages_without_and_with_htmx(client, world):
    sign_in(client, world)
    first = client.get("/?scopes=Notebook")
    ids = entry_ids(first.text)
    assert len(ids) == 50
    more = re.search(r'<a class="more" href="([^"]+)"', first.text).group(1)
    more = html.unescape(more)
    assert "scopes=Notebook" in more and "after=" in more and "project=1" in more
    second = client.get(more)
    assert second.status_code == 200 and "<html" in second.text  # a plain link: a whole page
    rest = entry_ids(second.text)
    assert len(rest) == 10 and not ids & rest
    fragment = client.get(more, headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and entry_ids(fragment.text) == rest and 'class="more"' not in fragment.text


def test_an_entry_shows_each_change_with_a_readable_diff(client, world):
    sign_in(client, world)
    page = client.get("/entry/a-recent")
    assert page.status_code == 200
    text = page.text
    assert "<del>old</del>" in text and "<ins>new</ins>" in text  # a text diff by words
    assert re.search(r"<code>new</code> <span class=\"op\">added</span>", text)
    assert re.search(r"<code>rollout</code> <span class=\"op\">changed</span>", text)
    assert re.search(r'<li class="removed"><span class="op">removed</span> <pre>beta</pre>', text)
    assert re.search(r'<li class="added"><span class="op">added</span> <pre>ga</pre>', text)
    assert "hunter2" not in text and "hunter3" not in text and 'class="masked">masked<' in text
    assert "<details class=\"raw\">" in text and "&#34;rollout&#34;: 50" in text
    assert 'href="/history?project=1&amp;scope=FeatureFlag&amp;item_id=42"' in text
    assert 'href="/?project=1&amp;users=uuid-alice"' in text
    assert '<time datetime="' in text


def test_history_of_a_resource_newest_first(client, world):
    sign_in(client, world)
    page = client.get("/history?scope=FeatureFlag&item_id=42")
    assert page.status_code == 200
    order = re.findall(r'href="/entry/([^"?]+)', page.text)
    assert order == ["a-recent", "a-week"]  # newest first; never org-b's flag 42
    assert "bravo-secret-flag" not in page.text and "b-secret" not in page.text
    assert "<ins>true</ins>" in page.text
    missing = client.get("/history?scope=FeatureFlag")
    assert missing.status_code == 400 and "needs a scope and an item_id" in missing.text


# ------------------------------------------------------------------------------------------------
# Tenant isolation of the HTML


def test_a_session_of_org_a_never_renders_org_b(client, world):
    sign_in(client, world, "admin-a")
    for path in ("/", "/?include_organization=true", "/?project=1", "/?project=2", "/?search_text=bravo",
                 "/?users=uuid-mallory", "/history?scope=FeatureFlag&item_id=42", "/embed/feed",
                 "/embed/history?scope=FeatureFlag&item_id=42"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_no_org_b(response.text, typed=path)
    assert "a-org" in entry_ids(client.get("/").text) and "a-p2" in entry_ids(client.get("/").text)  # the whole organization
    for path in ("/entry/b-secret", "/?project=3", "/history?scope=FeatureFlag&item_id=42&project=3"):
        response = client.get(path)
        assert response.status_code == 404 and "not found" in response.text, path
        assert_no_org_b(response.text)


def test_a_project_key_reads_only_its_projects(client, world):
    sign_in(client, world, "p1")
    assert client.get("/?project=2").status_code == 404
    assert client.get("/entry/a-p2").status_code == 404


@settings(max_examples=25, deadline=None)
@given(path=st.sampled_from(["/", "/embed/feed", "/history", "/entry/b-secret", "/entry/a-recent"]),
       params=st.dictionaries(st.sampled_from(["scopes", "users", "item_ids", "search_text", "project",
                                               "include_organization", "scope", "item_id", "preset"]),
                              st.sampled_from(["FeatureFlag", "42", "3", "1", "true", "uuid-mallory", "bravo",
                                               "org-b", "7d"]), max_size=4))
def test_property_org_a_never_sees_org_b(world, path, params):
    import os

    os.environ["ACTIVITYLOG_PAGE_SECRET_FILE"] = str(world["root"] / "page.secret")
    client = sign_in(page_client(world), world, "admin-a")
    response = client.get(path, params=params)
    assert response.status_code in (200, 400, 404)
    assert_no_org_b(response.text, typed=" ".join(params.values()))


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


# ------------------------------------------------------------------------------------------------
# Exports from the page: refusals (the export run itself: tests/test_page_browser.py)


@pytest.mark.parametrize("csrf", [None, "", "wrong-token"])
def test_export_without_the_session_token_is_refused(client, world, tmp_path, csrf):
    sign_in(client, world)
    response = client.post("/export?scopes=FeatureFlag", data={"format": "csv"} | (
        {"csrf": csrf} if csrf is not None else {}))
    assert response.status_code == 403 and "CSRF token does not match" in response.text
    exports = tmp_path / "exports"
    assert not exports.exists() or not any(exports.iterdir())  # nothing was recorded


def test_export_without_javascript_runs_and_downloads_xlsx(world, app_env, tmp_path):
    import fastexcel

    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    app_env.setenv("DAGSTER_HOME", str(home))
    app_env.setenv("ACTIVITYLOG_CONFIG", "/dev/null")
    client = sign_in(page_client(world), world)
    csrf = csrf_token(client.get("/?scopes=FeatureFlag").text)
    started = client.post("/export?project=1&scopes=FeatureFlag&preset=7d", data={"csrf": csrf, "format": "xlsx"})
    assert started.status_code == 303
    status_url = started.headers["location"]
    assert re.fullmatch(r"/export/[0-9a-f]{32}\?project=1", status_url)
    deadline, page = time.monotonic() + 240, None
    while time.monotonic() < deadline:
        page = client.get(status_url)
        assert page.status_code == 200
        if "download it" in page.text or "failed" in page.text:
            break
        assert 'http-equiv="refresh"' in page.text and "hx-trigger=\"every 1s\"" in page.text
        time.sleep(0.5)
    assert "download it" in page.text, page.text
    link = html.unescape(re.search(r'class="download" href="([^"]+)"', page.text).group(1))
    file = client.get(link)
    assert file.status_code == 200 and file.headers["cache-control"] == "no-store"
    path = tmp_path / "export.xlsx"
    path.write_bytes(file.content)
    sheet = fastexcel.read_excel(str(path)).load_sheet(0).to_polars()
    assert sorted(sheet["id"].to_list()) == ["a-recent", "a-week"]
    other = sign_in(page_client(world), world, "admin-a")  # the organization's access is not the project's
    assert other.get(status_url.split("?")[0]).status_code == 404
    assert other.get(link.split("?")[0]).status_code == 404


def test_export_format_and_foreign_exports(client, world):
    sign_in(client, world)
    csrf = csrf_token(client.get("/").text)
    response = client.post("/export", data={"format": "pdf", "csrf": csrf})
    assert response.status_code == 400 and "must be csv or xlsx" in response.text
    assert client.get("/export/0123456789abcdef").status_code == 404
    assert client.get("/export/0123456789abcdef/file").status_code == 404


# ------------------------------------------------------------------------------------------------
# Differences (pipelines/web/diff.py) on arbitrary values


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
                    max_leaves=20)


@settings(max_examples=100, deadline=None)
@given(before=st.text(max_size=60), after=st.text(max_size=60))
def test_property_text_diff_rebuilds_both_sides(before, after):
    from pipelines.web.diff import describe

    found = describe(before, after)
    if "masked" in (before, after):
        assert found.kind == "masked"
        return
    assert found.kind == "text"
    assert "".join(p.text for p in found.pieces if p.op != "added") == before
    assert "".join(p.text for p in found.pieces if p.op != "removed") == after


@settings(max_examples=100, deadline=None)
@given(before=st.dictionaries(st.text(max_size=6), JSON, max_size=6),
       after=st.dictionaries(st.text(max_size=6), JSON, max_size=6))
def test_property_object_diff_names_exactly_the_keys_that_differ(before, after):
    import json as json_module

    from pipelines.web.diff import describe

    found = describe(before, after)
    assert found.kind == "object"
    ops = {name: op for name, op, _ in found.entries}
    assert {n for n, op in ops.items() if op == "added"} == set(after) - set(before)
    assert {n for n, op in ops.items() if op == "removed"} == set(before) - set(after)
    same = lambda a, b: json_module.dumps(a, sort_keys=True) == json_module.dumps(b, sort_keys=True)  # noqa: E731
    assert {n for n, op in ops.items() if op == "changed"} == {
        n for n in set(before) & set(after) if not same(before[n], after[n])}


@settings(max_examples=100, deadline=None)
@given(before=st.lists(JSON, max_size=8), after=st.lists(JSON, max_size=8))
def test_property_list_diff_turns_before_into_after(before, after):
    from collections import Counter

    from pipelines.web.diff import describe, show

    found = describe(before, after)
    assert found.kind == "list"
    kept = Counter(show(v) for v in before) - Counter(found.removed)
    assert kept + Counter(found.added) == Counter(show(v) for v in after)


@settings(max_examples=100, deadline=None)
@given(before=JSON, after=JSON)
def test_property_any_values_have_a_diff(before, after):
    from pipelines.web.diff import describe

    assert describe(before, after).kind in ("text", "object", "list", "value", "masked")
    assert describe(before, after, masked=True).kind == "masked"


def test_sign_in_again_drops_the_previous_session(client, world):
    sign_in(client, world)
    first = client.cookies["alp_session"]
    sign_in(client, world, "admin-a")
    assert client.cookies["alp_session"] != first and len(client.app.state.page_sessions) == 1
    assert client.get("/", cookies={"alp_session": first}).status_code == 303


def test_odd_event_ids_are_one_path_segment(client, world):
    sign_in(client, world)
    feed = client.get("/?scopes=Survey")
    link = re.search(r'href="(/entry/[^"]+)"', feed.text).group(1)
    assert link == "/entry/a%2Fodd%3Fid%3D1%26x?project=1"
    entry = client.get(html.unescape(link))
    assert entry.status_code == 200 and "<code>a/odd?id=1&amp;x</code>" in entry.text
    assert 'href="/history?project=1&amp;scope=Survey&amp;item_id=s%2F1%3Fx"' in entry.text


def test_pages_without_a_session_or_with_a_huge_form(client, world):
    embed = client.get("/embed/feed")
    assert embed.status_code == 401 and "sign in with an API key" in embed.text  # an iframe is not redirected
    hx = client.get("/", headers={"HX-Request": "true"})
    assert hx.status_code == 401 and hx.headers["hx-redirect"].startswith("/signin?next=")
    form = client.get("/signin")
    huge = client.post("/signin", data={"key": "x" * 20_000, "csrf": csrf_token(form.text)})
    assert huge.status_code == 400 and "the form is at most 16,384 bytes" in huge.text
    sign_in(client, world)
    assert client.get("/entry/" + "x" * 1001).status_code == 400


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
