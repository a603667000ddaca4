"""Exports read back and compared with the lake; formula injection; the sheet split; manifests."""

import csv
import io
import json
import re
import zipfile
from datetime import datetime, timezone

import dagster as dg
import polars as pl
import pytest

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from destinations.exports import XLSX_MAX_DATA_ROWS, XlsxWriter, run_export, verify_manifest
from pipelines.cli import main
from transforms.export import EXPORT_COLUMNS, FORMULA_START, neutralise_formulas
from transforms.filters import ActivityFilter
from transforms.lake import ACTIVITY_LOG, ACTIVITY_RAW

NASTY = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tTab", "\rCR", "\nLF",
         # full-width signs, and formula starts behind spaces and invisible characters
         "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20SUM(A1)", "\u00a0=1+1", "\u200b=1+1", "\ufeff=1+1", " =1+1",
         "\u2060\u00a0@x"]
# Text a spreadsheet reads as text: left as it is.
HARMLESS = ["a-b", "e-mail", "x=1", "a;b"]
# A ';' locale splits at ';': a formula behind one gets its own prefix.
SPLIT = {"x;=1+1": "x;'=1+1", "=a;@b": "'=a;'@b", "x;\u00a0+1": "x;'\u00a0+1"}


@pytest.fixture
def export_lake(lake, landing):
    events = [make_event(created_at=f"2024-01-{d:02d}T{h:02d}:00:00Z", item_id=f"{d}-{h}")
              for d in (10, 11, 12) for h in (9, 10)]
    events += [make_event(created_at="2024-01-12T11:00:00Z", user={"uuid": f"u{i}", "first_name": text, "email": "x@y.z"},
                          item_id=f"nasty-{i}") for i, text in enumerate(NASTY + HARMLESS + list(SPLIT))]
    events += [make_event(created_at="2024-01-12T12:00:00Z", item_id="quote, comma", detail={
        "name": 'say "hi"\r\nbye', "changes": [{"field": "big", "before": None, "after": "ü" * 40_000}]})]
    build_lake(lake, landing, events, name="a.jsonl")
    return lake


def source_rows(lake) -> pl.DataFrame:
    return lake.scan(ACTIVITY_LOG).sort("created_at", "id").collect()


def test_csv_is_rfc4180_and_matches_the_lake(export_lake, tmp_path):
    result = run_export(export_lake, ActivityFilter(), "csv", str(tmp_path / "out.csv"))
    data = (tmp_path / "out.csv").read_bytes()
    assert data.count(b"\r\n") >= 15 and b"\r\n" in data.split(b"\n")[0] + b"\n"  # CRLF line ends
    csv.field_size_limit(2**31 - 1)  # the detail cell of the 40,000-character value is longer than csv's default
    rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    source = source_rows(export_lake)
    assert [r["id"] for r in rows] == source["id"].to_list()  # created_at, id order
    assert list(rows[0]) == EXPORT_COLUMNS and result.manifest["rows"] == len(rows) == source.height
    quoted = next(r for r in rows if r["item_id"] == "quote, comma")
    assert json.loads(quoted["detail"])["name"] == 'say "hi"\r\nbye'  # quotes and line breaks survive
    first = rows[0]
    assert first["created_at"] == "2024-01-10T09:00:00.000000Z" and first["project_id"] == "1"
    assert first["summary"] == source["summary"][0] and first["is_system"] == "false"


def test_formulas_are_neutralised_in_csv_and_xlsx(export_lake, tmp_path):
    every = ActivityFilter(item_ids=[f"nasty-{i}" for i in range(len(NASTY + HARMLESS) + len(SPLIT))])
    run_export(export_lake, every, "csv", str(tmp_path / "n.csv"))
    text = (tmp_path / "n.csv").read_bytes().decode()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert sorted(r["user_first_name"] for r in rows) == sorted(["'" + t for t in NASTY] + HARMLESS
                                                                + list(SPLIT.values()))
    assert '"a;b"' in text and ',,' in text  # text quoted; missing values are empty fields
    # In a ';' locale the whole line splits at ';' outside quotes only: no field starts a formula.
    for line in csv.reader(io.StringIO(text, newline=""), delimiter=";"):
        assert not any(re.match(FORMULA_START, field) for field in line[1:]), line
    run_export(export_lake, every, "xlsx", str(tmp_path / "n_xlsx.xlsx"))
    sheet = pl.read_excel(tmp_path / "n_xlsx.xlsx", infer_schema_length=0)
    assert sorted(sheet["user_first_name"].to_list()) == sorted(NASTY + HARMLESS + list(SPLIT))  # the original text
    xml = zipfile.ZipFile(tmp_path / "n_xlsx.xlsx").read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in xml and "<f " not in xml  # no formula cells, every text is an inline string
    assert xml.count('t="inlineStr"') > 0 and "HYPERLINK" in xml


def test_xlsx_and_jsonl_read_back_equal_to_csv(export_lake, tmp_path):
    for fmt in ("csv", "xlsx", "jsonl"):
        run_export(export_lake, ActivityFilter(start="2024-01-11"), fmt, str(tmp_path / f"e_{fmt}.{fmt}"))
    as_csv = pl.read_csv(tmp_path / "e_csv.csv", infer_schema_length=0)
    as_xlsx = pl.read_excel(tmp_path / "e_xlsx.xlsx", infer_schema_length=0)
    as_jsonl = pl.read_ndjson(tmp_path / "e_jsonl.jsonl")
    assert as_xlsx.columns == as_csv.columns == as_jsonl.columns == EXPORT_COLUMNS
    long = "detail"  # XLSX cuts cells at 32,767 characters; compare the rest exactly
    # created_at is an Excel date-time in XLSX (text in CSV and JSONL): compared as a moment below
    # XLSX keeps the original text; CSV neutralises formula starts: equal once that rule is applied.
    assert neutralise_formulas(as_xlsx.drop(long, "created_at")).equals(as_csv.drop(long, "created_at"))
    assert not as_xlsx.drop(long, "created_at").equals(as_csv.drop(long, "created_at"))  # the rule did apply
    moments = pl.read_excel(tmp_path / "e_xlsx.xlsx")["created_at"]
    assert moments.dtype.is_temporal()
    assert moments.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_list() == as_csv["created_at"].to_list()
    assert as_jsonl["created_at"].to_list() == as_csv["created_at"].to_list()
    assert as_jsonl["id"].to_list() == as_csv["id"].to_list()
    big = as_jsonl.filter(pl.col("item_id") == "quote, comma")["detail"].item()
    assert json.loads(big)["changes"][0]["after"] == "ü" * 40_000  # JSONL keeps it whole
    cut = as_xlsx.filter(pl.col("item_id") == "quote, comma")["detail"].item()
    assert len(cut) == 32_767 and cut.endswith("…[truncated]")
    manifest = json.loads((tmp_path / "e_xlsx.manifest.json").read_text())
    assert manifest["files"][0]["cells_truncated"] == 1 and manifest["files"][0]["sheets"][0]["rows"] == as_csv.height


def test_manifest_describes_the_export_and_verification_detects_a_changed_byte(export_lake, tmp_path):
    activity_filter = ActivityFilter(start="2024-01-11", end="2024-01-11", scopes=["FeatureFlag"])
    result = run_export(export_lake, activity_filter, "csv", str(tmp_path / "audit") + "/", name="january")
    assert result.file == str(tmp_path / "audit" / "january.csv")
    manifest = json.loads((tmp_path / "audit" / "january.manifest.json").read_text())
    assert manifest["filter"] == {"start": "2024-01-11", "end": "2024-01-11", "scopes": ["FeatureFlag"]}
    assert manifest["time_bounds"] == {"start": "2024-01-11T00:00:00+00:00", "end": "2024-01-11T23:59:59.999999+00:00"}
    assert manifest["table_version"] == export_lake.version(ACTIVITY_LOG) and manifest["rows"] == 2
    assert manifest["days"] == [{"day": "2024-01-11", "rows": 2}] and manifest["columns"] == EXPORT_COLUMNS
    assert manifest["integrity"] is None  # this lake has no activity_digests yet
    assert verify_manifest(result.manifest_uri)[1] == []
    data = bytearray((tmp_path / "audit" / "january.csv").read_bytes())
    data[100] ^= 1
    (tmp_path / "audit" / "january.csv").write_bytes(bytes(data))
    problems = verify_manifest(result.manifest_uri)[1]
    assert len(problems) == 1 and "SHA-256" in problems[0]
    (tmp_path / "audit" / "january.csv").unlink()
    assert verify_manifest(result.manifest_uri)[1] == ["january.csv: missing"]


def test_an_empty_export_is_valid(export_lake, tmp_path):
    result = run_export(export_lake, ActivityFilter(scopes=["Nothing"]), "xlsx", str(tmp_path / "none.xlsx"))
    assert result.manifest["rows"] == 0
    assert pl.read_excel(tmp_path / "none.xlsx").columns == EXPORT_COLUMNS
    run_export(export_lake, ActivityFilter(scopes=["Nothing"]), "csv", str(tmp_path / "none_csv.csv"))
    assert (tmp_path / "none_csv.csv").read_bytes().decode() == ",".join(EXPORT_COLUMNS) + "\r\n"


@pytest.mark.slow
def test_xlsx_continues_on_a_second_sheet_beyond_1048575_rows(tmp_path):
    rows = XLSX_MAX_DATA_ROWS + 5
    writer = XlsxWriter(tmp_path / "big.xlsx")
    for start in range(0, rows, 250_000):
        n = min(250_000, rows - start)
        writer.write(pl.DataFrame({"n": pl.int_range(start, start + n, eager=True), "text": ["=x"] * n}))
    extra = writer.close(["n", "text"])
    assert extra["sheets"] == [{"name": "activity_log", "rows": XLSX_MAX_DATA_ROWS},
                               {"name": "activity_log (2)", "rows": 5}]
    second = pl.read_excel(tmp_path / "big.xlsx", sheet_name="activity_log (2)")
    assert second["n"].to_list() == list(range(XLSX_MAX_DATA_ROWS, rows)) and second["text"][0] == "=x"
    first = pl.read_excel(tmp_path / "big.xlsx", sheet_name="activity_log", columns=["n"])
    assert first.height == XLSX_MAX_DATA_ROWS and first["n"][-1] == XLSX_MAX_DATA_ROWS - 1


def test_export_job_and_the_configured_schedule(export_lake, tmp_path, monkeypatch, instance):
    from pipelines.definitions import build_definitions
    from transforms.settings import Settings

    config = tmp_path / "activitylog.yaml"
    config.write_text('exports:\n  - {name: weekly-membership, schedule: "0 2 * * 1", format: xlsx, window: 7d,\n'
                      '     filter: {scopes: [FeatureFlag]}, destination: audit}\n')
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(config))
    defs = build_definitions(Settings.from_env(lake=export_lake.root))
    schedule = defs.resolve_schedule_def("export_weekly_membership")
    assert schedule.cron_schedule == "0 2 * * 1" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.build_schedule_context(scheduled_execution_time=datetime(2024, 1, 15, 2, tzinfo=timezone.utc)) as context:
        request = schedule.evaluate_tick(context).run_requests[0]
    settings = request.run_config["ops"]["export"]["config"]
    assert settings["filter"] == {"start": "2024-01-08T02:00:00+00:00", "end": "2024-01-15T01:59:59.999999+00:00",
                                  "scopes": ["FeatureFlag"]}
    assert settings["out"] == str(tmp_path / "audit") + "/" and settings["name"] == "weekly-membership_20240115T020000Z"
    result = defs.resolve_job_def("export_job").execute_in_process(run_config=request.run_config, instance=instance)
    output = result.output_for_node("export")
    assert output["rows"] == 6 + len(NASTY + HARMLESS) + len(SPLIT) + 1 and output["file"] == str(tmp_path / "audit" / "weekly-membership_20240115T020000Z.xlsx")
    assert verify_manifest(output["manifest"])[1] == []


@pytest.mark.parametrize("entry, message", [
    ('{name: w, schedule: "0 2 * *", format: csv, window: 7d, destination: out}', "is not a cron expression"),
    ('{name: w, schedule: "0 2 * * 1", format: pdf, window: 7d, destination: out}', "exports[0].format"),
    ('{name: "w x", schedule: "0 2 * * 1", format: csv, window: 7d, destination: out}', "exports[0].name"),
    ('{name: w, schedule: "0 2 * * 1", format: csv, window: 7d, destination: out, filter: {scope: [1.5]}}',
     "exports[0].filter: scopes[0]: must be text"),
    ('{name: w, schedule: "0 2 * * 1", format: csv, destination: out}', "exports[0].window: is required"),
])
def test_export_configuration_errors(tmp_path, entry, message):
    from pipelines.config import ConfigError, load_config

    path = tmp_path / "activitylog.yaml"
    path.write_text(f"exports:\n  - {entry}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)


def test_cli_export_and_verify(export_lake, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACTIVITYLOG_LAKE", export_lake.root)
    assert main(["export", "--format", "csv", "--out", str(tmp_path / "x.csv"), "--scope", "FeatureFlag",
                 "--start", "2024-01-12"]) == 0
    out = capsys.readouterr().out
    rows = 2 + len(NASTY + HARMLESS) + len(SPLIT) + 1  # the 12th: two plain events, the nasty ones, one quoted
    assert f"Exported {rows} rows" in out and "x.manifest.json" in out
    assert main(["verify-export", str(tmp_path / "x.manifest.json")]) == 0
    assert f"OK: 1 file(s) match the manifest ({rows} rows" in capsys.readouterr().out
    (tmp_path / "x.csv").write_text("tampered")
    assert main(["verify-export", str(tmp_path / "x.manifest.json")]) == 1
    assert "MISMATCH x.csv" in capsys.readouterr().out
    assert main(["verify-export", str(tmp_path / "none.json")]) == 2
    assert main(["export", "--format", "csv", "--out", str(tmp_path / "x.csv")]) == 1  # never overwritten
    assert "x.csv already exists" in capsys.readouterr().err
    assert main(["export", "--format", "csv", "--out", str(tmp_path / "y.csv"), "--start", "soon"]) == 2


def test_manifest_carries_the_integrity_digest_of_each_day(export_lake, tmp_path):
    from transforms.integrity import digests, update_digests

    update_digests(export_lake, export_lake.days(ACTIVITY_RAW))
    result = run_export(export_lake, ActivityFilter(start="2024-01-11"), "jsonl", str(tmp_path / "d.jsonl"))
    integrity = result.manifest["integrity"]
    stored = {r["day"].isoformat(): r["digest"] for r in digests(export_lake).iter_rows(named=True)}
    assert set(integrity["days"]) == {"2024-01-11", "2024-01-12"}
    assert all(integrity["days"][d]["digest"] == stored[d] for d in integrity["days"])


@pytest.mark.parametrize("name", ["../../x", "sub/x", "..", "a\\b", " "])
def test_a_name_never_leaves_out(export_lake, tmp_path, name):
    from destinations.exports import ExportError

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ExportError, match="must be a plain file name"):
        run_export(export_lake, ActivityFilter(), "csv", f"{out}/", name=name)
    assert list(out.iterdir()) == [] and not (tmp_path.parent / "x.csv").exists()


def test_a_dangling_symlink_at_the_target_is_not_written_through(export_lake, tmp_path):
    from destinations.exports import ExportError

    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "elsewhere.csv"
    (out / "e.csv").symlink_to(victim)  # points at a file that does not exist yet
    with pytest.raises(ExportError, match="already exists"):
        run_export(export_lake, ActivityFilter(), "csv", f"{out}/", name="e")
    assert not victim.exists()
