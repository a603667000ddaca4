"""The activity log page in a real browser (Debian's chromium driven by Playwright) against
`activitylog serve` in a subprocess on 127.0.0.1: sign in, filter, an entry's diff, a history, an
export downloaded and read, sign out; nothing loaded from elsewhere, no script error, no CSP
violation, usable by keyboard and at phone width. Screenshots of the feed, an entry and a history at
laptop width go to a temporary directory, or to ``$ACTIVITYLOG_PAGE_SCREENSHOTS`` when set
(``docs/screenshots`` for the README)."""

import csv
import io
import os
import re
from pathlib import Path

import pytest

from tests.helpers.browser import LAPTOP, PHONE, own_origin
from tests.helpers.lakes import build_lake
from tests.helpers.page import B_MARKERS, page_events
from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server
from transforms.keys import create_key
from transforms.lake import Lake


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("page-browser")
    lake = Lake.at(root / "lake")
    build_lake(lake, root / "landing", page_events(), name="a.jsonl")
    key = create_key(lake, "org-a", [1], label="browser")[0]
    admin = create_key(lake, "org-a", admin=True, label="host application")[0]
    home = root / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    env = child_env({"ACTIVITYLOG_LAKE": lake.root, "ACTIVITYLOG_CONFIG": os.devnull, "DAGSTER_HOME": str(home),
                     "ACTIVITYLOG_API_EXPORTS": str(root / "exports"),
                     "ACTIVITYLOG_PAGE_SECRET_FILE": str(root / "page.secret")})
    process = start_server("activitylog-serve-page", [script("activitylog"), "serve", "--host", LOOPBACK, "--port",
                                                      str(port)], url=f"http://{LOOPBACK}:{port}/openapi.json",
                           env=env, timeout=60)
    try:
        yield {"url": f"http://{LOOPBACK}:{port}", "key": key, "admin": admin, "root": root}
    finally:
        process.stop()


def _shots(tmp_path) -> Path:
    target = Path(os.environ.get("ACTIVITYLOG_PAGE_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.mark.slow
def test_sign_in_filter_diff_history_export_sign_out(served, browser, tmp_path):
    origin = served["url"]
    shots = _shots(tmp_path)
    context = browser.new_context(viewport=LAPTOP, accept_downloads=True, service_workers="block",
                                  timezone_id="Europe/Paris", locale="en-GB")
    requests, failures, errors, console = [], [], [], []
    context.on("request", lambda request: requests.append(request.url))
    context.route("**/*", lambda route: route.continue_() if own_origin(route.request.url, origin) else route.abort())
    page = context.new_page()
    page.on("requestfailed", lambda request: failures.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    try:
        page.goto(origin + "/?scopes=FeatureFlag")
        assert page.url.startswith(origin + "/signin?next=")
        page.get_by_label("API key").fill(served["key"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(origin + "/?scopes=FeatureFlag")
        assert page.locator("ol.rows > li.row").count() == 2
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["alp_session"]["httpOnly"] and cookies["alp_session"]["sameSite"] == "Strict"
        assert served["key"] not in page.content()

        # Local time: the script rewrote the UTC text; the machine-readable value stays UTC.
        first_time = page.locator("ol.rows time").first
        assert first_time.get_attribute("datetime").endswith("Z")
        assert "UTC" not in first_time.inner_text() and "UTC" in first_time.get_attribute("title")

        # Filter with the form (a GET: the URL holds it, the back button returns to it).
        page.get_by_role("link", name="Clear").click()
        page.wait_for_url(re.compile(r".*/\?project=1$"))
        page.get_by_label("Date").select_option("24h")
        page.get_by_label("Scopes").select_option("Dashboard")
        page.get_by_role("button", name="Apply filters").click()
        page.wait_for_url(re.compile(r".*preset=24h.*scopes=Dashboard.*"))
        rows = page.locator("ol.rows > li.row")
        assert rows.count() == 1
        assert "<script>alert('pwned')</script>" in rows.first.inner_text()  # shown as text, never run
        page.go_back()
        page.wait_for_url(re.compile(r".*/\?project=1$"))
        page.go_forward()
        page.wait_for_url(re.compile(r".*scopes=Dashboard.*"))

        # Load more with htmx (in place), from the Notebook rows.
        page.goto(origin + "/?scopes=Notebook")
        assert page.locator("ol.rows > li.row").count() == 50
        page.get_by_role("link", name="Load more").click()
        # A locator wait (the page's CSP refuses the string evaluation wait_for_function would need).
        from playwright.sync_api import expect

        expect(page.locator("ol.rows > li.row")).to_have_count(60)
        assert page.url.endswith("/?scopes=Notebook")  # in place: still the first page's URL
        assert "UTC" not in page.locator("ol.rows time").last.inner_text()  # swapped rows localised too

        # The feed screenshot, then an entry and its diff.
        page.goto(origin + "/?preset=7d")
        page.screenshot(path=str(shots / "feed.png"))
        page.locator("a[href^='/entry/a-recent']").click()
        page.wait_for_url(re.compile(r".*/entry/a-recent.*"))
        assert page.locator("table.changes del", has_text="old").count() == 1
        assert page.locator("table.changes ins", has_text="new").count() == 1
        assert "hunter" not in page.content() and page.locator(".masked").count() >= 2
        page.screenshot(path=str(shots / "entry.png"))
        raw = page.locator("details.raw")
        assert not raw.locator("pre").is_visible()
        raw.locator("summary").click()
        assert raw.locator("pre").is_visible() and '"rollout": 50' in raw.locator("pre").inner_text()

        # The resource's history, from the entry.
        page.get_by_role("link", name="history of this FeatureFlag").click()
        page.wait_for_url(re.compile(r".*/history\?.*scope=FeatureFlag.*item_id=42.*"))
        assert page.locator("ol.history > li.row").count() == 2
        page.screenshot(path=str(shots / "history.png"), full_page=True)

        # Export the current filters as CSV: progress by htmx polling, then the download.
        page.goto(origin + "/?scopes=FeatureFlag")
        page.get_by_label("Format").select_option("csv")
        page.get_by_role("button", name="Export").click()
        download_link = page.locator("#export-status a.download")
        download_link.wait_for(timeout=180_000)
        with page.expect_download() as info:
            download_link.click()
        path = info.value.path()
        exported = list(csv.DictReader(io.StringIO(Path(path).read_text())))
        assert sorted(r["id"] for r in exported) == ["a-recent", "a-week"]
        assert not any(marker in Path(path).read_text() for marker in B_MARKERS)

        # Keyboard: the first Tab reaches the skip link, focus is visible.
        page.goto(origin + "/")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline not in ("", "none")

        # Phone width: one column, nothing wider than the screen.
        phone = context.new_page()
        phone.set_viewport_size(PHONE)
        for path in ("/", "/entry/a-recent", "/history?scope=FeatureFlag&item_id=42"):
            phone.goto(origin + path)
            assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
        phone.close()

        # Sign out: the session ends, the feed asks for a key again.
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r".*/signin\?reason=signed-out"))
        page.goto(origin + "/")
        assert "/signin" in page.url

        assert [url for url in requests if not own_origin(url, origin)] == []
        assert failures == [] and errors == [], (failures, errors)
        assert console == [], console  # no CSP violation, no script error
    finally:
        context.close()


@pytest.mark.slow
def test_viewer_token_embeds_in_an_iframe_of_its_own_origin_only(served, browser):
    import httpx

    origin = served["url"]
    made = httpx.post(origin + "/api/organizations/org-a/viewer_tokens", json={"project_id": 1, "ttl": "5m"},
                      headers={"Authorization": f"Bearer {served['admin']}"}, timeout=30)
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    context = browser.new_context(viewport=LAPTOP, service_workers="block")
    console, errors = [], []
    page = context.new_page()
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(origin + "/signin")  # a page of the server's origin, then frames in it
        page.set_content(f'<iframe id="embed" src="{origin}/embed/feed?token={token}" width="900" height="600">'
                         f'</iframe><iframe id="page" name="page" src="{origin}/?token={token}"></iframe>')
        embed = page.frame_locator("#embed")
        embed.locator("ol.rows > li.row").first.wait_for(timeout=30_000)
        text = embed.locator("body").inner_text()
        assert "Sign out" not in text and not any(marker in text for marker in B_MARKERS)
        assert embed.locator("a.more").count() == 1 and "token=" in embed.locator("a.more").get_attribute("href")
        embed.locator("a.more").click()  # htmx in the frame: the next page in place
        embed.locator("ol.rows > li.row").nth(50).wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        framed = page.frame(name="page")  # frame-ancestors 'none': the full page never shows in a frame
        assert framed is not None and not framed.url.startswith(origin), framed.url
        assert any("frame-ancestors" in message for message in console), console
        assert errors == []
    finally:
        context.close()
