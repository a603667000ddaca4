"""Command-line details a first-time user meets, through the real `activitylog` in a subprocess: keys that
name real tenants, next-page commands that work when pasted, history paging, scope suggestions, dates
echoed in errors, one timestamp format, Excel dates, readable export names, and `summary` in API rows."""

import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import httpx
import polars as pl
import pytest

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from destinations.exports import default_name
from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server
from transforms.filters import ActivityFilter
from transforms.keys import KeyScopeError, create_key, list_keys
from transforms.lake import ACTIVITY_LOG, Lake

BIN = Path(sys.executable).parent
ACTIVITYLOG = BIN / "activitylog"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")

EVENTS = [
    make_event(id="f1-a", scope="FeatureFlag", item_id="1", created_at="2024-01-10T09:00:00Z"),
    make_event(id="f1-b", scope="FeatureFlag", item_id="1", created_at="2024-01-11T09:00:00Z"),
    make_event(id="f1-c", scope="FeatureFlag", item_id="1", created_at="2024-01-11T09:00:00Z"),  # a tie
    make_event(id="f1-d", scope="FeatureFlag", item_id="1", created_at="2024-01-12T09:30:00.123456Z"),
    make_event(id="f2-a", scope="FeatureFlag", item_id="2", created_at="2024-01-12T10:00:00Z", team_id=2),
    make_event(id="i-a", scope="Insight", item_id="7", created_at="2024-01-12T11:00:00Z"),
    make_event(id="t3-a", scope="Dashboard", item_id="9", created_at="2024-01-12T12:00:00Z", team_id=3,
               organization_id="org-2"),
    make_event(id="o2-a", scope="Organization", item_id=None, team_id=None, organization_id="org-2",
               created_at="2024-01-12T13:00:00Z"),
]


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory) -> str:
    """Projects 1 and 2 of org-1 ("Tyrell Corp"), project 3 of org-2 ("Wallace Corp"); project 4 of org-1
    exists only in the reference data."""
    root = tmp_path_factory.mktemp("newcomer")
    lake = Lake.at(root / "lake")
    build_lake(lake, root / "landing", EVENTS)
    reference = root / "lake" / "reference"
    reference.mkdir()
    (reference / "organizations.csv").write_text("organization_id,name\norg-1,Tyrell Corp\norg-2,Wallace Corp\n")
    (reference / "projects.csv").write_text("team_id,name,organization_id\n1,Web,org-1\n4,Mobile,org-1\n")
    return lake.root


def run(*argv: str, lake: str | None = None, cwd: str | None = None, config: str = os.devnull,
        ) -> subprocess.CompletedProcess:
    env = child_env({"ACTIVITYLOG_CONFIG": config, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                     "DAGSTER_HOME": os.environ["DAGSTER_HOME"]})
    if lake:
        env["ACTIVITYLOG_LAKE"] = lake
    return subprocess.run([str(ACTIVITYLOG), *argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def run_pasted(line: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    """A printed command line, pasted into a shell as is (no ACTIVITYLOG_LAKE: it must say which lake)."""
    env = child_env({"ACTIVITYLOG_CONFIG": os.devnull, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                     "DAGSTER_HOME": os.environ["DAGSTER_HOME"]})
    return subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def one_line_error(done: subprocess.CompletedProcess, code: int = 2) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


# ------------------------------------------------------------------------------------------------
# keys


@pytest.fixture
def key_lake(lake_root, tmp_path) -> str:
    """A copy of the module's lake, so that keys created here stay here."""
    import shutil

    shutil.copytree(lake_root, tmp_path / "lake")
    return str(tmp_path / "lake")


def test_keys_create_refuses_an_organization_name_and_suggests_its_id(key_lake):
    message = one_line_error(run("keys", "create", "--organization", "Tyrell Corp", "--project", "1", lake=key_lake))
    assert "'Tyrell Corp'" in message and "did you mean --organization org-1 (Tyrell Corp)?" in message
    message = one_line_error(run("keys", "create", "--organization", "org-3", "--admin", lake=key_lake))
    assert "'org-3' is unknown" in message and "did you mean --organization org-" in message
    message = one_line_error(run("keys", "create", "--organization", "Umbrella", "--admin", lake=key_lake))
    assert "'Umbrella' is unknown" in message and "did you mean" not in message
    assert list_keys(Lake.at(key_lake)) == []  # nothing was created


def test_keys_create_refuses_unknown_projects_and_other_organizations_projects(key_lake):
    message = one_line_error(run("keys", "create", "--organization", "org-1", "--project", "999", lake=key_lake))
    assert "project 999 is unknown" in message and "projects of org-1: 1, 2, 4" in message
    # the cross-tenant hole: a key of org-1 that could read project 3 of org-2
    message = one_line_error(run("keys", "create", "--organization", "org-1", "--project", "1", "--project", "3",
                                 lake=key_lake))
    assert "project 3 is not a project of organization org-1: it belongs to organization org-2" in message
    assert list_keys(Lake.at(key_lake)) == []
    with pytest.raises(KeyScopeError, match="project 3 is not a project of organization org-1"):
        create_key(Lake.at(key_lake), "org-1", [3])  # the library refuses it too


def test_keys_create_accepts_the_tenants_projects_from_events_and_reference_data(key_lake):
    done = run("keys", "create", "--organization", "org-1", "--project", "2", "--project", "4", lake=key_lake)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("alk_")
    done = run("keys", "create", "--organization", "org-2", "--project", "3", lake=key_lake)
    assert done.returncode == 0, done.stderr
    done = run("keys", "create", "--organization", "org-2", "--admin", lake=key_lake)  # known from events only
    assert done.returncode == 0, done.stderr
    assert sorted((k.organization_id, k.projects, k.admin) for k in list_keys(Lake.at(key_lake))) == [
        ("org-1", (2, 4), False), ("org-2", (), True), ("org-2", (3,), False)]


def test_keys_create_reads_the_configured_reference_tables(key_lake, tmp_path):
    (tmp_path / "organizations.csv").write_text("organization_id,name\norg-9,Cyberdyne\n")
    (tmp_path / "projects.csv").write_text("team_id,name,organization_id\n90,Skynet,org-9\n")
    config = tmp_path / "activitylog.yaml"
    config.write_text("reference:\n  organizations: organizations.csv\n  projects: projects.csv\n")
    done = run("keys", "create", "--organization", "org-9", "--project", "90", lake=key_lake, config=str(config))
    assert done.returncode == 0, done.stderr
    message = one_line_error(run("keys", "create", "--organization", "Cyberdyne", "--admin", lake=key_lake,
                                 config=str(config)))
    assert "did you mean --organization org-9 (Cyberdyne)?" in message


def test_keys_take_lake_before_or_after_the_subcommand(key_lake):
    created = run("keys", "create", "--lake", key_lake, "--organization", "org-1", "--project", "1", "--label", "x")
    assert created.returncode == 0, created.stderr
    key_id = created.stdout.strip().splitlines()[-1].split("_")[1]
    listed = run("keys", "list", "--lake", key_lake)
    assert listed.returncode == 0 and key_id in listed.stdout and "active" in listed.stdout
    assert key_id in run("keys", "--lake", key_lake, "list").stdout
    assert run("keys", "revoke", key_id, "--lake", key_lake).returncode == 0
    assert "revoked" in run("keys", "list", "--lake", key_lake).stdout


@pytest.mark.parametrize("argv", [["keys", "--lake", "/nonexistent", "list"], ["keys", "list", "--lake", "/nonexistent"],
                                  ["keys", "create", "--lake", "/nonexistent", "--organization", "org-1", "--admin"],
                                  ["keys", "revoke", "abc", "--lake", "/nonexistent"]])
def test_keys_on_a_missing_lake_exit_2(argv):
    message = one_line_error(run(*argv))
    assert "no lake at /nonexistent" in message


def test_keys_on_an_empty_directory_exit_2(tmp_path):
    message = one_line_error(run("keys", "list", "--lake", str(tmp_path)))
    assert f"no lake at {tmp_path}" in message


# ------------------------------------------------------------------------------------------------
# query: next-page commands, scope suggestions, dates


def test_query_prints_a_next_page_command_that_works_when_pasted(lake_root, tmp_path):
    flags = ["--scope", "FeatureFlag", "--detail", "changes[].field", "in", "active,rollout",
             "--search", "new-checkout", "--start", "2024-01-01", "--format", "jsonl"]
    everything = run("query", "--lake", lake_root, *flags, "--limit", "0")
    assert everything.returncode == 0, everything.stderr
    expected = [json.loads(line)["id"] for line in everything.stdout.splitlines()]
    assert expected == ["f2-a", "f1-d", "f1-c", "f1-b", "f1-a"]

    done = run("query", "--lake", lake_root, *flags, "--limit", "2", cwd=str(tmp_path))
    seen = [json.loads(line)["id"] for line in done.stdout.splitlines()]
    for _ in range(5):
        hint = [line for line in done.stderr.splitlines() if line.startswith("more rows: ")]
        if not hint:
            break
        line = hint[0][len("more rows: "):]
        assert line.startswith("activitylog query ") and "..." not in line
        tokens = shlex.split(line)
        assert tokens[tokens.index("--detail") + 1:tokens.index("--detail") + 4] == ["changes[].field", "in",
                                                                                     "active,rollout"]
        done = run_pasted(line, cwd=str(tmp_path))
        assert done.returncode == 0, done.stderr
        seen += [json.loads(row)["id"] for row in done.stdout.splitlines()]
    assert seen == expected  # pages in order, none skipped or repeated (f1-b and f1-c tie)


def test_next_page_command_quotes_awkward_values(lake_root, tmp_path):
    """JSON with quotes and spaces, a shell glob, a repeated flag: quoted so the shell passes them as is."""
    (tmp_path / "w-file").write_text("")  # an unquoted w* would expand to this file's name
    flags = ["--filter", '{"scopes": ["FeatureFlag"], "search": "new checkout"}', "--client", "w*",
             "--item-id", "1", "--item-id", "2", "--not-system", "--format", "jsonl"]
    everything = [json.loads(line)["id"] for line in run(
        "query", "--lake", lake_root, *flags, "--limit", "0").stdout.splitlines()]
    assert everything == []  # "new checkout" (a space, not a dash) matches nothing; take text that does
    flags[1] = '{"scopes": ["FeatureFlag"], "search": "checkout-flow"}'
    everything = [json.loads(line)["id"] for line in run(
        "query", "--lake", lake_root, *flags, "--limit", "0").stdout.splitlines()]
    assert everything == ["f2-a", "f1-d", "f1-c", "f1-b", "f1-a"]
    done = run("query", "--lake", lake_root, *flags, "--limit", "3", cwd=str(tmp_path))
    line = [x for x in done.stderr.splitlines() if x.startswith("more rows: ")][0][len("more rows: "):]
    tokens = shlex.split(line)
    assert tokens[:2] == ["activitylog", "query"] and tokens[tokens.index("--filter") + 1] == flags[1]
    assert tokens[tokens.index("--client") + 1] == "w*" and tokens.count("--item-id") == 2
    second = run_pasted(line, cwd=str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert [json.loads(row)["id"] for row in second.stdout.splitlines()] == ["f1-b", "f1-a"]
    assert "more rows" not in second.stderr


def test_unknown_scope_suggests_the_closest_known_one(lake_root):
    done = run("query", "--lake", lake_root, "--scope", "featureflag")
    assert done.returncode == 0
    assert "scopes: 'featureflag' is not a known scope" in done.stderr
    assert "did you mean 'FeatureFlag'?" in done.stderr
    far = run("query", "--lake", lake_root, "--scope", "Zebra")
    assert "'Zebra' is not a known scope" in far.stderr and "did you mean" not in far.stderr


@pytest.mark.parametrize("argv, value", [
    (["query", "--start", "2024-13-01"], "2024-13-01"),
    (["query", "--end", "2024-02-30T10:00:00Z"], "2024-02-30T10:00:00Z"),
    (["query", "--filter", "start: 2024-13-01"], "2024-13-01"),  # YAML: a date that does not exist
    (["query", "--filter", '{"end": "2024-02-30"}'], "2024-02-30"),
    (["export", "--format", "csv", "--out", "/tmp/never/", "--start", "2024-13-01"], "2024-13-01"),
])
def test_bad_dates_are_echoed_in_the_error(lake_root, argv, value):
    message = one_line_error(run(*argv, "--lake", lake_root))
    assert value in message and "Traceback" not in message


# ------------------------------------------------------------------------------------------------
# history: how many beyond --limit, and --after


def test_history_counts_events_beyond_the_limit_and_pages_with_after(lake_root, tmp_path):
    everything = run("history", "FeatureFlag", "1", "--lake", lake_root, "--format", "jsonl")
    expected = [json.loads(line)["id"] for line in everything.stdout.splitlines()]
    assert expected == ["f1-d", "f1-c", "f1-b", "f1-a"]
    assert "more events" not in everything.stderr

    first = run("history", "FeatureFlag", "1", "--lake", lake_root, "--limit", "3")
    assert first.returncode == 0, first.stderr
    assert "3 events of 4" in first.stderr
    hint = [line for line in first.stderr.splitlines() if " more events: " in line]
    assert len(hint) == 1 and hint[0].startswith("1 more events: activitylog history ")
    second = run_pasted(hint[0].split(" more events: ", 1)[1], cwd=str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert "more events" not in second.stderr and second.stdout.count("    ") >= 1

    seen, after = [], None
    while True:  # jsonl pages of 1: ties broken by id, nothing lost
        done = run("history", "FeatureFlag", "1", "--lake", lake_root, "--format", "jsonl", "--limit", "1",
                   *(["--after", after] if after else []))
        seen += [json.loads(line)["id"] for line in done.stdout.splitlines()]
        counts = re.findall(r"^(\d+) more events: .*--after (\S+)", done.stderr, re.M)
        if not counts:
            break
        assert int(counts[0][0]) == len(expected) - len(seen)
        after = counts[0][1]
    assert seen == expected


def test_history_rejects_a_bad_cursor(lake_root):
    message = one_line_error(run("history", "FeatureFlag", "1", "--lake", lake_root, "--after", "garbage"))
    assert "--after: 'garbage' is not a cursor" in message


# ------------------------------------------------------------------------------------------------
# one timestamp format; XLSX dates; export names


def test_one_timestamp_format_in_query_output_and_exports(lake_root, tmp_path):
    jsonl = [json.loads(line) for line in run("query", "--lake", lake_root, "--format", "jsonl", "--limit", "0").stdout
             .splitlines()]
    table = list(csv.DictReader(io.StringIO(run("query", "--lake", lake_root, "--format", "csv", "--limit", "0").stdout)))
    history = [json.loads(line) for line in run("history", "FeatureFlag", "1", "--lake", lake_root, "--format",
                                                "jsonl").stdout.splitlines()]
    for rows in (jsonl, table, history):
        assert rows and all(TIMESTAMP.match(row["created_at"]) for row in rows), rows[0]["created_at"]
    assert all(TIMESTAMP.match(row["ingested_at"]) for row in jsonl + table)
    assert all(row["day"] == row["created_at"][:10] for row in jsonl)  # dates stay dates
    by_id = {row["id"]: row["created_at"] for row in jsonl}
    assert by_id["f1-d"] == "2024-01-12T09:30:00.123456Z" and by_id["f1-a"] == "2024-01-10T09:00:00.000000Z"
    assert {row["id"]: row["created_at"] for row in table} == by_id
    for export_format in ("csv", "jsonl"):
        done = run("export", "--lake", lake_root, "--format", export_format, "--out",
                   str(tmp_path / f"e_{export_format}.{export_format}"))
        assert done.returncode == 0, done.stderr
    exported_csv = list(csv.DictReader(io.StringIO((tmp_path / "e_csv.csv").read_text(), newline="")))
    exported_jsonl = [json.loads(line) for line in (tmp_path / "e_jsonl.jsonl").read_text().splitlines()]
    assert {row["id"]: row["created_at"] for row in exported_csv} == by_id
    assert {row["id"]: row["created_at"] for row in exported_jsonl} == by_id


def test_xlsx_created_at_cells_are_excel_dates(lake_root, tmp_path):
    done = run("export", "--lake", lake_root, "--format", "xlsx", "--out", str(tmp_path / "e.xlsx"), "--scope",
               "FeatureFlag")
    assert done.returncode == 0, done.stderr
    package = zipfile.ZipFile(tmp_path / "e.xlsx")
    sheet = package.read("xl/worksheets/sheet1.xml").decode()
    styles = package.read("xl/styles.xml").decode()
    header = re.findall(r'<c r="([A-Z]+)1" t="inlineStr"><is><t>([^<]+)</t>', sheet)
    column = dict((name, letter) for letter, name in header)["created_at"]
    cell = re.search(rf'<c r="{column}2"( [^>]*)?><v>([^<]+)</v></c>', sheet)
    assert cell and 't="' not in (cell.group(1) or "") and 's="1"' in cell.group(1)  # a number, styled
    serial = float(cell.group(2))
    assert serial == pytest.approx((datetime(2024, 1, 10, 9) - datetime(1899, 12, 30)).total_seconds() / 86400)
    style = re.findall(r"<xf [^>]*/>", styles.split("<cellXfs")[1])[1]
    assert 'numFmtId="164"' in style and 'applyNumberFormat="1"' in style
    assert re.search(r'<numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss[^"]*"/>', styles)
    read = pl.read_excel(tmp_path / "e.xlsx")
    assert read["created_at"].dtype == pl.Datetime("ms")
    lake = Lake.at(lake_root).scan(ACTIVITY_LOG).filter(pl.col("scope") == "FeatureFlag").sort("created_at", "id")
    expected = lake.select(pl.col("created_at").dt.replace_time_zone(None).dt.truncate("1ms")).collect()["created_at"]
    assert read["created_at"].cast(pl.Datetime("us")).to_list() == expected.to_list()
    # CSV of the same rows is unchanged apart from the timestamp text
    run("export", "--lake", lake_root, "--format", "csv", "--out", str(tmp_path / "c.csv"), "--scope", "FeatureFlag")
    as_csv = pl.read_csv(tmp_path / "c.csv", infer_schema_length=0)
    assert as_csv["created_at"].to_list()[0] == "2024-01-10T09:00:00.000000Z"


def test_default_export_names_are_readable(lake_root, tmp_path):
    moment = datetime(2026, 12, 2, 10, 15, tzinfo=timezone.utc)
    assert default_name(ActivityFilter(), moment) == "activity_log_all_20261202T101500Z"
    assert default_name(ActivityFilter(start="2026-10-01"), moment) == "activity_log_from_2026-10-01_20261202T101500Z"
    assert default_name(ActivityFilter(end="2026-12-31"), moment) == "activity_log_until_2026-12-31_20261202T101500Z"
    assert default_name(ActivityFilter(start="2026-10-01", end="2026-12-31T12:00:00Z"), moment) == \
        "activity_log_2026-10-01_2026-12-31_20261202T101500Z"
    done = run("export", "--lake", lake_root, "--format", "csv", "--out", f"{tmp_path}/out/")
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(names) == 2 and all(re.fullmatch(r"activity_log_all_\d{8}T\d{6}Z\.(csv|manifest\.json)", n) for n in names)


# ------------------------------------------------------------------------------------------------
# the read API: rows carry the summary


@pytest.mark.slow
def test_api_rows_carry_the_summary(key_lake, tmp_path):
    token = create_key(Lake.at(key_lake), "org-1", [1])[0]
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    env = child_env({"ACTIVITYLOG_LAKE": key_lake, "ACTIVITYLOG_CONFIG": os.devnull, "DAGSTER_HOME": str(home)})
    server = start_server("activitylog-serve", [script("activitylog"), "serve", "--host", LOOPBACK, "--port", str(port)],
                          url=f"http://{LOOPBACK}:{port}/openapi.json", env=env, timeout=60)
    try:
        summaries = dict(Lake.at(key_lake).scan(ACTIVITY_LOG).select("id", "summary").collect().iter_rows())
        for path in ("/api/projects/1/activity_log/", "/api/projects/1/advanced_activity_logs/"):
            response = httpx.get(f"http://{LOOPBACK}:{port}{path}", headers={"Authorization": f"Bearer {token}"},
                                 timeout=30)
            assert response.status_code == 200, response.text
            rows = response.json()["results"]
            assert rows and all(row["summary"] == summaries[row["id"]] for row in rows)
            assert all(row["summary"] for row in rows)
    finally:
        server.stop()
