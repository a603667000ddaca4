"""Tenant isolation of the read API's exports, served for real (`activitylog serve` in a subprocess on
127.0.0.1): an export holds and hands out only what the asking key may read (its organization, the
visibility rules), its status is there right after the 202, a server keeps answering while exports
run, a key's exports are limited by a quota."""

import json
import threading
import time

import httpx
import pytest

from tests.helpers.tenants import auth_headers, get, post, start_api


def wait_export(world, status_url, key, timeout=120.0) -> dict:
    deadline, body = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        response = httpx.get(status_url, headers=auth_headers(world, key), timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"export not finished in {timeout}s: {body}")


@pytest.mark.slow
def test_organization_export_holds_only_that_organization(world):
    base = "/api/organizations/org-a/advanced_activity_logs"
    started = post(world, base + "/export", "admin-a", {"format": "jsonl", "filters": {}})
    assert started.status_code == 202, started.text
    export_id = started.json()["id"]
    status = wait_export(world, world["url"] + f"{base}/exports/{export_id}", "admin-a")
    assert status["status"] == "succeeded", status
    own = [r for r in world["rows"] if r["organization_id"] == "org-a"
           and not (r["was_impersonated"] and r["activity"] in ("logged_in", "logged_out"))]  # visibility rules
    assert status["manifest"]["rows"] == len(own)
    text = json.dumps(status)
    assert world["lake"].root not in text and str(world["root"]) not in text  # no server path
    assert "org-b" not in text and "org-c" not in text  # nor another tenant's counts
    assert "lake" not in status["manifest"] and "integrity" not in status["manifest"]
    file = httpx.get(status["file"], headers=auth_headers(world, "admin-a"), timeout=30)
    assert file.status_code == 200 and file.headers["cache-control"] == "no-store"
    exported = [json.loads(line) for line in file.text.splitlines()]
    assert {r["organization_id"] for r in exported} == {"org-a"}
    assert sorted(r["id"] for r in exported) == sorted(r["id"] for r in own)
    for key, path in [("admin-b", f"/api/organizations/org-b/advanced_activity_logs/exports/{export_id}"),
                      ("admin-b", f"/api/organizations/org-b/advanced_activity_logs/exports/{export_id}/file"),
                      ("admin-b", f"{base}/exports/{export_id}"), ("p1", f"{base}/exports/{export_id}/file"),
                      ("p1", f"/api/projects/1/advanced_activity_logs/exports/{export_id}")]:
        response = get(world, path, key)
        assert response.status_code == 404 and response.json()["detail"] == "not found", (key, path, response.text)


@pytest.mark.slow
def test_an_admin_export_leaves_out_what_the_visibility_rules_hide(world):
    base = "/api/projects/1/advanced_activity_logs"
    started = post(world, base + "/export", "admin-a", {"format": "csv"})
    assert started.status_code == 202, started.text
    export_id = started.json()["id"]
    status = wait_export(world, world["url"] + f"{base}/exports/{export_id}", "admin-a")
    assert status["status"] == "succeeded", status
    csv_text = get(world, f"{base}/exports/{export_id}/file", "admin-a").text
    assert status["manifest"]["rows"] == 3 and "org-a-p1-imp" not in csv_text  # admins are not staff either
    own = post(world, base + "/export", "p1", {"format": "csv"}).json()["id"]
    mine = wait_export(world, world["url"] + f"{base}/exports/{own}", "p1")
    body = get(world, f"{base}/exports/{own}/file", "p1").text
    assert mine["manifest"]["rows"] == 3 and "org-a-p1-imp" not in body


@pytest.mark.slow
def test_status_right_after_the_202_is_never_404(world):
    base = "/api/projects/1/advanced_activity_logs"
    for _ in range(3):
        export_id = post(world, base + "/export", "p1", {"format": "csv"}).json()["id"]
        response = get(world, f"{base}/exports/{export_id}", "p1")
        assert response.status_code == 200, response.text
        assert response.json()["status"] in ("queued", "running", "succeeded")
        assert get(world, f"{base}/exports/{export_id}/file", "p1").status_code in (200, 404)


@pytest.mark.slow
def test_concurrent_exports_never_hang_the_server(world):
    """Exports run in processes of their own: a burst of them while clients read, every read answers
    quickly, every export finishes."""
    base = "/api/organizations/org-a/advanced_activity_logs"
    answers: list = []

    def start():
        answers.append(post(world, base + "/export", "admin-a", {"format": "csv"}))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    slowest = 0.0
    for _ in range(20):
        began = time.monotonic()
        assert get(world, "/api/projects/1/advanced_activity_logs/", "p1", page_size=2).status_code == 200
        slowest = max(slowest, time.monotonic() - began)
    for thread in threads:
        thread.join(30)
    assert [a.status_code for a in answers] == [202] * 8
    assert slowest < 2.0, f"a read took {slowest:.1f}s while exports ran"
    for answer in answers:
        status = wait_export(world, world["url"] + f"{base}/exports/{answer.json()['id']}", "admin-a", timeout=240)
        assert status["status"] == "succeeded", status
    began = time.monotonic()
    assert get(world, "/api/projects/1/activity_log/", "p1").status_code == 200
    assert time.monotonic() - began < 2.0


@pytest.mark.slow
def test_export_quota_per_key_answers_429(world):
    url, server = start_api(world["root"], world["lake"], "quota", ACTIVITYLOG_API_EXPORT_QUOTA="1")
    try:
        headers = auth_headers(world, "p1")
        codes = [httpx.post(url + "/api/projects/1/advanced_activity_logs/export", headers=headers, json={},
                            timeout=30) for _ in range(2)]
        assert [c.status_code for c in codes] == [202, 429]
        assert "at most 1 exports" in codes[1].json()["detail"] and codes[1].headers["retry-after"]
    finally:
        server.stop()
