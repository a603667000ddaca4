"""Retention: what expires under which policy, that it is really gone from the files, that it logs
itself, and that it loses nothing an ingest writes at the same time (two processes)."""

import json
import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from transforms.durations import Duration
from transforms.lake import ACTIVITY_LOG, ACTIVITY_RAW
from transforms.retention import ALL_TABLES, RetentionPolicy, apply_retention, vacuum

NOW = datetime.now(timezone.utc).replace(microsecond=0)  # the CLI test runs at the real now too


def build(lake, landing, events, name="a.jsonl"):
    build_lake(lake, landing, events, name=name, days="changed")


def at(day: date, hour: int = 12) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00Z"


@pytest.fixture
def retention_lake(lake, landing):
    events = []
    for offset in (90, 60, 40, 20, 5):  # days before NOW
        day = (NOW - timedelta(days=offset)).date()
        events += [make_event(id=f"p1-{offset}", created_at=at(day), team_id=1, organization_id="org-a"),
                   make_event(id=f"p2-{offset}", created_at=at(day), team_id=2, organization_id="org-a"),
                   make_event(id=f"p3-{offset}", created_at=at(day), team_id=3, organization_id="org-b"),
                   make_event(id=f"o-{offset}", created_at=at(day), team_id=None, organization_id="org-b",
                              scope="OrganizationMembership")]
    build(lake, landing, events)
    return lake


POLICY = RetentionPolicy(default=Duration(days=50), organizations={"org-a": Duration(days=30)},
                         projects={2: Duration(days=70)})


def remaining(lake, table=ACTIVITY_RAW) -> set[str]:
    return set(lake.scan(table).select("id").collect()["id"])


def test_project_then_organization_then_default(retention_lake):
    report = apply_retention(retention_lake, POLICY, now=NOW)
    # project 2: 70 days; org-a (project 1): 30 days; everything else (project 3, org-b rows): 50 days
    expected = {"p1-20", "p1-5", "p2-60", "p2-40", "p2-20", "p2-5", "p3-40", "p3-20", "p3-5", "o-40", "o-20", "o-5"}
    for table in (ACTIVITY_RAW, "activity_events", "activity_log", "activity_item_history"):
        assert remaining(retention_lake, table) == expected, table
    changes = retention_lake.scan("activity_changes").select("id").collect()["id"]
    assert set(changes) == expected
    assert report.whole_days == [(NOW - timedelta(days=90)).date()]  # older than the longest window (70d)
    assert report.by_policy == {"default": 4, "organization:org-a": 3, "project:2": 1}
    assert report.tables[ACTIVITY_RAW] == 20 - len(expected)


def test_forever_keeps_whole_days_and_nothing_without_a_policy(retention_lake):
    keep = RetentionPolicy(default=Duration(days=10), projects={1: None})
    report = apply_retention(retention_lake, keep, now=NOW)
    assert report.whole_days == [] and {"p1-90", "p1-60", "p1-40", "p1-20", "p1-5"} <= remaining(retention_lake)
    assert remaining(retention_lake) == {"p1-90", "p1-60", "p1-40", "p1-20", "p1-5", "p2-5", "p3-5", "o-5"}
    assert apply_retention(retention_lake, RetentionPolicy(), now=NOW).tables == {}


def test_dry_run_counts_exactly_and_changes_nothing(retention_lake):
    versions = {t: retention_lake.version(t) for t in ALL_TABLES}
    dry = apply_retention(retention_lake, POLICY, now=NOW, dry_run=True)
    assert {t: retention_lake.version(t) for t in ALL_TABLES} == versions
    real = apply_retention(retention_lake, POLICY, now=NOW)
    assert {t: n for t, n in dry.tables.items() if n} == {t: n for t, n in real.tables.items() if n}
    assert dry.by_policy == real.by_policy
    again = apply_retention(retention_lake, POLICY, now=NOW)  # idempotent: nothing left to delete
    assert sum(again.tables.values()) == 0


@pytest.mark.local_lake
def test_deleted_rows_are_physically_gone_after_vacuum(retention_lake, tmp_path):
    apply_retention(retention_lake, POLICY, now=NOW)
    root = tmp_path / "lake"
    # The verifiable log's leaves are kept by design (a leaf names its event and holds only hashes, so the
    # tree and earlier proofs stay checkable); every other file must lose the expired events.
    leaves = root / "merkle_leaves"
    ids_in_files = lambda: {i for f in root.rglob("*.parquet") if leaves not in f.parents
                            for column in ("id", "event_id")
                            for i in (pl.read_parquet(f, columns=[column])[column].to_list()
                                      if column in pl.read_parquet_schema(f) else [])}
    assert "p1-90" in ids_in_files()  # still in files that were removed from the table, until vacuum
    vacuum(retention_lake, timedelta(0))
    present = ids_in_files()
    assert "p1-90" not in present and "p1-40" not in present and "p2-60" in present
    if leaves.exists():  # the leaf of an expired event is still there
        assert "p1-90" in set(pl.read_delta(str(leaves))["event_id"].to_list())
    assert not retention_lake.exists("merkle_salts") or "p1-90" not in set(
        retention_lake.scan("merkle_salts").select("event_id").collect()["event_id"].to_list())
    logs = "".join(p.read_text() for p in root.rglob("_delta_log/*.json") if leaves not in p.parents)
    assert "p1-90" not in logs  # no statistics of removed files left in the log either


def test_cli_retention_logs_itself_as_a_system_event(retention_lake, tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    config = tmp_path / "activitylog.yaml"
    config.write_text("retention:\n  default: 50d\n  organizations: {org-a: 30d}\n  projects: {2: 70d}\n  vacuum_grace: 0d\n")
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(config))
    monkeypatch.setenv("ACTIVITYLOG_LAKE", retention_lake.root)
    assert main(["retention", "--dry-run", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Would delete: 1 whole day(s)") and "activity_raw" in out
    assert len(remaining(retention_lake)) == 20
    assert main(["retention", "--quiet"]) == 0
    assert "recorded as a retention_deleted system event" in capsys.readouterr().out
    log = retention_lake.scan(ACTIVITY_LOG).filter(pl.col("scope") == "ActivityLog").collect()
    assert log["activity"].to_list() == ["retention_deleted"] and log["is_system"].item()
    detail = json.loads(log["detail"].item())
    assert detail["policy"] == {"default": "50d", "organizations": {"org-a": "30d"}, "projects": {"2": "70d"}}
    assert detail["deleted"]["activity_raw"] == 8 and detail["vacuum_grace"] == "0d"
    assert "p1-90" not in remaining(retention_lake) and log["level"].item() == "organization"


@pytest.mark.parametrize("body, message", [
    ("retention: {default: 5 years}", "retention.default: '5 years' is not a duration"),
    ("retention: {vacuum_grace: 1mo}", "retention.vacuum_grace: 1mo has no fixed length"),
    ("retention: {projects: {web: 7d}}", "retention.projects.web"),
    ("retention: {schedule: daily}", "retention.schedule: 'daily' is not a cron expression"),
    ("retention: {default: 5y, tiers: 3}", "retention.tiers: unknown key"),
])
def test_retention_configuration_errors(tmp_path, body, message):
    from pipelines.config import ConfigError, load_config

    path = tmp_path / "activitylog.yaml"
    path.write_text(body + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)


INGEST_LOOP = textwrap.dedent("""
    import json, sys, uuid
    from datetime import date, datetime, timezone
    from pathlib import Path
    from transforms.ingest import ingest
    from transforms.lake import Lake
    from transforms.validate import ValidationSettings

    lake, landing, rounds = Lake.at(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    today = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ids = []
    for n in range(rounds):
        events = [{"id": f"new-{n}-{i}", "activity": "updated", "scope": "FeatureFlag", "item_id": "1",
                   "created_at": today, "team_id": 1} for i in range(20)]
        (landing / f"today-{n}.jsonl").write_text("".join(json.dumps(e) + "\\n" for e in events))
        report = ingest(lake, str(landing), ValidationSettings(start_date=date(2020, 1, 1)))
        ids += [e["id"] for e in events]
    print(json.dumps(ids))
""")


def test_retention_while_another_process_ingests_loses_nothing(retention_lake, tmp_path):
    landing = tmp_path / "landing2"
    landing.mkdir()
    process = subprocess.Popen([sys.executable, "-c", INGEST_LOOP, retention_lake.root, str(landing), "15"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[1])
    policy = RetentionPolicy(default=Duration(days=1))  # everything old goes, today stays
    runs = 0
    while process.poll() is None or runs == 0:
        apply_retention(retention_lake, policy)
        runs += 1
    out, err = process.communicate()
    assert process.returncode == 0, err
    written = set(json.loads(out))
    apply_retention(retention_lake, policy)
    assert remaining(retention_lake) == written  # every new event, and nothing old
    assert len(written) == 300 and runs >= 1
