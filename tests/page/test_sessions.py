"""The activity log page (pipelines/web) over HTTP, signing in: every page route behind the one access rule,
sign-in with an API key and its refusals, session cookies, CSRF, sign-out, idle expiry, revoked keys, pages
asked for without a session. The ``world``, ``app_env`` and ``client`` fixtures are this directory's
(conftest.py)."""

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from tests.helpers.page import csrf_token, entry_ids, page_client, sign_in
from transforms.keys import create_key, revoke_key


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


def test_sign_in_again_drops_the_previous_session(client, world):
    sign_in(client, world)
    first = client.cookies["alp_session"]
    sign_in(client, world, "admin-a")
    assert client.cookies["alp_session"] != first and len(client.app.state.page_sessions) == 1
    assert client.get("/", cookies={"alp_session": first}).status_code == 303


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
