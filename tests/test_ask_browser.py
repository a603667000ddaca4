"""Ask in plain language in a real browser (Debian's chromium driven by Playwright, as in
tests/test_page_browser.py) against `activitylog serve` on 127.0.0.1: ask from the feed's box, see the
chips, edit one, run the feed; a question it cannot read shows the reason; no script error, nothing
loaded from elsewhere. A screenshot of the answer goes to ``$ACTIVITYLOG_PAGE_SCREENSHOTS`` when set."""

import os
import re
from pathlib import Path

import pytest

from tests.helpers.browser import LAPTOP, own_origin
from tests.test_page_browser import served  # noqa: F401 (a fixture)


@pytest.mark.slow
def test_ask_edit_the_chips_and_run_the_feed(served, browser, tmp_path):
    shots = Path(os.environ.get("ACTIVITYLOG_PAGE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    origin = served["url"]
    context = browser.new_context(viewport=LAPTOP, service_workers="block")
    errors = []
    context.route("**/*", lambda route: route.continue_() if own_origin(route.request.url, origin) else route.abort())
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(origin + "/")
        page.get_by_label("API key").fill(served["key"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(origin + "/")
        box = page.get_by_label("Ask in plain language")
        box.fill("feature flags changed by alice in the last 7 days")
        box.press("Enter")  # a GET form: the question is in the URL
        page.wait_for_url(re.compile(r".*/ask\?.*q=feature\+flags.*"))
        assert page.locator("#ask-total").inner_text() == "2 events"
        assert page.locator("ol.rows > li.row").count() == 2
        page.screenshot(path=str(shots / "ask.png"), full_page=True)
        scopes = page.get_by_label(re.compile(r"^scopes"))
        assert scopes.input_value() == "FeatureFlag"
        # Edit a chip (the activity) and run the feed with the edited filter.
        activity = page.get_by_label(re.compile(r"^activities"))
        assert activity.input_value() == "updated"
        activity.fill("created")
        page.get_by_role("button", name="Run in the feed").click()
        page.wait_for_url(re.compile(r".*/\?.*activities=created.*"))
        assert "scopes=FeatureFlag" in page.url and "preset=7d" in page.url
        assert page.locator("ol.rows > li.row").count() == 0
        assert page.get_by_label("Scopes").evaluate("s => [...s.selectedOptions].map(o => o.value)") == ["FeatureFlag"]
        # A question it cannot read: the reason, and the question kept in the box.
        page.goto(origin + "/ask?q=flags+by+zed")
        assert "I do not know a user called 'zed'" in page.get_by_role("alert").inner_text()
        assert page.get_by_label("Ask in plain language").input_value() == "flags by zed"
        assert errors == []
    finally:
        context.close()
