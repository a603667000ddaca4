"""The publisher API, served for real (`activitylog serve` in a subprocess on 127.0.0.1), then
`activitylog ingest` run for real: events in over HTTP land in ``activity_log`` once, nothing lost
(``kill -9`` of the server right after a 202), nothing written twice (Idempotency-Key, the same ids
again); who may publish where: the path's tenant wins over the body's, no key publishes into another
tenant, the write and read scopes are apart, a revoked key is refused."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess

import httpx
import polars as pl
import pytest

from tests.helpers.events import make_event
from tests.helpers.publish import (auth_headers, batch_with_invalid, expected_sha256, ingest, post, serve,
                                   spooled)
from tests.helpers.servers import script
from transforms.commitments import canonical
from transforms.keys import WRITE_SCOPE, create_key
from transforms.lake import ACTIVITY_LOG, ACTIVITY_RAW
from transforms.landing import scan_landing


pytestmark = pytest.mark.local_lake


# ------------------------------------------------------------------------------------------------
# End to end: publish, kill -9, ingest for real


@pytest.mark.slow
def test_published_events_are_ingested_once_and_nothing_is_lost(world):
    events, invalid = batch_with_invalid("batch")
    response = post(world, "/api/projects/1/activity_log/events", "w1", {"events": events})
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (97, 3)
    assert [r["index"] for r in body["results"]] == list(range(100))
    for result in body["results"]:
        if result["index"] in invalid:
            assert result == {"index": result["index"], "status": "rejected", "reason": invalid[result["index"]]}
        else:
            event = events[result["index"]]
            assert result == {"index": result["index"], "status": "accepted", "id": event["id"],
                              "sha256": expected_sha256(event, 1, "org-a")}

    # The same Idempotency-Key twice: the same bytes, nothing written the second time.
    once = [make_event(id=f"once-{i}", created_at="2024-03-10T10:00:00Z") for i in range(5)]
    first = post(world, "/api/projects/1/activity_log/events", "w1", {"events": once}, **{"Idempotency-Key": "k-1"})
    files_before = len(scan_landing(str(world["landing"])).files)
    again = post(world, "/api/projects/1/activity_log/events", "w1", {"events": once}, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert len(scan_landing(str(world["landing"])).files) == files_before

    # The same event ids again without a key: spooled again, and the ingest counts them as duplicates.
    resent = post(world, "/api/projects/1/activity_log/events", "w1", {"events": once[:2]})
    assert resent.status_code == 202
    # The same id with other content: accepted into the spool, then quarantined by the ingest, as from a file.
    forged = post(world, "/api/projects/1/activity_log/events", "w1", {**once[0], "activity": "deleted"})
    assert forged.status_code == 202

    # kill -9 of a server right after its 202: the events were on disk before the answer.
    url, second = serve(world, "killed")
    killed = [make_event(id=f"killed-{i}", created_at="2024-03-11T10:00:00Z") for i in range(50)]
    answered = post(world, "/api/projects/1/activity_log/events", "w1", {"events": killed}, url=url,
                    **{"Idempotency-Key": "k-killed"})
    os.killpg(second.pid, signal.SIGKILL)
    second.process.wait(30)
    assert answered.status_code == 202 and answered.json()["accepted"] == 50
    second.stop()
    # Its idempotency record survived too: another server process answers the retry with the same bytes.
    replay = post(world, "/api/projects/1/activity_log/events", "w1", {"events": killed},
                  **{"Idempotency-Key": "k-killed"})
    assert replay.content == answered.content and replay.headers["Idempotent-Replayed"] == "true"

    done = ingest(world)
    assert "duplicates               2" in done.stdout, done.stdout
    log = world["lake"].scan(ACTIVITY_LOG).select("id", "team_id", "organization_id").collect()
    batch_ids = {e["id"] for i, e in enumerate(events) if i not in invalid}
    assert set(log.filter(pl.col("id").str.starts_with("batch-"))["id"]) == batch_ids
    assert log.filter(pl.col("id").str.starts_with("batch-")).height == 97
    assert log.filter(pl.col("id").str.starts_with("once-")).height == 5  # one copy each
    assert world["lake"].scan(ACTIVITY_RAW).filter(pl.col("id") == "once-0").collect()["activity"].to_list() == [
        "updated"]
    quarantine = world["lake"].scan("activity_quarantine").collect()
    assert quarantine["quarantine_reason"].to_list() == ["id once-0 already stored with different content"]
    assert log.filter(pl.col("id").str.starts_with("killed-")).height == 50
    assert set(log.filter(pl.col("id").str.contains("^(batch|once|killed)-"))["team_id"]) == {1}
    raw = world["lake"].scan(ACTIVITY_RAW).filter(pl.col("id").str.starts_with("batch-")).collect()
    assert raw["payload"].map_elements(lambda p: hashlib.sha256(canonical(json.loads(p))).hexdigest(),
                                       return_dtype=pl.String).sort().to_list() == sorted(
        r["sha256"] for r in body["results"] if r["status"] == "accepted")

    # And the read API serves them to a read key of the project.
    page = httpx.get(world["url"] + "/api/projects/1/activity_log/", params={"page_size": 500, "scope": "FeatureFlag"},
                     headers=auth_headers(world, "r1"), timeout=60)
    assert page.status_code == 200, page.text
    assert {r["id"] for r in page.json()["results"]} >= batch_ids

    # `activitylog keys create --scope activity_log:write`, now that the lake knows org-a's project 1.
    created = subprocess.run([str(script("activitylog")), "keys", "create", "--lake", world["lake"].root,
                              "--organization", "org-a", "--project", "1", "--scope", "activity_log:write"],
                             capture_output=True, text=True, env=world["env"](world["root"]), timeout=300)
    assert created.returncode == 0, created.stderr
    assert "scopes activity_log:write." in created.stdout
    token = created.stdout.strip().splitlines()[-1]
    response = httpx.post(world["url"] + "/api/projects/1/activity_log/events", timeout=60,
                          json=make_event(id="cli-key-1", created_at="2024-03-12T10:00:00Z"),
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202, response.text
    response = httpx.get(world["url"] + "/api/projects/1/activity_log/", headers={"Authorization": f"Bearer {token}"},
                         timeout=60)
    assert response.status_code == 403


# ------------------------------------------------------------------------------------------------
# Who may publish where


def test_the_path_wins_over_the_body(world):
    event = make_event(id="moved-1", team_id=3, organization_id="org-b", created_at="2024-03-12T10:00:00Z")
    response = post(world, "/api/projects/1/activity_log/events", "w1", event)
    assert response.status_code == 202, response.text
    stored = next(e for e in spooled(world) if e["id"] == "moved-1")
    assert (stored["team_id"], stored["organization_id"]) == (1, "org-a")
    assert response.json()["results"][0]["sha256"] == expected_sha256(event, 1, "org-a")

    organization_level = make_event(id="org-level-1", team_id=3, organization_id="org-b", scope="Organization",
                                    created_at="2024-03-12T10:00:00Z")
    response = post(world, "/api/organizations/org-a/activity_log/events", "admin-w", organization_level)
    assert response.status_code == 202, response.text
    stored = next(e for e in spooled(world) if e["id"] == "org-level-1")
    assert (stored["team_id"], stored["organization_id"]) == (None, "org-a")


@pytest.mark.parametrize("key,path", [
    ("w1", "/api/projects/3/activity_log/events"),           # a project of another organization
    ("w1", "/api/projects/2/activity_log/events"),           # another project of its own organization
    ("w1", "/api/organizations/org-a/activity_log/events"),  # not an admin key
    ("w3", "/api/projects/1/activity_log/events"),
    ("admin-w", "/api/organizations/org-b/activity_log/events"),
    ("w1", "/api/projects/99999999999999999999/activity_log/events"),
])
def test_a_key_cannot_publish_into_another_tenant(world, key, path):
    before = len(spooled(world))
    response = post(world, path, key, make_event(id=f"intruder-{key}", created_at="2024-03-12T10:00:00Z"))
    assert response.status_code == 404, response.text
    assert response.json()["detail"] == "not found"
    assert len(spooled(world)) == before


def test_scopes_separate_reading_from_writing(world):
    event = make_event(id="scoped-1", created_at="2024-03-12T10:00:00Z")
    response = post(world, "/api/projects/1/activity_log/events", "r1", event)
    assert response.status_code == 403
    assert response.json()["detail"] == "this key does not have the scope activity_log:write"
    for path in ("/api/projects/1/activity_log/", "/api/projects/1/advanced_activity_logs/"):
        response = httpx.get(world["url"] + path, headers=auth_headers(world, "w1"), timeout=30)
        assert response.status_code == 403
        assert response.json()["detail"] == "this key does not have the scope activity_log:read"
    assert post(world, "/api/projects/1/activity_log/events", "rw1", event).status_code == 202
    assert httpx.get(world["url"] + "/api/projects/1/activity_log/", headers=auth_headers(world, "rw1"),
                     timeout=30).status_code == 200
    response = post(world, "/api/projects/1/activity_log/events", None, event)
    assert response.status_code == 401 and "WWW-Authenticate" in response.headers
    response = httpx.post(world["url"] + "/api/projects/1/activity_log/events", json=event, timeout=30,
                          headers={"Authorization": "Bearer alk_nope_nope"})
    assert response.status_code == 401


def test_a_revoked_write_key_is_401(world):
    from transforms.keys import revoke_key

    token = create_key(world["lake"], "org-a", [1], scopes=[WRITE_SCOPE], check=False)[0]
    event = make_event(id="revoked-1", created_at="2024-03-12T10:00:00Z")
    url = world["url"] + "/api/projects/1/activity_log/events"
    assert httpx.post(url, json=event, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 202
    assert revoke_key(world["lake"], token)
    response = httpx.post(url, json=event, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="activitylog", error="invalid_token"'
