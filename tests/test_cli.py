"""The activitylog command line: outputs, filters, exit codes and one-line reasons."""

import csv
import io
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from tests.helpers.events import make_event, write_lines
from tests.helpers.lakes import build_lake
from pipelines.cli import main
from transforms.lake import Lake

ACTIVITYLOG = Path(sys.executable).parent / "activitylog"

EVENTS = [
    make_event(id="e1", scope="FeatureFlag", activity="updated", item_id="1", created_at="2024-01-10T09:00:00Z"),
    make_event(id="e2", scope="FeatureFlag", activity="created", item_id="2", created_at="2024-01-11T09:00:00Z",
               team_id=2),
    make_event(id="e3", scope="Insight", activity="updated", item_id="1", created_at="2024-01-12T09:00:00Z",
               user={"id": 7, "uuid": "uuid-bob", "email": "Bob@Example.com", "first_name": "Bob", "last_name": "B"}),
    make_event(id="e4", scope="Dashboard", activity="deleted", item_id="9", created_at="2024-01-12T09:00:00Z",
               user=None, is_system=True),
    make_event(id="e5", scope="FeatureFlag", activity="updated", item_id="1", created_at="2024-01-12T09:00:00Z"),
]


@pytest.fixture
def built_lake(tmp_path, monkeypatch) -> Lake:
    """A lake with activity_log built from EVENTS, through the same transforms the assets call."""
    lake = Lake.at(tmp_path / "lake")
    build_lake(lake, tmp_path / "landing", EVENTS)
    monkeypatch.setenv("ACTIVITYLOG_LAKE", lake.root)
    return lake


def run_query(capsys, *flags: str) -> list[dict]:
    assert main(["query", "--format", "jsonl", "--limit", "0", *flags]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def ids(rows) -> list[str]:
    return [r["id"] for r in rows]


def test_query_orders_newest_first_with_ties_broken_by_id(built_lake, capsys):
    assert ids(run_query(capsys)) == ["e5", "e4", "e3", "e2", "e1"]


@pytest.mark.parametrize("flags,expected", [
    (["--scope", "FeatureFlag"], ["e5", "e2", "e1"]),
    (["--scope", "Insight", "--scope", "Dashboard"], ["e4", "e3"]),
    (["--activity", "updated"], ["e5", "e3", "e1"]),
    (["--item-id", "1", "--scope", "FeatureFlag"], ["e5", "e1"]),
    (["--user", "bob@example.com"], ["e3"]),
    (["--user", "uuid-bob"], ["e3"]),
    (["--team-id", "2"], ["e2"]),
    (["--start", "2024-01-11", "--end", "2024-01-11"], ["e2"]),
    (["--start", "2024-01-12T09:00:00Z"], ["e5", "e4", "e3"]),
    (["--end", "2024-01-10T23:59:59+00:00"], ["e1"]),
    (["--system"], ["e4"]),
    (["--not-system", "--scope", "Dashboard"], []),
    (["--impersonated"], []),
    (["--not-impersonated", "--team-id", "2"], ["e2"]),
    (["--team-id", "1", "--include-org"], ["e5", "e4", "e3", "e1"]),
    (["--client", "w*"], ["e5", "e4", "e3", "e2", "e1"]),
    (["--ip-address", "10.*"], []),
    (["--search", "INSIGHT"], ["e3"]),
    (["--detail", "changes[].field", "exact", "active", "--scope", "Insight"], ["e3"]),
    (["--detail", "changes[].after", "exact", "true", "--item-id", "9"], ["e4"]),
    (["--detail", "changes[].after", "exact", '"true"'], ["e5", "e4", "e3", "e2", "e1"]),  # "true" is also true
    (["--detail", "name", "in", "a,new-checkout-flow", "--team-id", "2"], ["e2"]),
    (["--detail", "name", "contains", "CHECKOUT", "--activity", "created"], ["e2"]),
    (["--filter", '{"scopes": ["Insight", "Dashboard"]}', "--activity", "deleted"], ["e4"]),
    (["--filter", "scopes: [FeatureFlag]\nteam_ids: [2]"], ["e2"]),
])
def test_query_filters(built_lake, capsys, flags, expected):
    assert ids(run_query(capsys, *flags)) == expected


def test_query_limit_and_formats(built_lake, capsys):
    assert ids(run_query(capsys, "--limit", "2")) == ["e5", "e4"]

    assert main(["query", "--format", "csv", "--scope", "Insight"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["id"], r["scope"], r["actor_email"]) for r in rows] == [("e3", "Insight", "Bob@Example.com")]

    assert main(["query", "--scope", "Dashboard"]) == 0
    captured = capsys.readouterr()
    assert 'System deleted dashboard "new-checkout-flow"' in captured.out
    assert "1 rows" in captured.err


def test_query_rows_carry_the_log_columns(built_lake, capsys):
    row = run_query(capsys, "--item-id", "9")[0]
    assert row["actor_type"] == "system" and row["is_system"] is True
    assert row["resource_name"] == "new-checkout-flow"
    assert row["day"] == "2024-01-12"


@pytest.mark.parametrize("flags,message", [
    (["--start", "last tuesday"], "--start: 'last tuesday' is not a date"),
    (["--start", "2024-01-12", "--end", "2024-01-10"], "end: 2024-01-10 is before start 2024-01-12"),
    (["--limit", "-1"], "--limit must be 0 (all) or a positive number"),
    (["--detail", "changes[", "exact", "1"], "--detail: path 'changes[' is malformed"),
    (["--detail", "name", "like", "x"], "--detail['name'].operation: 'like' is not one of exact, contains, in"),
    (["--after", "garbage"], "--after: 'garbage' is not a cursor printed by a previous page"),
    (["--window", "3m"], "--window: '3m' is ambiguous: write 3mo for months"),
    (["--filter", '{"colour": 1}'], "unknown field 'colour'"),
    (["--filter", "[1, 2]"], "--filter: must be a mapping of filter fields"),
    (["--filter", "@/nonexistent/filter.yaml"], "--filter /nonexistent/filter.yaml: cannot read the file"),
])
def test_bad_input_exits_2_with_a_one_line_reason(built_lake, capsys, flags, message):
    assert main(["query", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_query_without_a_lake_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ACTIVITYLOG_LAKE", str(tmp_path / "empty"))
    assert main(["query"]) == 1
    assert "no activity_log table" in capsys.readouterr().err


def test_unknown_command_and_bad_settings_exit_2(capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    monkeypatch.setenv("ACTIVITYLOG_START_DATE", "soon")
    assert main(["query"]) == 2
    assert "ACTIVITYLOG_START_DATE='soon' is not a date" in capsys.readouterr().err


def test_ingest_command_runs_the_dagster_jobs(tmp_path):
    landing = tmp_path / "landing"
    write_lines(landing / "events.jsonl", EVENTS + ["not json", json.dumps(EVENTS[0])])
    env_home = tmp_path / "dagster"
    command = [str(ACTIVITYLOG), "ingest", "--lake", str(tmp_path / "lake"), "--landing", str(landing), "--quiet"]
    import os

    env = {**os.environ, "DAGSTER_HOME": str(env_home)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    assert done.returncode == 0, done.stderr
    assert "accepted                 5" in done.stdout
    assert "duplicates               1" in done.stdout
    assert "quarantined              1" in done.stdout
    assert "days written             3  (2024-01-10 … 2024-01-12)" in done.stdout
    assert (env_home / "dagster.yaml").exists()  # runs recorded in DAGSTER_HOME for the UI
    assert Lake.at(tmp_path / "lake").days("activity_log") == [date(2024, 1, d) for d in (10, 11, 12)]


def test_ingest_command_with_a_missing_landing_exits_2(tmp_path):
    import os

    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster")}
    done = subprocess.run([str(ACTIVITYLOG), "ingest", "--lake", str(tmp_path / "lake"), "--landing",
                           str(tmp_path / "nowhere"), "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("does not exist")
    assert len(done.stderr.strip().splitlines()) == 1


def test_ingest_with_a_broken_config_file_exits_2_before_running(tmp_path):
    import os

    (tmp_path / "landing").mkdir()
    config = tmp_path / "activitylog.yaml"
    config.write_text("masking:\n  feilds: [password]\n")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "ACTIVITYLOG_CONFIG": str(config)}
    done = subprocess.run([str(ACTIVITYLOG), "ingest", "--lake", str(tmp_path / "lake"), "--landing",
                           str(tmp_path / "landing"), "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert "masking.feilds" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "dagster" / "history").exists()  # no run was started


def test_query_pages_with_after(built_lake, capsys):
    seen = []
    cursor = None
    for _ in range(3):
        flags = ["query", "--format", "jsonl", "--limit", "2"] + (["--after", cursor] if cursor else [])
        assert main(flags) == 0
        captured = capsys.readouterr()
        seen += [json.loads(line)["id"] for line in captured.out.splitlines()]
        cursor = captured.err.split("--after ")[1].split()[0] if "--after " in captured.err else None
        if cursor is None:
            break
    assert seen == ["e5", "e4", "e3", "e2", "e1"]  # e3, e4, e5 share a timestamp: ties by id, none lost


def test_unknown_scope_warns_and_still_queries(built_lake, capsys):
    assert main(["query", "--scope", "FeatureFlags"]) == 0
    err = capsys.readouterr().err
    assert "warning: scopes: 'FeatureFlags' is not a known scope" in err and "0 rows" in err


def test_history_command(built_lake, capsys):
    assert main(["history", "FeatureFlag", "1"]) == 0
    out = capsys.readouterr().out
    assert out.index("2024-01-12 09:00:00Z") < out.index("2024-01-10 09:00:00Z")
    assert "active: false → true" in out
    assert main(["history", "FeatureFlag", "1", "--format", "jsonl", "--team-id", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == ["e5", "e1"]
    assert rows[0]["changes"][0]["before"] == "false" and rows[0]["changes"][0]["after"] == "true"
    assert main(["history", "FeatureFlag", "1", "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert json.loads(table[0]["changes"])[0]["field"] == "active"
    assert main(["history", "Insight", "404"]) == 0
    assert "No events for Insight 404" in capsys.readouterr().out


def test_history_without_a_lake_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ACTIVITYLOG_LAKE", str(tmp_path / "empty"))
    assert main(["history", "FeatureFlag", "1"]) == 1
    assert "run `activitylog ingest` first" in capsys.readouterr().err


def test_read_window_from_the_environment(built_lake, capsys, monkeypatch):
    monkeypatch.setenv("ACTIVITYLOG_READ_WINDOW", "7d")  # the fixture's events are from 2024
    assert ids(run_query(capsys)) == []
    assert ids(run_query(capsys, "--window", "none")) == ["e5", "e4", "e3", "e2", "e1"]
    monkeypatch.setenv("ACTIVITYLOG_READ_WINDOW", "soon")
    assert main(["query"]) == 2
    assert "ACTIVITYLOG_READ_WINDOW: 'soon' is not a duration" in capsys.readouterr().err


def test_read_only_commands_do_not_import_dagster(built_lake):
    probe = (
        "import sys; from pipelines.cli import main; "
        "codes = [main(['query', '--limit', '1']), main(['history', 'FeatureFlag', '1'])]; "
        "print(codes, 'dagster' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env={**__import__("os").environ, "ACTIVITYLOG_LAKE": built_lake.root})
    assert result.stdout.strip().splitlines()[-1] == "[0, 0] False"


def test_notify_command(built_lake, capsys, monkeypatch, tmp_path):
    config = tmp_path / "activitylog.yaml"
    config.write_text("notifications:\n  max_event_age: none\n  destinations: {out: {type: file, path: out.jsonl}}\n"
                      "  subscriptions: [{name: flags, filter: {scopes: [FeatureFlag]}, destinations: [out]}]\n")
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(config))
    assert main(["notify", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "3 day(s) evaluated (2024-01-10 … 2024-01-12)" in out
    assert " flags " in out and out.split(" flags ")[1].split()[:5] == ["3", "3", "0", "0", "0"]
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3
    assert main(["notify", "--quiet"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["notify", "--quiet", "--day", "2024-01-12"]) == 0  # explicitly again: already delivered
    assert capsys.readouterr().out.split(" flags ")[1].split()[:5] == ["1", "0", "0", "0", "1"]
    assert main(["notify", "--test", "flags"]) == 0
    assert "sent a sample of 'flags' to out" in capsys.readouterr().out
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize("argv, message", [
    (["notify", "--day", "yesterday"], "--day 'yesterday' is not a date like 2024-01-31"),
    (["notify", "--day", "2024-02-30"], "--day '2024-02-30' is not a date like 2024-01-31 (day is out of range"),
    (["verify", "--day", "2024-13-01"], "--day '2024-13-01' is not a date like 2024-01-31 (month must be"),
    (["backfill", "--end", "2024-02-30"], "--end '2024-02-30' is not a date like 2024-01-31"),
    (["notify", "--retry-failed", "--day", "2024-01-01"], "--retry-failed retries every failed delivery"),
    (["notify", "--test", "nope"], "no subscription named 'nope' (subscriptions: none configured)"),
])
def test_notify_bad_usage_exits_2(built_lake, capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_notify_with_a_broken_config_exits_2(built_lake, capsys, monkeypatch, tmp_path):
    config = tmp_path / "activitylog.yaml"
    config.write_text("notifications:\n  destinations: {ops: {type: slack, webhook_url: https://hooks.slack.com/x}}\n")
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(config))
    assert main(["notify"]) == 2
    err = capsys.readouterr().err
    assert "notifications.destinations.ops.slack.webhook_url: must be {env: NAME}, not a literal" in err
    assert "hooks.slack.com" not in err


def test_stream_command(built_lake, capsys, monkeypatch, tmp_path):
    config = tmp_path / "activitylog.yaml"
    config.write_text("streams:\n  archive: {sink: {type: s3, uri: archive}}\n")
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(config))
    assert main(["stream", "--status"]) == 0  # before any run: nothing sent, everything due
    assert capsys.readouterr().out.split("archive")[1].split()[:4] == ["ok", "-", "3", "5"]  # state, since, days, events
    assert main(["stream", "--quiet"]) == 0
    assert capsys.readouterr().out.split("archive")[1].split()[:3] == ["3", "5", "3"]  # days, sent, batches
    assert main(["stream", "--status", "archive"]) == 0
    after = capsys.readouterr().out.split("archive")[1].split()
    assert after[0] == "ok" and after[3:6] == ["0", "0", "-"]  # state, since (date time), nothing due
    assert main(["stream", "nope"]) == 2
    assert "no stream named 'nope' (streams: archive)" in capsys.readouterr().err
