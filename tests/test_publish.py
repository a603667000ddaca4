"""The publisher API, served for real (`activitylog serve` in a subprocess on 127.0.0.1), then
`activitylog ingest` run for real: events in over HTTP land in ``activity_log`` once, nothing lost
(``kill -9`` of the server right after a 202), nothing written twice (Idempotency-Key, retries of
the client), nothing into another tenant; every rejection answers with its reason."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import polars as pl
import pytest

from tests.helpers.events import make_event
from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server
from transforms.commitments import canonical
from transforms.keys import READ_SCOPE, WRITE_SCOPE, create_key
from transforms.lake import ACTIVITY_LOG, ACTIVITY_RAW, Lake
from transforms.landing import scan_landing
from transforms.spool import IdempotencyRecord, IdempotencyStore, write_spool

pytestmark = pytest.mark.local_lake

MAX_EVENTS = 150
MAX_BYTES = 512 * 1024
CONFIG = f"publish:\n  max_events: {MAX_EVENTS}\n  max_bytes: 512KiB\n  idempotency_ttl: 24h\n"


def _serve(world: dict, name: str, port: int | None = None, *, wait: bool = True):
    port = port or free_port()
    home = world["root"] / f"dagster-{name}"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    argv = [script("activitylog"), "serve", "--host", LOOPBACK, "--port", str(port)]
    url = f"http://{LOOPBACK}:{port}"
    server = start_server(f"activitylog-publish-{name}", argv, url=f"{url}/openapi.json", env=world["env"](home),
                          timeout=90)
    return url, server


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("publish")
    lake = Lake.at(root / "lake")
    landing = root / "landing"
    landing.mkdir()
    config = root / "activitylog.yaml"
    config.write_text(CONFIG)
    keys = {
        "w1": create_key(lake, "org-a", [1], scopes=[WRITE_SCOPE], check=False)[0],
        "w2": create_key(lake, "org-a", [2], scopes=[WRITE_SCOPE], check=False)[0],
        "r1": create_key(lake, "org-a", [1], scopes=[READ_SCOPE], check=False)[0],
        "rw1": create_key(lake, "org-a", [1], scopes=[READ_SCOPE, WRITE_SCOPE], check=False)[0],
        "w3": create_key(lake, "org-b", [3], scopes=[WRITE_SCOPE], check=False)[0],
        "admin-w": create_key(lake, "org-a", admin=True, scopes=[WRITE_SCOPE, READ_SCOPE], check=False)[0],
    }

    def env(home: Path) -> dict:
        return child_env({"ACTIVITYLOG_LAKE": lake.root, "ACTIVITYLOG_LANDING": str(landing),
                          "ACTIVITYLOG_CONFIG": str(config), "ACTIVITYLOG_API_RATE": "100000",
                          "ACTIVITYLOG_MAX_LINE_BYTES": "64KiB",
                          "DAGSTER_HOME": str(home), "ACTIVITYLOG_API_EXPORTS": str(root / "exports")})

    state = {"root": root, "lake": lake, "landing": landing, "keys": keys, "env": env}
    url, server = _serve(state, "main")
    state["url"], state["server"] = url, server
    try:
        yield state
    finally:
        server.stop()


def _headers(world, key: str | None, **extra: str) -> dict:
    headers = {"Authorization": f"Bearer {world['keys'][key]}"} if key else {}
    headers.update(extra)
    return headers


def post(world, path: str, key: str | None, body=None, *, content: bytes | None = None, url: str | None = None,
         params: dict | None = None, **headers: str) -> httpx.Response:
    if content is None:
        content = json.dumps(body).encode()
    return httpx.post((url or world["url"]) + path, content=content, params=params, timeout=60,
                      headers={"Content-Type": "application/json", **_headers(world, key, **headers)})


def spooled(world) -> list[dict]:
    """Every event in the spool files of the landing area, as the ingest would read them."""
    events = []
    for file in scan_landing(str(world["landing"])).files:
        # NDJSON lines end at "\n" only (str.splitlines would also split at U+2028, \x85, \x1c… inside strings)
        events += [json.loads(line) for line in Path(file.uri).read_text().split("\n") if line.strip()]
    return events


def ingest(world) -> subprocess.CompletedProcess:
    home = world["root"] / "dagster-ingest"
    home.mkdir(exist_ok=True)
    done = subprocess.run([str(script("activitylog")), "ingest", "--lake", world["lake"].root, "--landing",
                           str(world["landing"]), "--quiet"], capture_output=True, text=True, env=world["env"](home),
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def expected_sha256(event: dict, team_id, organization_id) -> str:
    return hashlib.sha256(canonical({**event, "team_id": team_id, "organization_id": organization_id})).hexdigest()


def batch_with_invalid(prefix: str, count: int = 100) -> tuple[list[dict], dict[int, str]]:
    events = [make_event(id=f"{prefix}-{i}", created_at=f"2024-03-{1 + i % 28:02d}T10:00:00Z") for i in range(count)]
    invalid = {7: "missing required field: activity", 40: "created_at has no timezone",
               93: "is_system must be a boolean"}
    invalid = {index: reason for index, reason in invalid.items() if index < count}
    del events[7]["activity"]
    if count > 93:
        events[40]["created_at"] = "2024-03-05T10:00:00"
        events[93]["is_system"] = "yes"
    return events, invalid


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
    url, second = _serve(world, "killed")
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
                     headers=_headers(world, "r1"), timeout=60)
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
        response = httpx.get(world["url"] + path, headers=_headers(world, "w1"), timeout=30)
        assert response.status_code == 403
        assert response.json()["detail"] == "this key does not have the scope activity_log:read"
    assert post(world, "/api/projects/1/activity_log/events", "rw1", event).status_code == 202
    assert httpx.get(world["url"] + "/api/projects/1/activity_log/", headers=_headers(world, "rw1"),
                     timeout=30).status_code == 200
    response = post(world, "/api/projects/1/activity_log/events", None, event)
    assert response.status_code == 401 and "WWW-Authenticate" in response.headers
    response = httpx.post(world["url"] + "/api/projects/1/activity_log/events", json=event, timeout=30,
                          headers={"Authorization": "Bearer alk_nope_nope"})
    assert response.status_code == 401


# ------------------------------------------------------------------------------------------------
# Limits and malformed requests: each answered with its reason, nothing written


def test_a_body_larger_than_the_limit_is_413_naming_it(world):
    before = len(spooled(world))
    event = make_event(id="big-1", created_at="2024-03-12T10:00:00Z", detail={"blob": "x" * (MAX_BYTES + 1)})
    response = post(world, "/api/projects/1/activity_log/events", "w1", event)
    assert response.status_code == 413
    assert response.json() == {"type": "validation_error", "attr": "max_bytes",
                               "detail": "request body is larger than publish.max_bytes (512 KiB)"}

    def chunks():  # no Content-Length: the limit holds while the body streams in
        data = json.dumps(event).encode()
        for start in range(0, len(data), 65536):
            yield data[start:start + 65536]

    response = httpx.post(world["url"] + "/api/projects/1/activity_log/events", content=chunks(), timeout=60,
                          headers=_headers(world, "w1"))
    assert response.status_code == 413
    assert response.json()["detail"] == "request body is larger than publish.max_bytes (512 KiB)"
    assert len(spooled(world)) == before


def test_an_event_longer_than_the_ingest_line_limit_is_rejected_by_index(world):
    long = make_event(id="long-1", created_at="2024-03-12T10:00:00Z", detail={"blob": "x" * 70_000})
    short = make_event(id="long-2", created_at="2024-03-12T10:00:00Z")
    response = post(world, "/api/projects/1/activity_log/events", "w1", {"events": [long, short]})
    assert response.status_code == 202
    first, second = response.json()["results"]
    assert first["status"] == "rejected"
    assert first["reason"].startswith("line is longer than ACTIVITYLOG_MAX_LINE_BYTES (64 KiB): ")
    assert second["status"] == "accepted"
    assert _ids_in_spool(world, "long-") == ["long-2"]


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


def test_too_many_events_is_413_naming_the_limit(world):
    events = [make_event(id=f"many-{i}", created_at="2024-03-12T10:00:00Z") for i in range(MAX_EVENTS + 1)]
    response = post(world, "/api/projects/1/activity_log/events", "w1", {"events": events})
    assert response.status_code == 413
    assert response.json()["detail"] == f"{MAX_EVENTS + 1} events is more than publish.max_events ({MAX_EVENTS})"
    assert post(world, "/api/projects/1/activity_log/events", "w1", {"events": events[:MAX_EVENTS]}).status_code == 202


@pytest.mark.parametrize("content,detail", [
    (b'{"events": [', "malformed JSON at line 1 column 13: Expecting value"),
    (b"{'id': 1}", "malformed JSON at line 1 column 2: Expecting property name enclosed in double quotes"),
    (b"", "malformed JSON at line 1 column 1: Expecting value"),
    (b"\xff\xfe{}", "request body is not UTF-8 (byte 1)"),
    (b"[" * 100_000, "malformed JSON: nested too deeply"),
    (b"[{}]", 'the body must be one event (a JSON object) or a batch {"events": [...]}, not an array'),
    (b'"text"', 'the body must be one event (a JSON object) or a batch {"events": [...]}, not a JSON str'),
    (b'{"events": {"id": "x"}}', "events must be an array of event objects"),
    (b'{"events": []}', "events is empty: send at least one event"),
])
def test_malformed_bodies_are_400_with_the_reason(world, content, detail):
    response = post(world, "/api/projects/1/activity_log/events", "w1", content=content)
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == detail


def test_bad_idempotency_keys_and_atomic_flags_are_400(world):
    event = make_event(id="idem-bad", created_at="2024-03-12T10:00:00Z")
    for key in ("x" * 256, "has space", "é"):
        response = post(world, "/api/projects/1/activity_log/events", "w1", event,
                        **{"Idempotency-Key": key.encode()})
        assert response.status_code == 400
        assert response.json() == {"type": "validation_error", "attr": "Idempotency-Key",
                                   "detail": "must be 1 to 255 visible ASCII characters"}
    assert post(world, "/api/projects/1/activity_log/events", "w1", event,
                **{"Idempotency-Key": "x" * 255}).status_code == 202
    response = post(world, "/api/projects/1/activity_log/events", "w1", event, params={"atomic": "maybe"})
    assert response.status_code == 400 and response.json()["attr"] == "atomic"


def test_a_spool_that_cannot_be_written_is_503_and_the_retry_succeeds(world):
    event = make_event(id="unwritable-1", created_at="2024-03-12T10:00:00Z")
    assert post(world, "/api/projects/1/activity_log/events", "w1", {"events": [make_event(
        id="unwritable-0", created_at="2024-03-12T10:00:00Z")]}).status_code == 202  # the staging area exists
    staging = world["landing"] / ".publish" / "staging"
    moved = staging.with_name("staging-away")
    staging.rename(moved)
    staging.write_text("not a directory")  # every write of a spool file now fails
    try:
        before = len(spooled(world))
        response = post(world, "/api/projects/1/activity_log/events", "w1", event, **{"Idempotency-Key": "unwritable"})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json()["detail"].startswith("the request could not be completed durably: retry it")
        assert len(spooled(world)) == before
    finally:
        staging.unlink()
        moved.rename(staging)
    retry = post(world, "/api/projects/1/activity_log/events", "w1", event, **{"Idempotency-Key": "unwritable"})
    assert retry.status_code == 202 and "Idempotent-Replayed" not in retry.headers  # the failure was not remembered
    assert _ids_in_spool(world, "unwritable-1") == ["unwritable-1"]


def test_an_idempotency_key_reused_for_another_request_is_422(world):
    one = make_event(id="reuse-1", created_at="2024-03-12T10:00:00Z")
    other = make_event(id="reuse-2", created_at="2024-03-12T10:00:00Z")
    assert post(world, "/api/projects/1/activity_log/events", "w1", one, **{"Idempotency-Key": "reuse"}).status_code == 202
    before = len(spooled(world))
    for key, path, body, params in [("w1", "/api/projects/1/activity_log/events", other, None),
                                    ("w1", "/api/projects/1/activity_log/events", one, {"atomic": "true"})]:
        response = post(world, path, key, body, params=params, **{"Idempotency-Key": "reuse"})
        assert response.status_code == 422
        assert response.json()["detail"] == ("this Idempotency-Key was used with another request (path, atomic or "
                                             "body) by this key; use a new key for a new request")
    assert len(spooled(world)) == before
    # Keys are per API key: another key's "reuse" is its own.
    response = post(world, "/api/projects/2/activity_log/events", "w2", other, **{"Idempotency-Key": "reuse"})
    assert response.status_code == 202 and response.json()["results"][0]["id"] == "reuse-2"


def test_atomic_batches_accept_nothing_when_one_event_is_rejected(world):
    events, invalid = batch_with_invalid("atomic", 10)  # index 7 is invalid
    before = len(spooled(world))
    response = post(world, "/api/projects/1/activity_log/events", "w1", {"events": events}, params={"atomic": "true"})
    assert response.status_code == 422
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (0, 10)
    assert body["results"][7] == {"index": 7, "status": "rejected", "reason": "missing required field: activity"}
    assert all(r["reason"] == "not accepted: the batch is atomic and event 7 was rejected"
               for r in body["results"] if r["index"] != 7)
    assert len(spooled(world)) == before
    del events[7]
    response = post(world, "/api/projects/1/activity_log/events", "w1", {"events": events}, params={"atomic": "true"})
    assert response.status_code == 202 and response.json()["accepted"] == 9


def test_a_batch_with_only_invalid_events_is_422(world):
    response = post(world, "/api/projects/1/activity_log/events", "w1", {"events": [{"id": "x"}, 3, None]})
    assert response.status_code == 422
    assert response.json()["results"] == [
        {"index": 0, "status": "rejected", "reason": "missing required field: activity"},
        {"index": 1, "status": "rejected", "reason": "not a JSON object (found a number)"},
        {"index": 2, "status": "rejected", "reason": "not a JSON object (found null)"},
    ]


def test_numbers_rfc8785_cannot_represent_are_rejected_with_the_reason(world):
    text = json.dumps(make_event(id="bigint-1", created_at="2024-03-12T10:00:00Z", detail={"n": 0}))
    big = text.replace('"n": 0', '"n": 12345678901234567890123')
    huge = text.replace('"n": 0', '"n": 1e999').replace("bigint-1", "bigint-2")
    exact = text.replace('"n": 0', '"n": 9007199254740991').replace("bigint-1", "bigint-3")
    content = f'{{"events": [{big}, {huge}, {exact}]}}'.encode()
    response = post(world, "/api/projects/1/activity_log/events", "w1", content=content)
    assert response.status_code == 202, response.text
    results = response.json()["results"]
    assert results[0]["status"] == results[1]["status"] == "rejected"
    hint = ("values RFC 8785 cannot represent exactly (integers beyond ±2^53, numbers beyond a double's range, "
            "unpaired surrogates) are not accepted over HTTP; send them as strings")
    assert results[0]["reason"] == ("not canonicalizable as JSON (RFC 8785): 12345678901234567890123 exceeds "
                                    "safe integer domain for JSON floats: " + hint), results[0]
    assert results[1]["reason"].endswith(hint) and "inf" in results[1]["reason"].lower(), results[1]
    assert results[2]["status"] == "accepted"
    stored = next(line for line in _spooled_lines(world) if '"bigint-3"' in line)
    assert '"n": 9007199254740991' in stored  # every other member keeps its exact text


def test_an_unpaired_surrogate_in_a_value_is_rejected_with_the_reason(world):
    text = json.dumps(make_event(id="surrogate-1", created_at="2024-03-12T10:00:00Z", detail={"name": "x"}))
    content = text.replace('"name": "x"', '"name": "cut \\ud83d"').encode()
    assert b"\\ud83d" in content
    response = post(world, "/api/projects/1/activity_log/events", "w1", content=content)
    assert response.status_code == 422
    [result] = response.json()["results"]
    assert result["reason"].startswith("not canonicalizable as JSON (RFC 8785): input contains non-UTF-8 codepoints")
    content = text.replace('"surrogate-1"', '"\\ud83d"').encode()  # in a key field: the ingest's own reason
    [result] = post(world, "/api/projects/1/activity_log/events", "w1", content=content).json()["results"]
    assert result["reason"] == "id holds an unpaired UTF-16 surrogate (not text)"


def _spooled_lines(world) -> list[str]:
    return [line for file in scan_landing(str(world["landing"])).files for line in Path(file.uri).read_text().split("\n") if line]


def test_pretty_printed_events_are_spooled_on_one_line_with_their_text(world):
    event = make_event(id="pretty-1", created_at="2024-03-12T10:00:00Z", detail={"a": [1.50, "x\ny"], "b": {}})
    content = json.dumps({"events": [event]}, indent=2).encode().replace(b"1.5", b"1.50")
    response = post(world, "/api/projects/1/activity_log/events", "w1", content=content)
    assert response.status_code == 202, response.text
    line = next(line for line in _spooled_lines(world) if '"pretty-1"' in line)
    assert json.loads(line)["detail"] == {"a": [1.5, "x\ny"], "b": {}}
    assert "1.50" in line and "\\n" in line


# ------------------------------------------------------------------------------------------------
# Arbitrary JSON: never a 500, every index accounted for


def test_arbitrary_json_fields_never_500_and_every_index_is_answered(world):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    leaves = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12)
    values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                                              inner, max_size=3),
                          max_leaves=8)
    names = st.sampled_from(["id", "activity", "scope", "created_at", "item_id", "user", "detail", "is_system",
                             "was_impersonated", "team_id", "organization_id", "extra"])
    events = st.lists(st.dictionaries(names, values, max_size=8) | values, min_size=1, max_size=6)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(events=events, base=st.booleans())
    def check(events, base):
        if base:  # mostly valid events with arbitrary fields mixed in
            events = [{**make_event(id=f"h-{i}-{hash(json.dumps(e, sort_keys=True, default=str))}",
                                    created_at="2024-03-12T10:00:00Z"), **e} if isinstance(e, dict) else e
                      for i, e in enumerate(events)]
        content = json.dumps({"events": events}).encode()
        response = post(world, "/api/projects/2/activity_log/events", "w2", content=content)
        assert response.status_code in (202, 422), response.text
        body = response.json()
        assert [r["index"] for r in body["results"]] == list(range(len(events)))
        assert body["accepted"] + body["rejected"] == len(events)
        assert (response.status_code == 202) == (body["accepted"] > 0)
        for result in body["results"]:
            if result["status"] == "accepted":
                event = json.loads(json.dumps(events[result["index"]]))
                assert result["sha256"] == expected_sha256(event, 2, "org-a")
            else:
                assert result["status"] == "rejected" and result["reason"]

    check()


def test_fuzzed_publish_requests_never_get_a_server_error(world):
    """schemathesis generates requests for the publish operations of the OpenAPI document (bodies,
    paths, atomic, Idempotency-Key, valid and invalid): none may answer 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(world["url"] + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [o for o in operations if o.path.endswith("/activity_log/events")]
    assert len(operations) == 2
    failures, statuses = [], set()
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):  # paths the key may publish to (other paths: the tenant tests above)
            if "project_id" in case.path_parameters:
                case.path_parameters["project_id"], key = 1, "w1"
            else:
                case.path_parameters["org_id"], key = "org-a", "admin-w"
            response = case.call(headers=_headers(world, key), timeout=60)
            statuses.add(response.status_code)
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, case.query, response.text[:200]))

        check()
    assert failures == []
    assert statuses & {202, 422}  # some requests reached the validation


# ------------------------------------------------------------------------------------------------
# The client


def _ids_in_spool(world, prefix: str) -> list[str]:
    return [e["id"] for e in spooled(world) if isinstance(e.get("id"), str) and e["id"].startswith(prefix)]


def test_publisher_retries_until_a_late_server_answers_without_duplicates(world):
    from activitylog.client import Publisher

    port = free_port()
    late: dict = {}
    starter = threading.Timer(1.5, lambda: late.update(zip(("url", "server"), _serve(world, "late", port))))
    publisher = Publisher(f"http://{LOOPBACK}:{port}", world["keys"]["w1"], project_id=1, batch_size=40,
                          flush_interval=0.2, max_retry_seconds=120)
    try:
        starter.start()
        for i in range(100):
            publisher.publish(make_event(id=f"late-{i}", created_at="2024-03-13T10:00:00Z"))
        publisher.flush(timeout=180)
    finally:
        starter.join()
        publisher.close(timeout=60)
        if "server" in late:
            late["server"].stop()
    assert [len(r.events) for r in publisher.results] == [40, 40, 20]
    assert publisher.results[0].attempts > 1  # refused at first, then answered
    assert all(r.delivered and r.status == 202 for r in publisher.results)
    assert publisher.rejected == [] and publisher.failed == []
    ids = _ids_in_spool(world, "late-")
    assert sorted(ids) == sorted(f"late-{i}" for i in range(100))  # each once


class _DroppingProxy(BaseHTTPRequestHandler):
    """Forwards requests to the server, but drops the connection instead of the first answer (a
    response lost on the way back)."""

    upstream = ""
    dropped = 0

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type",
                                                                          "idempotency-key")}
        answer = httpx.post(self.upstream + self.path, content=body, headers=headers, timeout=60)
        if _DroppingProxy.dropped == 0:
            _DroppingProxy.dropped += 1
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(answer.status_code)
        for name in ("content-type", "idempotent-replayed"):
            if name in answer.headers:
                self.send_header(name, answer.headers[name])
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args):
        pass


def test_publisher_retries_a_lost_response_with_the_same_key_and_nothing_is_stored_twice(world):
    from activitylog.client import Publisher

    _DroppingProxy.upstream, _DroppingProxy.dropped = world["url"], 0
    proxy = ThreadingHTTPServer((LOOPBACK, 0), _DroppingProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        with Publisher(f"http://{LOOPBACK}:{proxy.server_address[1]}", world["keys"]["w1"], project_id=1,
                       batch_size=1000) as publisher:
            for i in range(30):
                publisher.publish(make_event(id=f"lost-{i}", created_at="2024-03-13T10:00:00Z"))
            publisher.publish(make_event(id="lost-bad", created_at="2024-03-13T10:00:00"))
    finally:
        proxy.shutdown()
    assert _DroppingProxy.dropped == 1
    [result] = publisher.results
    assert result.attempts == 2 and result.status == 202 and result.body["accepted"] == 30
    assert publisher.rejected == [(publisher.results[0].events[30], "created_at has no timezone")]
    assert sorted(_ids_in_spool(world, "lost-")) == sorted(f"lost-{i}" for i in range(30))  # the retry wrote nothing


def test_publisher_reports_a_refused_batch_instead_of_dropping_it(world):
    from activitylog.client import PublishError, Publisher

    publisher = Publisher(world["url"], world["keys"]["r1"], project_id=1)
    publisher.publish(make_event(id="refused-1", created_at="2024-03-13T10:00:00Z"))
    with pytest.raises(PublishError) as raised:
        publisher.close(timeout=60)
    [batch] = raised.value.batches
    assert batch.status == 403 and batch.events[0]["id"] == "refused-1"
    assert "activity_log:write" in batch.error
    with pytest.raises(RuntimeError, match="closed"):
        publisher.publish(make_event())
    with pytest.raises(ValueError, match="exactly one of project_id and organization_id"):
        Publisher(world["url"], "t")


# ------------------------------------------------------------------------------------------------
# The spool and the idempotency store, directly


def test_spool_files_appear_whole_and_records_expire(tmp_path):
    landing = tmp_path / "landing"
    uri = write_spool(str(landing), ['{"id":"a"}', '{"id":"b"}'])
    assert Path(uri).read_bytes() == b'{"id":"a"}\n{"id":"b"}\n'
    assert [f.uri for f in scan_landing(str(landing)).files] == [uri]  # the staging and record areas are hidden
    assert list((landing / ".publish" / "staging").iterdir()) == []
    with pytest.raises(ValueError, match="one line"):
        write_spool(str(landing), ['{"id":\n"a"}'])
    store = IdempotencyStore(str(landing), ttl_seconds=3600)
    record = IdempotencyRecord("digest", 202, b'{"accepted":1}', created_at=1000.0)
    store.put("key", "k", record)
    assert store.get("key", "k", now=1000.0 + 3599) == record
    assert store.get("key", "k", now=1000.0 + 3600) is None
    assert store.get("other-key", "k", now=1000.0) is None
    assert [f.uri for f in scan_landing(str(landing)).files] == [uri]
    assert store.sweep(now=1000.0 + 3599) == 0 and store.sweep(now=1000.0 + 3600) == 1
    assert store.get("key", "k", now=1000.0) is None


def test_the_publish_section_of_the_configuration_file(tmp_path):
    from pipelines.config import ConfigError, load_config

    path = tmp_path / "activitylog.yaml"
    path.write_text("publish:\n  max_events: 10\n  max_bytes: 1MiB\n  idempotency_ttl: 2d\n")
    section = load_config(path).publish
    assert (section.max_events, section.max_bytes, section.idempotency_seconds) == (10, 1024 * 1024, 172800.0)
    path.write_text("")
    section = load_config(path).publish
    assert (section.max_events, section.max_bytes, section.idempotency_seconds) == (1000, 5 * 1024 * 1024, 86400.0)
    for text, message in [
        ("publish: {max_events: 0}", "publish.max_events: must be a whole number of at least 1, not 0"),
        ("publish: {max_bytes: lots}", "publish.max_bytes: must be a size like 5MiB, 512KiB or 1000000, not 'lots'"),
        ("publish: {idempotency_ttl: 1mo}", "publish.idempotency_ttl: 1mo has no fixed length: use hours, days or weeks"),
        ("publish: {max_event: 3}", "publish.max_event: unknown key"),
    ]:
        path.write_text(text + "\n")
        with pytest.raises(ConfigError) as raised:
            load_config(path)
        assert message in str(raised.value)
