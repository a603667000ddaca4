"""The lake and the landing area on S3, against ``moto_server`` started as a subprocess on 127.0.0.1.

(In-process moto deadlocks delta-rs: docs/architecture.md "Tests".) Every S3 client here —
boto3, pyarrow's S3 filesystem, delta-rs — is pointed at the loopback endpoint by the standard AWS
environment variables; inherited AWS settings are removed so no real account or endpoint is used.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import boto3
import polars as pl
import pytest

from tests.helpers.lakes import build_lake
from tests.helpers.s3 import BUCKET, MotoServer
from tests.helpers.servers import child_env, script
from transforms.ingest import ingest
from transforms.lake import (
    ACTIVITY_EVENTS,
    ACTIVITY_LOG,
    ACTIVITY_QUARANTINE,
    ACTIVITY_RAW,
    INGEST_LEDGER,
    Lake,
)
from transforms.validate import ValidationSettings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2024, 2, 1, 12, 0, tzinfo=timezone.utc)


# ------------------------------------------------------------------------------------------------
# moto_server and the environment


@pytest.fixture(scope="module")
def moto():
    with MotoServer.start(BUCKET) as server:
        yield server


@pytest.fixture
def s3_env(moto, monkeypatch):
    """This process talks to moto only: AWS variables set, every other AWS setting removed."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    return moto


def assert_loopback_only(moto: MotoServer, requests_before: int) -> None:
    """Every S3 client is configured for the loopback endpoint, and the traffic did reach moto."""
    host = urlparse(moto.endpoint).hostname
    assert ipaddress.ip_address(host).is_loopback, moto.endpoint
    lake = Lake.at(f"s3://{BUCKET}/any")
    assert urlparse(lake.storage_options["AWS_ENDPOINT_URL"]).hostname == host
    assert moto.requests_logged() > requests_before, "no request reached moto_server"


# ------------------------------------------------------------------------------------------------
# Events and landing files


def event(day: int, hour: int = 8, **overrides) -> dict:
    value = {
        "id": str(uuid.uuid4()),
        "activity": "updated",
        "scope": "FeatureFlag",
        "item_id": "12345",
        "detail": {"name": "new-checkout-flow", "short_id": "checkout-v2", "type": None,
                   "changes": [{"type": "FeatureFlag", "action": "changed", "field": "active",
                                "before": False, "after": True}],
                   "trigger": None, "context": None},
        "user": {"id": 42, "uuid": "user-uuid-42", "email": "jane@example.com",
                 "first_name": "Jane", "last_name": "Doe"},
        "created_at": f"2024-01-{day:02d}T{hour:02d}:00:00.000000Z",
        "is_system": False,
        "was_impersonated": False,
        "team_id": 1,
        "organization_id": "org-1",
        "client": "web",
        "ip_address": "203.0.113.7",
    }
    value.update(overrides)
    return value


MALFORMED = '{"id": "broken", "activity": "updated", "scope": '


def upload_landing(moto: MotoServer, prefix: str) -> dict:
    """Three files in three formats; one duplicate across files and one malformed line.

    Returns what ingest must make of them.
    """
    day1 = [event(1, 8), event(1, 9)]
    day2 = [event(2, 10), event(2, 11)]
    day3 = [event(3, 12)]
    client = moto.client()
    jsonl = "\n".join([json.dumps(day1[0]), json.dumps(day1[1]), "", MALFORMED, json.dumps(day2[0])]) + "\n"
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/2024-01-01.jsonl", Body=jsonl.encode())
    gz_lines = [json.dumps(day2[1]), json.dumps(day1[0])]  # day1[0] again: a duplicate
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/2024-01-02.jsonl.gz",
                      Body=gzip.compress(("\n".join(gz_lines) + "\n").encode()))
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/2024-01-03.json", Body=json.dumps(day3).encode())
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/README.txt", Body=b"not an event file")
    accepted = day1 + day2 + day3
    return {
        "accepted": accepted,
        "per_day": {date(2024, 1, 1): 2, date(2024, 1, 2): 2, date(2024, 1, 3): 1},
        "lines": 7, "duplicates": 1, "quarantined": 1,
        "malformed_source": f"s3://{BUCKET}/{prefix}/2024-01-01.jsonl", "malformed_line": 4,
    }


# ------------------------------------------------------------------------------------------------
# A: transforms on S3, no Dagster


def test_ingest_on_s3_accounts_for_every_line_and_is_idempotent(s3_env):
    moto = s3_env
    requests_before = moto.requests_logged()
    expected = upload_landing(moto, "landing")
    lake = Lake.at(f"s3://{BUCKET}/lake")
    settings = ValidationSettings(start_date=date(2020, 1, 1), now=NOW)

    report = ingest(lake, f"s3://{BUCKET}/landing", settings)

    assert report.files_seen == 3
    assert len(report.files_ingested) == 3 and report.files_skipped == 0
    assert (report.lines, report.accepted, report.duplicates, report.quarantined) == (
        expected["lines"], len(expected["accepted"]), expected["duplicates"], expected["quarantined"])
    assert report.balanced
    assert report.days_changed == set(expected["per_day"])

    raw = lake.scan(ACTIVITY_RAW).collect()
    assert sorted(raw["id"]) == sorted(e["id"] for e in expected["accepted"])
    assert dict(raw.group_by("day").len().iter_rows()) == expected["per_day"]
    assert lake.days(ACTIVITY_RAW) == sorted(expected["per_day"])
    day2 = lake.read_days(ACTIVITY_RAW, [date(2024, 1, 2)])
    assert day2["day"].unique().to_list() == [date(2024, 1, 2)] and day2.height == 2
    assert set(raw["source"]) == {f"s3://{BUCKET}/landing/2024-01-0{d}.{ext}"
                                  for d, ext in [(1, "jsonl"), (2, "jsonl.gz"), (3, "json")]}
    by_id = {e["id"]: e for e in expected["accepted"]}
    for row in raw.iter_rows(named=True):  # the verbatim payload survives the round trip
        assert json.loads(row["payload"]) == by_id[row["id"]]

    quarantine = lake.scan(ACTIVITY_QUARANTINE).collect()
    assert quarantine.height == 1
    bad = quarantine.row(0, named=True)
    assert bad["source"] == expected["malformed_source"]
    assert bad["line"] == expected["malformed_line"]
    assert bad["raw_text"] == MALFORMED
    assert bad["quarantine_reason"].startswith("invalid JSON at column"), bad["quarantine_reason"]

    versions = {name: lake.version(name) for name in (ACTIVITY_RAW, ACTIVITY_QUARANTINE, INGEST_LEDGER)}
    again = ingest(lake, f"s3://{BUCKET}/landing", settings)
    assert again.files_seen == 3 and again.files_skipped == 3
    assert again.files_ingested == [] and again.files_changed == []
    assert again.days_changed == set()
    assert {name: lake.version(name) for name in versions} == versions
    assert lake.scan(ACTIVITY_RAW).select(pl.len()).collect().item() == len(expected["accepted"])

    assert_loopback_only(moto, requests_before)


# ------------------------------------------------------------------------------------------------
# B: the CLI runs the Dagster jobs on an S3 lake


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(script("activitylog")), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_ingest_and_query_on_s3(s3_env, tmp_path):
    moto = s3_env
    requests_before = moto.requests_logged()
    expected = upload_landing(moto, "landing2")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = child_env({
        **moto.env(),
        "DAGSTER_HOME": str(home),
        "ACTIVITYLOG_LAKE": f"s3://{BUCKET}/lake2",
        "ACTIVITYLOG_LANDING": f"s3://{BUCKET}/landing2",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    })

    started = time.monotonic()
    ingested = run_cli(["ingest", "--quiet"], env)
    assert ingested.returncode == 0, f"ingest failed:\nstdout:\n{ingested.stdout}\nstderr:\n{ingested.stderr}"
    assert re.search(rf"accepted\s+{len(expected['accepted'])}\b", ingested.stdout), ingested.stdout
    assert re.search(rf"quarantined\s+{expected['quarantined']}\b", ingested.stdout), ingested.stdout
    print(f"activitylog ingest on S3: {time.monotonic() - started:.1f}s")

    queried = run_cli(["query", "--format", "jsonl", "--limit", "0"], env)
    assert queried.returncode == 0, f"query failed:\nstdout:\n{queried.stdout}\nstderr:\n{queried.stderr}"
    rows = [json.loads(line) for line in queried.stdout.splitlines() if line.strip()]
    assert sorted(r["id"] for r in rows) == sorted(e["id"] for e in expected["accepted"])

    lake = Lake.at(f"s3://{BUCKET}/lake2")
    counts = {}
    for name in (ACTIVITY_RAW, ACTIVITY_EVENTS, ACTIVITY_LOG):
        frame = lake.scan(name)
        assert frame is not None, f"{name} missing on S3"
        counts[name] = dict(frame.group_by("day").len().collect().iter_rows())
    assert counts[ACTIVITY_RAW] == counts[ACTIVITY_EVENTS] == counts[ACTIVITY_LOG] == expected["per_day"]

    # The jobs ran as Dagster runs recorded in this test's DAGSTER_HOME (what the UI shows).
    with sqlite3.connect(home / "history" / "runs.db") as db:
        runs = dict(db.execute("select pipeline_name, count(*) from runs group by pipeline_name").fetchall())
    assert runs.get("ingest_job") == 1 and runs.get("refresh_job", 0) >= 1, runs
    assert_loopback_only(moto, requests_before)


def test_export_to_s3_and_verify_it_there(s3_env, tmp_path):
    from destinations.exports import run_export, verify_manifest
    from transforms.filters import ActivityFilter

    lake = Lake.at(tmp_path / "lake")
    build_lake(lake, tmp_path / "landing", [event(d) for d in (3, 4, 5)], name="a.jsonl",
               settings=ValidationSettings(start_date=date(2020, 1, 1), now=NOW))
    before = s3_env.requests_logged()

    result = run_export(lake, ActivityFilter(), "xlsx", f"s3://{BUCKET}/audit/", name="q1")
    assert result.file == f"s3://{BUCKET}/audit/q1.xlsx" and result.manifest["rows"] == 3
    keys = {o["Key"] for o in s3_env.client().list_objects_v2(Bucket=BUCKET, Prefix="audit/")["Contents"]}
    assert keys == {"audit/q1.xlsx", "audit/q1.manifest.json"}
    assert verify_manifest(result.manifest_uri)[1] == []
    s3_env.client().put_object(Bucket=BUCKET, Key="audit/q1.xlsx", Body=b"changed")
    assert "q1.xlsx: 7 bytes" in verify_manifest(result.manifest_uri)[1][0]
    assert_loopback_only(s3_env, before)


def test_stream_archive_to_s3(s3_env, tmp_path, monkeypatch):
    from destinations.siem import run_streams
    from pipelines.config import load_config

    lake = Lake.at(tmp_path / "lake")
    build_lake(lake, tmp_path / "landing", [event(d) for d in (3, 3, 4)], name="a.jsonl",
               settings=ValidationSettings(start_date=date(2020, 1, 1), now=NOW))
    config = tmp_path / "activitylog.yaml"
    config.write_text(f"streams:\n  archive: {{schema: ocsf, sink: {{type: s3, uri: 's3://{BUCKET}/activity/'}}}}\n")
    before = s3_env.requests_logged()

    report = run_streams(lake, load_config(config).streams, log=lambda _: None)
    assert report.streams["archive"]["sent"] == 3 and not report.errors
    objects = s3_env.client().list_objects_v2(Bucket=BUCKET, Prefix="activity/")["Contents"]
    assert len(objects) == 2 and all(re.fullmatch(r"activity/\d{4}/\d{2}/\d{2}/\d{2}/[0-9a-f]{32}\.json\.gz", o["Key"])
                                     for o in objects)
    lines = [json.loads(line) for o in objects for line in gzip.decompress(
        s3_env.client().get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()).splitlines()]
    assert len(lines) == 3 and all(line["class_uid"] == 3004 and line["type_uid"] == 300403 for line in lines)
    assert run_streams(lake, load_config(config).streams, log=lambda _: None).streams["archive"]["sent"] == 0
    assert_loopback_only(s3_env, before)


def test_every_job_on_an_s3_lake(s3_env, tmp_path):
    """The whole product on an s3:// lake, from the shell: ingest, verify, history, notify, export and
    verify-export, a stream, erase-user, retention (dry and real, with vacuum), verify again."""
    moto = s3_env
    before = moto.requests_logged()
    upload_landing(moto, "landing4")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    config = tmp_path / "activitylog.yaml"
    config.write_text(
        "notifications:\n  max_event_age: none\n  destinations: {out: {type: file, path: out.jsonl}}\n"
        "  subscriptions: [{name: all, destinations: [out]}]\n"
        f"streams:\n  archive: {{sink: {{type: s3, uri: 's3://{BUCKET}/stream4/'}}}}\n"
        "retention:\n  default: 900d\n  vacuum_grace: 0d\n")
    env = child_env({**moto.env(), "DAGSTER_HOME": str(home), "ACTIVITYLOG_LAKE": f"s3://{BUCKET}/lake4",
                     "ACTIVITYLOG_LANDING": f"s3://{BUCKET}/landing4", "ACTIVITYLOG_CONFIG": str(config),
                     "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})

    def ok(*args: str) -> str:
        result = run_cli(list(args), env)
        assert result.returncode == 0, f"{args}:\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        return result.stdout

    ok("ingest", "--quiet")
    assert "OK: 3 days, 5 events" in ok("verify")
    assert "active: false → true" in ok("history", "FeatureFlag", "12345")
    notified = ok("notify", "--quiet")
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 5, notified
    exported = ok("export", "--format", "xlsx", "--out", f"s3://{BUCKET}/exports4/", "--name", "all", "--quiet")
    assert "Exported 5 rows" in exported
    assert "OK: 1 file(s)" in ok("verify-export", f"s3://{BUCKET}/exports4/all.manifest.json")
    assert "archive" in ok("stream", "--quiet")
    streamed = moto.client().list_objects_v2(Bucket=BUCKET, Prefix="stream4/")["Contents"]
    assert len(streamed) == 3  # one object per day
    assert "Erased the personal data of 5 events" in ok("erase-user", "jane@example.com", "--quiet")
    assert "OK:" in ok("verify")
    assert "Would delete: 3 whole day(s)" in ok("retention", "--dry-run", "--quiet")
    assert "Deleted: 3 whole day(s)" in ok("retention", "--quiet")
    assert "OK:" in ok("verify")  # the expired days keep their digests
    lake = Lake.at(f"s3://{BUCKET}/lake4")
    remaining = lake.scan(ACTIVITY_RAW).collect()
    assert set(remaining["scope"]) == {"ActivityLog"}  # only the system events of erasure and retention
    assert_loopback_only(moto, before)


# ------------------------------------------------------------------------------------------------
# Two writers on one table at once: S3 conditional writes decide, the loser redoes its commit

WRITER = """
import json, sys, time
from datetime import date, datetime, timezone
from pathlib import Path
from transforms.durations import parse_duration
from transforms.ingest import ingest
from transforms.lake import Lake
from transforms.retention import RetentionPolicy, apply_retention
from transforms.validate import ValidationSettings
role, lake_uri, landing, barrier = sys.argv[1:5]
lake = Lake.at(lake_uri)
now = datetime(2024, 2, 1, 12, tzinfo=timezone.utc)
# Start together: both processes have imported everything before either writes.
Path(barrier, role).touch()
while len(list(Path(barrier).iterdir())) < 2:
    time.sleep(0.005)
started = time.time()
if role == "ingest":
    report = ingest(lake, landing, ValidationSettings(start_date=date(2020, 1, 1), now=now))
    result = {"accepted": report.accepted}
else:
    report = apply_retention(lake, RetentionPolicy(default=parse_duration("20d", "default")), now=now)
    result = {"deleted": report.deleted}
print(json.dumps({**result, "span": [started, time.time()]}))
"""


def writer(role: str, lake: Lake, landing: str, barrier: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, role, lake.root, landing, str(barrier)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ingest_and_retention_at_once_lose_nothing(s3_env, tmp_path):
    """Ingest of recent days while retention deletes old ones, both on activity_raw, three rounds:
    every new event is there, every expired one gone, and the accounting of each side adds up."""
    lake, client = Lake.at(f"s3://{BUCKET}/lake-concurrent"), s3_env.client()
    settings = ValidationSettings(start_date=date(2020, 1, 1), now=NOW)
    kept: set[str] = set()
    for round_ in range(3):
        old = [event(day, hour) for day in range(1, 9) for hour in range(8, 14)]  # expire: cut-off Jan 12
        new = [event(day, hour) for day in range(25, 32) for hour in range(8, 14)]
        client.put_object(Bucket=BUCKET, Key=f"old-{round_}/old.jsonl",
                          Body="\n".join(json.dumps(e) for e in old).encode())
        assert ingest(lake, f"s3://{BUCKET}/old-{round_}", settings).accepted == len(old)
        client.put_object(Bucket=BUCKET, Key=f"new-{round_}/new.jsonl",
                          Body="\n".join(json.dumps(e) for e in new).encode())
        barrier = tmp_path / f"barrier-{round_}"
        barrier.mkdir()
        ingesting = writer("ingest", lake, f"s3://{BUCKET}/new-{round_}", barrier)
        deleting = writer("retention", lake, "", barrier)
        outputs = {}
        for name, process in (("ingest", ingesting), ("retention", deleting)):
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, f"{name}: {stderr}"
            outputs[name] = json.loads(stdout.strip().splitlines()[-1])
        assert outputs["ingest"]["accepted"] == len(new)
        (a_start, a_end), (b_start, b_end) = outputs["ingest"]["span"], outputs["retention"]["span"]
        assert a_start < b_end and b_start < a_end, "the two writers did not overlap"
        # retention deletes the round's old events (and nothing it must keep)
        assert outputs["retention"]["deleted"] == len(old)
        kept |= {e["id"] for e in new}
        lake.forget(ACTIVITY_RAW)
        ids = set(lake.scan(ACTIVITY_RAW).select("id").collect()["id"])
        assert ids == kept, f"round {round_}: {len(kept - ids)} lost, {len(ids - kept)} not deleted"
