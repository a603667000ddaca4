"""Legal holds: retention never deletes an event of a held organization or project (configured in
``retention.holds`` or added with ``activitylog hold``), while everyone else's expired events still go;
the dry run and the ``retention_deleted`` event report what was kept; the ``hold`` command and its errors."""

import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from transforms.durations import Duration
from transforms.holds import LEGAL_HOLDS, ORGANIZATION, PROJECT, add_hold
from transforms.lake import ACTIVITY_LOG, ACTIVITY_RAW, Lake
from transforms.retention import ALL_TABLES, RetentionPolicy, apply_retention

NOW = datetime.now(timezone.utc).replace(microsecond=0)  # the CLI runs at the real now too
ACTIVITYLOG = Path(sys.executable).parent / "activitylog"
ROOT = Path(__file__).resolve().parents[1]
# Every table that holds a row per event (merkle_salts: several per event, by event_id).
EVENT_TABLES = {ACTIVITY_RAW: "id", "activity_events": "id", "activity_changes": "id", ACTIVITY_LOG: "id",
                "activity_item_history": "id", "merkle_salts": "event_id"}
OFFSETS = (90, 60, 40, 20, 5)  # days before NOW
# prefix → (team_id, organization_id)
TENANTS = {"p1": (1, "org-a"), "p2": (2, "org-a"), "p3": (3, "org-b"), "ob": (None, "org-b"),
           "p4": (4, "org-c"), "oc": (None, "org-c"), "p5": (5, None)}
WINDOWS = {"default": 30, "organizations": {"org-a": 50}, "projects": {3: 10}}  # days
POLICY = RetentionPolicy(default=Duration(days=30), organizations={"org-a": Duration(days=50)},
                         projects={3: Duration(days=10)}, held_organizations=frozenset({"org-b"}),
                         held_projects=frozenset({1}))


def at(offset: int) -> str:
    return f"{(NOW - timedelta(days=offset)).date().isoformat()}T12:00:00Z"


def events() -> list[dict]:
    return [make_event(id=f"{prefix}-{offset}", created_at=at(offset), team_id=team, organization_id=org,
                       **({"scope": "OrganizationMembership"} if team is None else {}))
            for offset in OFFSETS for prefix, (team, org) in TENANTS.items()]


def window_expired(team, org, created_at: datetime, windows=WINDOWS, now=NOW) -> bool:
    """Pure Python: the project's window, else the organization's, else the default (None: forever)."""
    if team in windows["projects"]:
        days = windows["projects"][team]
    elif org in windows["organizations"]:
        days = windows["organizations"][org]
    else:
        days = windows["default"]
    return days is not None and created_at < now - timedelta(days=days)


def created(offset: int) -> datetime:
    return datetime.fromisoformat(at(offset).replace("Z", "+00:00"))


def expected_after(held_projects={1}, held_organizations={"org-b"}) -> tuple[set[str], int]:
    """(the ids retention must leave, how many expired rows a hold keeps), computed here."""
    kept, held = set(), 0
    for offset in OFFSETS:
        for prefix, (team, org) in TENANTS.items():
            is_held = team in held_projects or org in held_organizations
            expired = window_expired(team, org, created(offset))
            if not expired or is_held:
                kept.add(f"{prefix}-{offset}")
            held += expired and is_held
    return kept, held


def ids(lake: Lake, table: str) -> set[str]:
    frame = lake.scan(table)
    return set() if frame is None else set(frame.select(EVENT_TABLES[table]).collect()[EVENT_TABLES[table]])


def counts(lake: Lake) -> dict[str, int]:
    return {t: lake.scan(t).select(pl.len()).collect().item() for t in EVENT_TABLES}


@pytest.fixture
def held_lake(lake, landing):
    build_lake(lake, landing, events(), days="changed")
    return lake


def test_held_tenants_keep_every_expired_row_in_every_table(held_lake):
    before = counts(held_lake)
    assert before[ACTIVITY_RAW] == len(TENANTS) * len(OFFSETS)
    salts_per_event = before["merkle_salts"] // before[ACTIVITY_RAW]
    report = apply_retention(held_lake, POLICY, now=NOW)
    kept, held = expected_after()
    for table in EVENT_TABLES:
        assert ids(held_lake, table) == kept, table
    # the held ones are all there, and every other tenant's expired rows are gone
    assert {i for i in kept if i.split("-")[0] in ("p1", "p3", "ob")} == {
        f"{p}-{o}" for p in ("p1", "p3", "ob") for o in OFFSETS}
    assert {"p2-90", "p2-60", "p4-40", "oc-40", "p5-40"}.isdisjoint(ids(held_lake, ACTIVITY_RAW))
    after = counts(held_lake)
    gone = before[ACTIVITY_RAW] - len(kept)
    assert gone == 11 and held == 9
    assert {t: before[t] - after[t] for t in EVENT_TABLES} == {
        **{t: gone for t in EVENT_TABLES}, "merkle_salts": gone * salts_per_event}
    assert report.whole_days == [] and report.held == held and report.tables[ACTIVITY_RAW] == gone
    detail = report.as_detail(POLICY)
    assert detail["held"] == {"rows": 9, "organizations": ["org-b"], "projects": [1]}
    assert sum(apply_retention(held_lake, POLICY, now=NOW).tables.values()) == 0  # nothing left to delete


def test_dry_run_reports_the_held_rows_and_changes_nothing(held_lake):
    versions = {t: held_lake.version(t) for t in ALL_TABLES}
    dry = apply_retention(held_lake, POLICY, now=NOW, dry_run=True)
    assert {t: held_lake.version(t) for t in ALL_TABLES} == versions
    assert dry.held == expected_after()[1] and dry.as_detail(POLICY)["held"]["rows"] == dry.held
    assert len(ids(held_lake, ACTIVITY_RAW)) == len(TENANTS) * len(OFFSETS)
    real = apply_retention(held_lake, POLICY, now=NOW)
    assert {t: n for t, n in dry.tables.items() if n} == {t: n for t, n in real.tables.items() if n}
    assert real.held == dry.held


def test_a_hold_keeps_the_quarantine_and_no_day_goes_whole(held_lake):
    without = RetentionPolicy(default=Duration(days=30))
    assert without.whole_days_before(NOW) is not None
    held = RetentionPolicy(default=Duration(days=30), held_projects=frozenset({99}))
    assert held.whole_days_before(NOW) is None
    report = apply_retention(held_lake, held, now=NOW)
    assert report.whole_days == [] and report.held == 0
    assert ids(held_lake, ACTIVITY_RAW) == {f"{p}-{o}" for p in TENANTS for o in (20, 5)}


def test_the_integrity_chain_survives_a_held_retention(held_lake):
    from transforms.integrity import digests, latest, update_digests, verify

    update_digests(held_lake, held_lake.days(ACTIVITY_RAW))
    apply_retention(held_lake, POLICY, now=NOW)
    rows = latest(digests(held_lake)).select("day", "expired", "reason").rows()
    # no day was deleted whole: the thinned days (90, 60, 40 days ago) got a new digest version each; on
    # the day 20 days ago only held rows were expired, and it is as it was
    assert [r[1:] for r in rows if r[0] < (NOW - timedelta(days=10)).date()] == [(False, "retention")] * 3 + [
        (False, "ingest")]
    assert verify(held_lake).ok


def test_sql_and_polars_agree_and_a_null_is_not_held():
    frame = pl.DataFrame({"team_id": [1, None, 2, None, 3], "organization_id": [None, "org-b", None, None, "org-b"],
                          "created_at": [NOW - timedelta(days=100)] * 5})
    assert frame.select(POLICY.held()).to_series().to_list() == [True, True, False, False, True]
    assert frame.select(POLICY.expired(NOW)).to_series().to_list() == [False, False, True, True, False]
    assert "NOT IN (1)" in POLICY.sql(NOW) and "NOT IN ('org-b')" in POLICY.sql(NOW)
    assert RetentionPolicy(default=Duration(days=30)).sql(NOW).count("NOT IN") == 0  # unchanged without holds


def test_retention_run_logs_the_held_rows(held_lake, tmp_path, monkeypatch, capsys):
    """Holds of the configuration and of the lake together; the dry run's line; the system event."""
    from pipelines.cli import main

    add_hold(held_lake, PROJECT, 1, "case 42")
    config = tmp_path / "activitylog.yaml"
    config.write_text("retention:\n  default: 30d\n  organizations: {org-a: 50d}\n  projects: {3: 10d}\n"
                      "  holds: {organizations: [org-b]}\n  vacuum_grace: 0d\n")
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(config))
    monkeypatch.setenv("ACTIVITYLOG_LAKE", held_lake.root)
    assert main(["retention", "--dry-run", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "  held: 9 rows kept (legal hold: organizations org-b; projects 1)" in out
    assert len(ids(held_lake, ACTIVITY_RAW)) == len(TENANTS) * len(OFFSETS)
    assert main(["retention", "--quiet"]) == 0
    assert "held: 9 rows kept" in capsys.readouterr().out
    log = held_lake.scan(ACTIVITY_LOG).filter(pl.col("scope") == "ActivityLog").collect()
    assert log["activity"].to_list() == ["retention_deleted"]
    assert ids(held_lake, ACTIVITY_RAW) - set(log["id"]) == expected_after()[0]
    detail = json.loads(log["detail"].item())
    assert detail["held"] == {"rows": 9, "organizations": ["org-b"], "projects": [1]}
    assert detail["deleted"]["activity_raw"] == 11


# ------------------------------------------------------------------------------------------------
# The property: whatever the events, windows and holds, held rows stay and unheld expired rows go.

ORGS = ["o1", "o2", "o3"]
PROJECTS = {1: "o1", 2: "o1", 3: "o2", 4: "o3"}
window = st.one_of(st.none(), st.integers(1, 12))  # days; None: forever


@st.composite
def scenarios(draw):
    rows = draw(st.lists(st.tuples(st.sampled_from([None, 1, 2, 3, 4]), st.sampled_from(ORGS),
                                   st.integers(0, 14), st.integers(0, 23)), min_size=1, max_size=25))
    # a project belongs to its organization; an organization-level row (no project) names any organization
    rows = [(team, PROJECTS[team] if team is not None else org, day, hour) for team, org, day, hour in rows]
    windows = {"default": draw(window),
               "organizations": draw(st.dictionaries(st.sampled_from(ORGS), window, max_size=2)),
               "projects": draw(st.dictionaries(st.sampled_from(list(PROJECTS)), window, max_size=2))}
    holds = (draw(st.frozensets(st.sampled_from(list(PROJECTS)), max_size=2)),
             draw(st.frozensets(st.sampled_from(ORGS), max_size=1)))
    return rows, windows, holds


def _duration(days):
    return None if days is None else Duration(days=days)


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios())
def test_property_held_rows_stay_and_unheld_expired_rows_go(scenario):
    rows, windows, (held_projects, held_organizations) = scenario
    with tempfile.TemporaryDirectory() as directory:
        lake = Lake.at(Path(directory) / "lake")
        events, expected = [], set()
        for n, (team, org, day, hour) in enumerate(rows):
            moment = (NOW - timedelta(days=day, hours=hour, minutes=30)).replace(second=0)
            event_id = f"e{n}"
            events.append(make_event(id=event_id, created_at=moment.strftime("%Y-%m-%dT%H:%M:%SZ"), team_id=team,
                                     organization_id=org))
            held = team in held_projects or org in held_organizations
            if held or not window_expired(team, org, moment, windows):
                expected.add(event_id)
        build_lake(lake, Path(directory) / "landing", events, days="changed")
        policy = RetentionPolicy(default=_duration(windows["default"]),
                                 organizations={o: _duration(d) for o, d in windows["organizations"].items()},
                                 projects={t: _duration(d) for t, d in windows["projects"].items()},
                                 held_organizations=held_organizations, held_projects=held_projects)
        apply_retention(lake, policy, now=NOW)
        for table in (ACTIVITY_RAW, ACTIVITY_LOG, "merkle_salts"):
            assert ids(lake, table) == expected, (table, policy)


# ------------------------------------------------------------------------------------------------
# The command: activitylog hold add|list|remove, as a real process.


def hold(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(ACTIVITYLOG), "hold", *args], capture_output=True, text=True, env=env, timeout=300,
                          cwd=ROOT)


def test_hold_command_adds_lists_removes_and_logs(held_lake, tmp_path):
    config = tmp_path / "activitylog.yaml"
    config.write_text("retention:\n  default: 30d\n  holds: {organizations: [org-c]}\n")
    env = {**os.environ, "ACTIVITYLOG_LAKE": held_lake.root, "ACTIVITYLOG_CONFIG": str(config),
           "DAGSTER_HOME": str(tmp_path / "dagster")}
    listed = hold(env, "list")
    assert listed.returncode == 0, listed.stderr
    assert "organization org-c" in " ".join(listed.stdout.split()) and "configuration" in listed.stdout

    added = hold(env, "add", "--project", "1", "--reason", "case 42")
    assert added.returncode == 0, added.stderr
    assert "Legal hold added: project 1 (case 42)" in added.stdout
    listed = hold(env, "list").stdout
    assert "case 42" in listed and "since" in listed and "org-c" in listed

    for args, message in [
        (["add", "--project", "1"], "project 1 is already under a legal hold"),
        (["add"], "give either --organization ORG_ID or --project TEAM_ID"),
        (["add", "--organization", "org-a", "--project", "1"], "not both"),
        (["add", "--project", "web"], "--project 'web' is not a project id (an integer team id)"),
        (["remove", "--project", "2"], "project 2 is not under a legal hold"),
        (["remove", "--organization", "org-c"], "is held by the configuration"),
    ]:
        done = hold(env, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)

    removed = hold(env, "remove", "--project", "1")
    assert removed.returncode == 0, removed.stderr
    assert "Legal hold removed: project 1" in removed.stdout
    assert "project 1" not in hold(env, "list").stdout
    unknown = hold(env, "add", "--organization", "org-new")
    assert unknown.returncode == 0 and "warning" in unknown.stderr

    lake = Lake.at(held_lake.root)
    raw = lake.scan(ACTIVITY_RAW).filter(pl.col("activity").str.starts_with("legal_hold_")).sort("created_at").collect()
    assert raw["activity"].to_list() == ["legal_hold_added", "legal_hold_removed", "legal_hold_added"]
    payloads = [json.loads(p) for p in raw["payload"]]
    assert [p["is_system"] for p in payloads] == [True] * 3
    assert [(p["detail"]["kind"], p["detail"]["id"]) for p in payloads] == [
        (PROJECT, 1), (PROJECT, 1), (ORGANIZATION, "org-new")]
    assert payloads[1]["detail"]["reason"] == "case 42"
    log = lake.scan(LEGAL_HOLDS).collect()
    assert log.height == 3 and set(log["kind"]) == {ORGANIZATION, PROJECT}


# ------------------------------------------------------------------------------------------------
# The configuration


@pytest.mark.parametrize("body, message", [
    ("retention: {holds: {organizations: [org-a], teams: [7]}}",
     "retention.holds.teams: unknown key (allowed: organizations, projects)"),
    ("retention: {holds: {projects: [web]}}", "retention.holds.projects: 'web' is not a project id"),
    ("retention: {holds: {projects: [1.5]}}", "retention.holds.projects: 1.5 is not a project id"),
    ("retention: {holds: {organizations: [12]}}", "retention.holds.organizations: must be an organization id"),
    ("retention: {holds: [org-a]}", "retention.holds: must be a mapping"),
])
def test_holds_configuration_errors(tmp_path, body, message):
    from pipelines.config import ConfigError, load_config

    path = tmp_path / "activitylog.yaml"
    path.write_text(body + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)


def test_holds_configuration_defaults_to_none_and_reads_ids(tmp_path):
    from pipelines.config import load_config
    from pipelines.retention import policy_of

    path = tmp_path / "activitylog.yaml"
    path.write_text("retention: {default: 5y}\n")
    assert not policy_of(load_config(path)).holds
    path.write_text("retention: {default: 5y, holds: {organizations: [org-a], projects: [7, '8']}}\n")
    policy = policy_of(load_config(path))
    assert policy.held_organizations == {"org-a"} and policy.held_projects == {7, 8}


def test_a_hold_change_that_cannot_be_recorded(lake, monkeypatch):
    """An addition whose system event cannot be written stands (and says so); a removal is undone."""
    import pytest

    import transforms.holds as holds

    def refuse(*_args):
        raise OSError("landing area not writable")

    monkeypatch.setattr(holds, "_record", refuse)
    with pytest.raises(holds.HoldNotRecorded, match="org-x is under a legal hold, but .*not writable"):
        holds.add_recorded(lake, holds.ORGANIZATION, "org-x", "audit 7", validation=None)
    assert [h.id for h in holds.active_holds(lake)] == ["org-x"]
    with pytest.raises(holds.HoldNotRecorded, match="the hold was put back"):
        holds.remove_recorded(lake, holds.ORGANIZATION, "org-x", validation=None)
    assert [(h.id, h.reason) for h in holds.active_holds(lake)] == [("org-x", "audit 7")]
