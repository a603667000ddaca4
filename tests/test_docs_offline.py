"""/docs and /redoc work without internet access: Swagger UI and ReDoc come from the package
(pipelines/static/), checked in a real browser (Debian's chromium driven by Playwright) against
`activitylog serve` in a subprocess."""

import os
import re

import httpx
import pytest
from fastapi.testclient import TestClient

from pipelines.api import STATIC_DIR, create_app
from tests.helpers.browser import own_origin
from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server

ASSETS = ["swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css", "swagger-ui/favicon-32x32.png",
          "redoc/redoc.standalone.js"]


@pytest.fixture
def client(tmp_path):
    return TestClient(create_app(str(tmp_path / "lake")))


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_reference_only_their_own_server(client, path):
    page = client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r"url: *'([^']+)'", page.text)
    assert loaded, page.text
    assert all(url.startswith("/") and not url.startswith("//") for url in loaded), loaded
    assert "cdn." not in page.text and "googleapis" not in page.text
    policy = page.headers["content-security-policy"]  # what a bundle would fetch by itself is blocked too
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy


def test_vendored_assets_are_served_with_their_licences(client):
    for asset in ASSETS:
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200, asset
        assert response.content == (STATIC_DIR / asset).read_bytes()
    assert client.get("/static/swagger-ui/swagger-ui-bundle.js").headers["content-type"].startswith(
        ("text/javascript", "application/javascript"))
    assert b"cdn.redoc.ly" not in (STATIC_DIR / "redoc/redoc.standalone.js").read_bytes()  # its logo: inline
    for licence in ("swagger-ui/LICENSE", "swagger-ui/NOTICE", "redoc/LICENSE"):
        assert (STATIC_DIR / licence).stat().st_size > 0
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "activitylog"
    assert "/docs" not in client.get("/openapi.json").json()["paths"]  # the docs routes are not API operations


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    (root / "dagster").mkdir()
    (root / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    env = child_env({"ACTIVITYLOG_LAKE": str(root / "lake"), "ACTIVITYLOG_CONFIG": os.devnull,
                     "DAGSTER_HOME": str(root / "dagster")})
    process = start_server("activitylog-serve", [script("activitylog"), "serve", "--host", LOOPBACK, "--port", str(port)],
                           url=f"http://{LOOPBACK}:{port}/openapi.json", env=env, timeout=60)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        process.stop()


def _open(browser, url: str, origin: str):
    """A page at ``url`` that may not reach anything but ``origin`` (other requests are recorded, then
    aborted: the machine is offline as far as the page knows)."""
    context = browser.new_context(service_workers="block")
    requests, failures, errors = [], [], []
    context.on("request", lambda request: requests.append(request.url))
    context.route("**/*", lambda route: route.continue_() if own_origin(route.request.url, origin) else route.abort())
    page = context.new_page()
    page.on("requestfailed", lambda request: failures.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200
    return context, page, requests, failures, errors


@pytest.mark.slow
def test_swagger_ui_renders_offline_in_a_browser(server, browser):
    context, page, requests, failures, errors = _open(browser, f"{server}/docs", server)
    try:
        page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        assert "activitylog" in page.inner_text(".swagger-ui .info .title")
        page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        paths = [p.strip().replace("\u200b", "") for p in page.locator(".opblock-summary-path").all_inner_texts()]
        assert "/api/projects/{project_id}/activity_log/" in paths, paths
        page.wait_for_load_state("networkidle")
        assert f"{server}/static/swagger-ui/swagger-ui-bundle.js" in requests
        assert f"{server}/openapi.json" in requests
        assert [url for url in requests if not own_origin(url, server)] == []
        assert failures == [] and errors == []
    finally:
        context.close()


@pytest.mark.slow
def test_redoc_renders_offline_in_a_browser(server, browser):
    context, page, requests, failures, errors = _open(browser, f"{server}/redoc", server)
    try:
        page.wait_for_selector("h1", timeout=30_000)
        assert "activitylog" in page.inner_text("h1")
        page.get_by_text("/api/projects/{project_id}/activity_log/").first.wait_for(state="attached", timeout=30_000)
        page.wait_for_load_state("networkidle")
        assert f"{server}/static/redoc/redoc.standalone.js" in requests
        assert f"{server}/openapi.json" in requests
        assert [url for url in requests if not own_origin(url, server)] == []
        assert failures == [] and errors == []
    finally:
        context.close()


@pytest.mark.slow
def test_docs_answer_on_the_served_api(server):
    for path in ("/docs", "/redoc", "/static/redoc/redoc.standalone.js"):
        assert httpx.get(server + path, timeout=30).status_code == 200, path
