"""Erasure, proven on the files on disk: after erase-user and the vacuum, no Parquet file (decoded) and
no Delta log entry in the lake holds the user's email, names or IP; their events remain; verify passes.
Users named by uuid or unknown, the request's reason kept out of DAGSTER_HOME, a request left by an
interrupted run finished first."""

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from tests.helpers.events import make_event, write_lines
from pipelines.cli import main
from transforms.integrity import verify
from transforms.lake import ACTIVITY_LOG, Lake


EMAIL, FIRST, LAST, IP, UUID = "zoe.erasable@example.org", "Zoëtrope", "Quixotic-Lastname", "198.51.100.77", "uuid-zoe"
OTHER_EMAIL = "keep.me@example.org"


def zoe(day: int, **overrides):
    return make_event(created_at=f"2024-01-{day:02d}T10:00:00Z", ip_address=IP, user={
        "id": 77, "uuid": UUID, "email": EMAIL, "first_name": FIRST, "last_name": LAST}, **overrides)


@pytest.fixture
def erasable(tmp_path, monkeypatch):
    """A lake built by the real pipeline (Dagster runs), with the user's events, a membership change
    naming their email, a quarantined line mentioning them, and reference data listing them."""
    from pipelines.runner import run_ingest
    from transforms.settings import Settings
    from transforms.validate import ValidationSettings

    landing = tmp_path / "landing"
    events = [zoe(10), zoe(11, scope="Insight"), make_event(created_at="2024-01-11T11:00:00Z", scope="OrganizationMembership",
              user={"uuid": "uuid-admin", "email": OTHER_EMAIL, "first_name": "Ada"}, detail={
                  "name": EMAIL, "changes": [{"field": "level", "before": f"member {EMAIL}", "after": "admin"}]}),
              make_event(created_at="2024-01-12T10:00:00Z", user={"uuid": "uuid-other", "email": OTHER_EMAIL,
                                                                  "first_name": "Keep"})]
    write_lines(landing / "a.jsonl", events + [f'{{"id": "", "note": "{EMAIL}"}}'])
    lake_dir = tmp_path / "lake"
    (lake_dir / "reference").mkdir(parents=True)
    (lake_dir / "reference" / "users.csv").write_text(
        f"uuid,email,first_name,last_name,role\n{UUID},{EMAIL},{FIRST},{LAST},admin\nuuid-other,{OTHER_EMAIL},Keep,Me,member\n")
    config = tmp_path / "activitylog.yaml"
    config.write_text("retention:\n  vacuum_grace: 0d\n")
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(config))
    monkeypatch.setenv("ACTIVITYLOG_LAKE", str(lake_dir))
    monkeypatch.setenv("ACTIVITYLOG_LANDING", str(landing))
    settings = Settings(lake=str(lake_dir), landing=str(landing), validation=ValidationSettings(start_date=date(2020, 1, 1)))
    run_ingest(settings, log_level="WARNING")
    return Lake.at(lake_dir), settings


def decoded_lake_text(root: Path) -> str:
    """Every value of every Parquet file under the lake (decoded), every Delta log entry, every other file."""
    parts = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            flat = [n for n, t in frame.schema.items() if not t.is_nested() and t != pl.Binary]
            parts.append(frame.select(pl.col(flat).cast(pl.String, strict=False)).write_csv())
            for name in [n for n, t in frame.schema.items() if t == pl.Binary]:  # salts, hashes, raw bytes
                parts.append("\n".join(v.decode("utf-8", "replace") for v in frame[name] if v is not None))
            for name, dtype in frame.schema.items():
                if dtype.is_nested():
                    parts.append(json.dumps(frame[name].to_list(), default=str, ensure_ascii=False))
        else:
            parts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)


@pytest.mark.slow
def test_erase_user_leaves_no_personal_data_in_any_file(erasable, capsys):
    lake, _ = erasable
    root = Path(lake.root)
    before = decoded_lake_text(root)
    assert all(value in before for value in (EMAIL, FIRST, LAST, IP))  # the test can see them at all
    events_before = lake.scan(ACTIVITY_LOG).select(pl.len()).collect().item()

    assert main(["erase-user", EMAIL, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Erased the personal data of 2 events on 2 day(s); they now belong to erased-" in out
    assert main(["retention", "--quiet"]) == 0  # no policy: vacuum only (grace 0d)
    capsys.readouterr()

    after = decoded_lake_text(root)
    for value in (EMAIL, FIRST, LAST, IP, UUID):
        assert value.lower() not in after.lower(), value
    assert OTHER_EMAIL in after  # others are untouched
    log = lake.scan(ACTIVITY_LOG).collect()
    assert log.height == events_before + 1  # every event stays; one more: the erasure's own record
    pseudonymous = log.filter(pl.col("actor_uuid").str.starts_with("erased-"))
    assert pseudonymous.height == 2 and pseudonymous["actor_uuid"].n_unique() == 1
    assert set(pseudonymous["actor_name"]) == {"Erased user"} and pseudonymous["ip_address"].is_null().all()
    membership = json.loads(log.filter(pl.col("scope") == "OrganizationMembership")["detail"].item())
    assert membership["name"].endswith("@erased.invalid")
    record = log.filter(pl.col("activity") == "user_erased")
    assert record["scope"].item() == "ActivityLog" and json.loads(record["detail"].item())["events"] == 2
    assert verify(lake).ok  # the chain still verifies, with a new version of each rewritten day


@pytest.mark.slow
def test_erase_user_by_uuid_and_unknown_users(erasable, capsys):
    assert main(["erase-user", "nobody@example.org"]) == 2
    assert "no events of 'nobody@example.org'" in capsys.readouterr().err
    assert main(["erase-user", UUID, "--quiet"]) == 0
    lake, _ = erasable
    assert lake.scan(ACTIVITY_LOG).filter(pl.col("actor_email") == EMAIL).collect().height == 0


@pytest.mark.slow
def test_erasure_records_reason_and_keeps_the_user_out_of_dagster_home(erasable, capsys):
    import os
    import sqlite3

    lake, _ = erasable
    assert main(["erase-user", EMAIL, "--quiet", "--reason", "GDPR request #123",
                 "--requested-by", "dpo@company.example"]) == 0
    capsys.readouterr()
    log = lake.scan(ACTIVITY_LOG).collect()
    detail = json.loads(log.filter(pl.col("activity") == "user_erased")["detail"].item())
    assert (detail["reason"], detail["requested_by"]) == ("GDPR request #123", "dpo@company.example")
    assert len(detail["request_id"]) == 32 and EMAIL not in json.dumps(detail)
    # The request file is gone once its run is done, and no file of DAGSTER_HOME names the user.
    assert not list((Path(lake.root) / "_system" / "erasure_requests").glob("*.json"))
    from dagster import DagsterInstance

    home = Path(os.environ["DAGSTER_HOME"])
    texts = []
    for path in home.rglob("*"):
        if path.is_file() and path.suffix == ".db":
            with sqlite3.connect(path) as db:
                for (table,) in db.execute("select name from sqlite_master where type='table'"):
                    texts += [repr(row) for row in db.execute(f'select * from "{table}"')]
        elif path.is_file():
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    # Whatever the instance's storage (SQLite files or PostgreSQL), its runs and event logs as Dagster reads them.
    instance = DagsterInstance.get()
    runs = instance.get_runs()
    assert runs
    for run in runs:
        texts.append(json.dumps(run.run_config, default=str) + repr(run.tags))
        texts += [repr(record) for record in instance.all_logs(run.run_id)]
    assert any(detail["request_id"] in text for text in texts)  # the run's config names the request
    assert not any(EMAIL.lower() in text.lower() for text in texts)


@pytest.mark.slow
def test_a_request_left_by_an_interrupted_run_is_finished_first(erasable, capsys):
    from transforms.erasure_requests import pending_requests, write_request

    lake, _ = erasable
    left = write_request(lake, EMAIL, reason="interrupted")  # as if its run had been killed
    assert pending_requests(lake) == [left]
    assert main(["erase-user", "uuid-other", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"Finishing the erasure request {left} of an interrupted run first" in out
    assert pending_requests(lake) == []
    assert lake.scan(ACTIVITY_LOG).filter(pl.col("actor_email") == EMAIL).collect().height == 0
