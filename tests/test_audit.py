"""The log audits its own readers: reads, exports, downloads, keys and tokens become system events of
the tenant they are about, through the landing area and the real ingest (`activitylog serve` and the
CLI run for real; records checked in `activity_log` after `run_ingest`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import date
from pathlib import Path

import httpx
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from tests.helpers.events import make_event, write_lines
from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server
from transforms.audit import AuditLog, AuditSettings, audit_event, filter_parameters, key_event, read_event
from transforms.keys import ApiKey, create_key
from transforms.lake import ACTIVITY_LOG, Lake
from transforms.spool import SpoolError, write_spool
from transforms.validate import ValidationSettings, parse_keys, validate

pytestmark = pytest.mark.local_lake  # the spool is read from a local landing area

SECRET_NAME = "quarterly-pricing-secret"  # a value of the rows read: never in an audit record


# ------------------------------------------------------------------------------------------------
# The recorder, without a server


def _spooled(landing: Path) -> list[dict]:
    """Every event spooled into the landing area, in file order."""
    events = []
    for path in sorted((landing / "publish").rglob("*.ndjson")) if (landing / "publish").exists() else []:
        events += [json.loads(line) for line in path.read_text().split("\n") if line]
    return events


def _event(n: int) -> dict:
    return read_event(organization_id="org-a", project_id=1, route="/api/projects/{project_id}/activity_log/",
                      key_id="k1", parameters={"n": [str(n)]}, rows=n)


def test_reads_wait_for_the_flush_durable_records_do_not(tmp_path):
    landing = tmp_path / "landing"
    log = AuditLog(AuditSettings(reads=True, flush_seconds=0.2), lambda lines: write_spool(str(landing), lines))
    assert log.record("reads", _event(1)) is True
    assert _spooled(landing) == []  # waits for the flush
    exported = audit_event("exported", organization_id="org-a", project_id=1, item_id="e1", context={"format": "csv"})
    assert log.record("exports", exported, durable=True) is True
    assert [e["activity"] for e in _spooled(landing)] == ["exported"]  # written before record() returned
    deadline = time.monotonic() + 10
    while len(_spooled(landing)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(e["activity"] for e in _spooled(landing)) == ["exported", "viewed"]
    log.close()
    assert log.stats() == {"pending": 0, "written": 2, "dropped": 0, "last_error": None}


def test_kinds_switched_off_record_nothing(tmp_path):
    landing = tmp_path / "landing"
    log = AuditLog(AuditSettings(reads=False, exports=False, keys=False), lambda lines: write_spool(str(landing), lines))
    assert log.record("reads", _event(1)) is False
    assert log.record("exports", _event(2), durable=True) is False
    log.close()
    assert not landing.exists()
    with pytest.raises(ValueError, match="unknown audit kind 'writes'"):
        log.record("writes", _event(3))


def test_a_failed_write_keeps_every_record_in_order_for_the_next_attempt(tmp_path):
    landing = tmp_path / "landing"
    broken = {"on": True}
    errors = []

    def write(lines):
        if broken["on"]:
            raise SpoolError("disk full")
        return write_spool(str(landing), lines)

    log = AuditLog(AuditSettings(reads=True, flush_seconds=60), write, max_batch=3, on_error=errors.append)
    for n in range(7):
        log.record("reads", _event(n))
    with pytest.raises(SpoolError):
        log.flush()
    assert log.stats()["pending"] == 7 and log.stats()["written"] == 0
    log.close()  # the background attempt fails too: reported, kept
    assert errors and "disk full" in errors[-1] and log.stats()["last_error"] == errors[-1]
    broken["on"] = False
    assert log.flush() == 7
    assert [e["detail"]["context"]["rows"] for e in _spooled(landing)] == list(range(7))  # nothing lost, in order
    with pytest.raises(SpoolError):  # a durable record that cannot be written is the caller's error
        broken["on"] = True
        log.record("reads", _event(8), durable=True)


def test_a_backlog_beyond_its_bound_drops_the_oldest_and_counts_them(tmp_path):
    log = AuditLog(AuditSettings(reads=True, flush_seconds=60), lambda lines: None, max_pending=5, max_batch=100)
    for n in range(8):
        log.record("reads", _event(n))
    assert log.stats()["pending"] == 5 and log.stats()["dropped"] == 3


def test_records_leave_out_credentials_and_bound_their_size():
    found = filter_parameters([("token", "vt_secret"), ("scopes", "FeatureFlag"), ("scopes", "Insight"),
                               ("search", "x" * 5000), ("API_KEY", "k"), ("csrf", "c")])
    assert set(found) == {"scopes", "search"}
    assert found["scopes"] == ["FeatureFlag", "Insight"]
    assert len(found["search"][0]) == 1001
    many = filter_parameters([(f"p{i}", "v") for i in range(80)])
    assert len(many) == 50


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=st.lists(st.tuples(st.text(max_size=30), st.text(max_size=60)), max_size=8),
       rows=st.one_of(st.none(), st.integers(0, 10_000)), project=st.one_of(st.none(), st.integers(0, 2**62)),
       organization=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
                            max_size=40).filter(str.strip),
       key_id=st.text(alphabet="abcdef0123456789", min_size=8, max_size=16))
def test_every_audit_record_passes_the_ingests_validation(params, rows, project, organization, key_id):
    """Whatever a request carries, its record is an event the ingest accepts (never quarantined)."""
    from transforms import jsontext

    events = [read_event(organization_id=organization, project_id=project, route="/api/projects/{project_id}/x/",
                         key_id=key_id, parameters=filter_parameters(params), rows=rows, ip_address="127.0.0.1"),
              audit_event("exported", organization_id=organization, project_id=project, item_id=key_id,
                          context={"filter": dict(params)})]
    texts = [jsontext.encode(e) for e in events]
    lines = pl.DataFrame({"line": [1, 2], "text": texts}, schema={"line": pl.Int64, "text": pl.String})
    parsed, not_json = parse_keys(lines)
    accepted, invalid = validate(parsed, ValidationSettings(start_date=date(2020, 1, 1)))
    assert not_json.height == 0 and invalid.height == 0, invalid.to_dicts()
    assert accepted.height == 2
    assert accepted["team_id"].to_list() == [project, project]
    assert accepted["organization_id"].to_list() == [organization, organization]


# ------------------------------------------------------------------------------------------------
# The server and the CLI, for real


def _world(tmp_path: Path, audit: str) -> dict:
    landing = tmp_path / "landing"
    events = [make_event(id=f"a{i}", team_id=1, organization_id="org-a", created_at=f"2024-01-1{i}T10:00:00Z",
                         detail={"name": SECRET_NAME, "changes": []}) for i in range(5)]
    events += [make_event(id=f"b{i}", team_id=3, organization_id="org-b", created_at="2024-01-12T10:00:00Z")
               for i in range(2)]
    write_lines(landing / "seed" / "events.jsonl", events)
    lake_dir = tmp_path / "lake"
    config = tmp_path / "activitylog.yaml"
    config.write_text(audit)
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {"ACTIVITYLOG_LAKE": str(lake_dir), "ACTIVITYLOG_LANDING": str(landing), "ACTIVITYLOG_CONFIG": str(config),
           "ACTIVITYLOG_API_EXPORTS": str(tmp_path / "exports"), "DAGSTER_HOME": str(home),
           "ACTIVITYLOG_API_RATE": "100000"}
    world = {"root": tmp_path, "landing": landing, "lake": Lake.at(lake_dir), "env": env}
    _ingest(world)
    return world


def _ingest(world: dict) -> None:
    """`activitylog ingest`, as an operator (or the landing sensor) would run it."""
    done = subprocess.run([script("activitylog"), "ingest"], env=child_env(world["env"]), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _serve(world: dict):
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    server = start_server("activitylog-audit", [script("activitylog"), "serve", "--host", LOOPBACK, "--port", str(port)],
                          url=f"{url}/openapi.json", env=child_env(world["env"]), timeout=90)
    return url, server


def _audit_rows(lake: Lake) -> list[dict]:
    frame = lake.scan(ACTIVITY_LOG)
    rows = frame.filter(pl.col("scope") == "ActivityLog").sort("created_at").collect().to_dicts()
    for row in rows:
        row["context"] = json.loads(row["detail"])["context"]
    return rows


@pytest.mark.slow
def test_reads_become_events_of_the_tenant_read_with_key_filter_and_row_count(tmp_path):
    world = _world(tmp_path, "audit:\n  reads: true\n  flush_seconds: 0.1\n")
    lake = world["lake"]
    p1, p1_key = create_key(lake, "org-a", [1], check=False)
    p3, _ = create_key(lake, "org-b", [3], check=False)
    url, server = _serve(world)
    headers = {"Authorization": f"Bearer {p1}"}
    asked = [("/api/projects/1/activity_log/", {"scope": "FeatureFlag"}),
             ("/api/projects/1/advanced_activity_logs/", {"page_size": "2", "search_text": "pricing"}),
             ("/api/projects/1/advanced_activity_logs/", {"page_size": "2", "search_text": "pricing"}),  # cached
             ("/api/projects/1/advanced_activity_logs/available_filters/", {})]
    answered = []
    try:
        for path, query in asked:
            answer = httpx.get(url + path, params=query, headers=headers, timeout=30)
            assert answer.status_code == 200, answer.text
            answered.append(answer.json())
        # refused requests read nothing and are not records of reads
        assert httpx.get(url + "/api/projects/3/activity_log/", headers=headers, timeout=30).status_code == 404
        assert httpx.get(url + "/api/projects/1/activity_log/", timeout=30).status_code == 401
        deadline = time.monotonic() + 20
        while len(_spooled(world["landing"])) < len(asked) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.stop()
    spooled = _spooled(world["landing"])
    assert len(spooled) == len(asked)
    text = "\n".join(p.read_text() for p in (world["landing"] / "publish").rglob("*.ndjson"))
    assert SECRET_NAME not in text and p1 not in text  # neither the rows read nor the key itself

    _ingest(world)
    rows = _audit_rows(lake)
    assert [r["activity"] for r in rows] == ["viewed"] * len(asked)
    assert {(r["team_id"], r["organization_id"], r["is_system"], r["actor_uuid"]) for r in rows} == {
        (1, "org-a", True, None)}
    contexts = [r["context"] for r in rows]
    assert [c["key_id"] for c in contexts] == [p1_key.key_id] * len(asked)
    assert [c["route"] for c in contexts] == [path.replace("/1/", "/{project_id}/") for path, _ in asked]
    assert [c["rows"] for c in contexts] == [len(answered[0]["results"]), len(answered[1]["results"]),
                                             len(answered[2]["results"]), None]
    assert [c["cached"] for c in contexts] == [False, False, True, False]
    assert contexts[1]["filter"] == {"page_size": ["2"], "search_text": ["pricing"]}
    assert all(c["status"] == 200 for c in contexts)

    # The tenant sees who read its log; another organization's key does not.
    url, server = _serve(world)
    try:
        mine = httpx.get(url + "/api/projects/1/advanced_activity_logs/", params={"scopes": "ActivityLog"},
                         headers=headers, timeout=30).json()["results"]
        theirs = httpx.get(url + "/api/projects/3/advanced_activity_logs/", params={"scopes": "ActivityLog"},
                           headers={"Authorization": f"Bearer {p3}"}, timeout=30).json()["results"]
    finally:
        server.stop()
    assert len(mine) >= len(asked) and {r["activity"] for r in mine} == {"viewed"}
    assert theirs == []


@pytest.mark.slow
def test_exports_and_downloads_are_durable_before_the_answer(tmp_path):
    world = _world(tmp_path, "")  # defaults: reads off, exports and keys on
    lake = world["lake"]
    p1, p1_key = create_key(lake, "org-a", [1], check=False)
    headers = {"Authorization": f"Bearer {p1}"}
    url, server = _serve(world)
    try:
        httpx.get(url + "/api/projects/1/activity_log/", headers=headers, timeout=30).raise_for_status()
        started = httpx.post(url + "/api/projects/1/advanced_activity_logs/export", headers=headers,
                             json={"format": "csv", "filters": {"scopes": ["FeatureFlag"]}}, timeout=30)
        assert started.status_code == 202, started.text
        export_id = started.json()["id"]
        assert [e["activity"] for e in _spooled(world["landing"])] == ["exported"]  # before the 202, not later
        status = {}
        for _ in range(240):
            status = httpx.get(f"{url}/api/projects/1/advanced_activity_logs/exports/{export_id}", headers=headers,
                               timeout=30).json()
            if status["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.5)
        assert status["status"] == "succeeded", status
        file = httpx.get(f"{url}/api/projects/1/advanced_activity_logs/exports/{export_id}/file", headers=headers,
                         timeout=30)
        assert file.status_code == 200
        os.killpg(server.pid, signal.SIGKILL)  # no shutdown flush: both records were already durable
        server.process.wait(timeout=30)
    finally:
        server.stop()
    spooled = _spooled(world["landing"])
    assert [e["activity"] for e in spooled] == ["exported", "downloaded"]  # reads are off by default
    _ingest(world)
    rows = _audit_rows(lake)
    assert [(r["activity"], r["item_id"], r["team_id"], r["organization_id"]) for r in rows] == [
        ("exported", export_id, 1, "org-a"), ("downloaded", export_id, 1, "org-a")]
    assert rows[0]["context"]["key_id"] == p1_key.key_id and rows[0]["context"]["format"] == "csv"
    assert rows[0]["context"]["filter"]["scopes"] == ["FeatureFlag"]
    manifest_rows = status["manifest"]["rows"]
    assert rows[1]["context"]["rows"] == manifest_rows


@pytest.mark.slow
def test_an_export_that_cannot_be_audited_is_refused_and_leaves_nothing(tmp_path):
    world = _world(tmp_path, "")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the landing area's spool would go")
    world["env"]["ACTIVITYLOG_LANDING"] = str(blocker)
    p1, _ = create_key(world["lake"], "org-a", [1], check=False)
    url, server = _serve(world)
    try:
        for _ in range(12):  # beyond the quota of 10: each refusal released its reservation
            answer = httpx.post(url + "/api/projects/1/advanced_activity_logs/export",
                                headers={"Authorization": f"Bearer {p1}"}, json={"format": "csv"}, timeout=30)
            assert answer.status_code == 503, answer.text
            assert "audit record of this request cannot be written" in answer.json()["detail"]
            assert answer.headers["retry-after"] == "30"
    finally:
        server.stop()
    exports = tmp_path / "exports"
    assert not exports.exists() or not [p for p in exports.iterdir() if p.is_dir()]


@pytest.mark.slow
def test_keys_created_and_revoked_are_recorded_in_their_project(tmp_path):
    world = _world(tmp_path, "")
    env = child_env(world["env"])
    created = subprocess.run([script("activitylog"), "keys", "create", "--organization", "org-a", "--project", "1",
                              "--label", "ci"], env=env, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    key_id = token.split("_")[1]
    revoked = subprocess.run([script("activitylog"), "keys", "revoke", token], env=env, capture_output=True,
                             text=True, timeout=120)
    assert revoked.returncode == 0, revoked.stderr
    text = "\n".join(p.read_text() for p in (world["landing"] / "publish").rglob("*.ndjson"))
    assert token not in text  # the id, never the key
    _ingest(world)
    rows = _audit_rows(world["lake"])
    assert [(r["activity"], r["item_id"], r["team_id"], r["organization_id"]) for r in rows] == [
        ("key_created", key_id, 1, "org-a"), ("key_revoked", key_id, 1, "org-a")]
    assert rows[0]["context"]["scopes"] == ["activity_log:read"] and rows[0]["context"]["label"] == "ci"


@pytest.mark.slow
def test_keys_can_be_left_unrecorded(tmp_path):
    world = _world(tmp_path, "audit:\n  keys: false\n")
    created = subprocess.run([script("activitylog"), "keys", "create", "--organization", "org-a", "--admin"],
                             env=child_env(world["env"]), capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    assert _spooled(world["landing"]) == []


def test_a_key_event_of_an_admin_key_is_organization_level():
    key = ApiKey(key_id="abc", organization_id="org-a", projects=(), admin=True,
                                           scopes=("activity_log:read",), label=None, created_at=None, revoked_at=None)
    event = key_event("key_created", key)
    assert event["team_id"] is None and event["organization_id"] == "org-a" and event["item_id"] == "abc"


@pytest.mark.parametrize("section, message", [
    ("audit:\n  reads: yes please\n", "audit.reads: must be true or false, not a string"),
    ("audit:\n  flush_seconds: 0\n", "audit.flush_seconds: must be a number of seconds from 0.05 to 60, not 0"),
    ("audit:\n  writes: true\n", "audit.writes"),
])
def test_a_bad_audit_section_stops_serve_before_it_listens(tmp_path, section, message):
    config = tmp_path / "activitylog.yaml"
    config.write_text(section)
    done = subprocess.run([script("activitylog"), "serve", "--port", str(free_port())],
                          env=child_env({"ACTIVITYLOG_LAKE": str(tmp_path / "lake"), "ACTIVITYLOG_CONFIG": str(config)}),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr


@pytest.mark.slow
def test_page_views_are_recorded_without_the_viewer_token(tmp_path):
    world = _world(tmp_path, "audit:\n  reads: true\n  flush_seconds: 0.1\n")
    issued = subprocess.run([script("activitylog"), "keys", "viewer-token", "--project", "1", "--ttl", "10m"],
                            env=child_env(world["env"]), capture_output=True, text=True, timeout=120)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip().splitlines()[-1]
    url, server = _serve(world)
    try:
        for path, query in [("/embed/feed", {"token": token}), ("/embed/history", {"token": token, "scope": "FeatureFlag",
                                                                                     "item_id": "12345"})]:
            page = httpx.get(url + path, params=query, timeout=30)
            assert page.status_code == 200, page.text[:500]
        deadline = time.monotonic() + 20
        while len(_spooled(world["landing"])) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.stop()
    text = "\n".join(p.read_text() for p in (world["landing"] / "publish").rglob("*.ndjson"))
    assert token not in text and SECRET_NAME not in text
    _ingest(world)
    rows = _audit_rows(world["lake"])
    assert [(r["activity"], r["item_id"], r["team_id"]) for r in rows] == [
        ("viewer_token_issued", "viewer-token", 1), ("viewed", "feed", 1), ("viewed", "history", 1)]
    assert rows[1]["context"]["rows"] == 5 and "token" not in rows[1]["context"]["filter"]
    assert rows[2]["context"]["filter"] == {"scope": ["FeatureFlag"], "item_id": ["12345"]}
