"""The activity log page (pipelines/web) over HTTP, what a session sees: the feed and its filters in the URL,
cursor pages, entries and their diffs, histories, embeds, security headers, inert hostile details, odd event
ids, tenant isolation of the HTML, exports from the page."""

import html
import re
import time
from datetime import timedelta

import pytest
from hypothesis import given, settings, strategies as st

from tests.helpers.page import NOW, assert_no_org_b, csrf_token, entry_ids, page_client, sign_in


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


def test_odd_event_ids_are_one_path_segment(client, world):
    sign_in(client, world)
    feed = client.get("/?scopes=Survey")
    link = re.search(r'href="(/entry/[^"]+)"', feed.text).group(1)
    assert link == "/entry/a%2Fodd%3Fid%3D1%26x?project=1"
    entry = client.get(html.unescape(link))
    assert entry.status_code == 200 and "<code>a/odd?id=1&amp;x</code>" in entry.text
    assert 'href="/history?project=1&amp;scope=Survey&amp;item_id=s%2F1%3Fx"' in entry.text
