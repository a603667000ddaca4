"""Parallel partitions: refreshing the days in several processes at once — bare, or as a Dagster
backfill of several runs at once — builds exactly the lake that one sequential refresh builds (every
derived table compared row by row, and the integrity digests)."""

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from pipelines.demo import write_bench_landing
from transforms.ingest import ingest
from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_EVENTS, ACTIVITY_LOG, ACTIVITY_RAW, Lake
from transforms.validate import ValidationSettings

REFRESH = (
    "import json, sys; from datetime import date; from transforms.lake import Lake; "
    "from transforms.refresh import refresh_all; "
    "refresh_all(Lake.at(sys.argv[1]), [date.fromisoformat(d) for d in json.loads(sys.argv[2])])"
)
TABLES = {ACTIVITY_EVENTS: ["id"], ACTIVITY_CHANGES: ["id", "change_index"], ACTIVITY_LOG: ["id"],
          "activity_item_history": ["id"]}


def refresh(lake: Lake, days: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", REFRESH, lake.root, json.dumps(days)], stderr=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[1])


@pytest.mark.slow
def test_parallel_refresh_builds_the_same_lake_as_a_sequential_one(tmp_path):
    write_bench_landing(tmp_path / "landing", events=20_000, days=16, files=2, seed=3)
    sequential, parallel = Lake.at(tmp_path / "sequential"), Lake.at(tmp_path / "parallel")
    for lake in (sequential, parallel):
        ingest(lake, str(tmp_path / "landing"), ValidationSettings(start_date=date(2020, 1, 1)))
    raw = [lake.scan(ACTIVITY_RAW).select("id", "payload").collect().sort("id") for lake in (sequential, parallel)]
    assert raw[0].equals(raw[1])
    days = [d.isoformat() for d in sequential.days(ACTIVITY_RAW)]
    one = refresh(sequential, days)
    assert one.wait() == 0, one.stderr.read()
    workers = [refresh(parallel, days[i::4]) for i in range(4)]  # four processes, interleaved days
    for worker in workers:
        assert worker.wait() == 0, worker.stderr.read()
    assert_same_lakes(sequential, parallel)


def assert_same_lakes(sequential: Lake, parallel: Lake) -> None:
    for table, keys in TABLES.items():
        a = sequential.scan(table).collect().sort(keys)
        b = parallel.scan(table).collect().sort(keys)
        drop = [c for c in ("ingested_at",) if c in a.columns]  # the two lakes were ingested at different times
        assert a.height == b.height > 0, table
        assert a.drop(drop).equals(b.drop(drop)), table
    from transforms.integrity import digests, update_digests

    hashes = []
    for lake in (sequential, parallel):
        update_digests(lake, lake.days(ACTIVITY_RAW))
        hashes.append(digests(lake).sort("day").select("day", "day_hash", "events", "digest"))
    assert hashes[0].equals(hashes[1])


def backfill(lake: Lake, home: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ACTIVITYLOG_LAKE": lake.root, "DAGSTER_HOME": str(home)}
    return subprocess.run([str(Path(sys.executable).parent / "activitylog"), "backfill", *flags], env=env,
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=600)


def dagster_home(path: Path, monkeypatch) -> Path:
    """A DAGSTER_HOME for a backfill: on a new PostgreSQL database (deploy/dagster.yaml) in the
    PostgreSQL pass, its DAGSTER_PG_* variables set until the test ends."""
    from tests.helpers import postgres

    if postgres.URL:
        postgres.use_for_dagster_home(path, postgres.create_database(), setenv=monkeypatch.setenv)
    return path


@pytest.mark.slow
def test_backfill_runs_ranges_at_once_and_builds_the_sequential_lake(tmp_path, monkeypatch):
    import dagster as dg

    write_bench_landing(tmp_path / "landing", events=8_000, days=12, files=2, seed=5)
    sequential, parallel = Lake.at(tmp_path / "sequential"), Lake.at(tmp_path / "parallel")
    for lake in (sequential, parallel):
        ingest(lake, str(tmp_path / "landing"), ValidationSettings(start_date=date(2020, 1, 1)))
    days = [d.isoformat() for d in parallel.days(ACTIVITY_RAW)]

    one = backfill(sequential, dagster_home(tmp_path / "home-sequential", monkeypatch), "--workers", "1", "--days-per-run", "3")
    assert one.returncode == 0, one.stdout + one.stderr
    home = dagster_home(tmp_path / "home-parallel", monkeypatch)
    many = backfill(parallel, home, "--workers", "3", "--days-per-run", "3")
    assert many.returncode == 0, many.stdout + many.stderr
    assert "Backfill: 4 of 4 runs succeeded" in many.stdout, many.stdout
    assert_same_lakes(sequential, parallel)

    # Dagster recorded one run per range, every day materialized, and the runs overlapped in time.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name="refresh_job"))
        assert len(records) == 4 and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
        assert sorted(instance.get_materialized_partitions(dg.AssetKey("activity_log"))) == days
        spans = sorted((r.start_time, r.end_time) for r in records)
        assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), spans

    # bad flags are refused before anything runs
    refused = backfill(parallel, home, "--start", "2024-02-30")
    assert refused.returncode == 2 and "--start '2024-02-30' is not a date" in refused.stderr


@pytest.mark.slow
@pytest.mark.local_lake
def test_a_failed_range_is_reported_and_the_others_still_refresh(tmp_path, monkeypatch):
    write_bench_landing(tmp_path / "landing", events=3_000, days=9, files=1, seed=7)
    lake = Lake.at(tmp_path / "lake")
    ingest(lake, str(tmp_path / "landing"), ValidationSettings(start_date=date(2020, 1, 1)))
    days = lake.days(ACTIVITY_RAW)
    for data_file in (tmp_path / "lake" / ACTIVITY_RAW / f"day={days[4].isoformat()}").glob("*.parquet"):
        data_file.unlink()  # the middle range cannot be read

    result = backfill(lake, dagster_home(tmp_path / "home", monkeypatch), "--workers", "2", "--days-per-run", "3")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Backfill: 2 of 3 runs succeeded" in result.stdout
    assert f"failed: {days[3]} … {days[5]}:" in result.stderr
    assert "run the command again for those days" in result.stderr
    assert f"{days[4]} (events" in result.stderr  # the day that failed is named
    refreshed = set(lake.scan(ACTIVITY_LOG).select("day").unique().collect()["day"])
    # The other ranges were refreshed all the same, and so were the failed range's other days.
    assert refreshed == set(days) - {days[4]}


FIRST_RUN = """
import sys
import dagster as dg
from pipelines.runner import instance

@dg.op
def one():
    return 1

@dg.job
def first_run():
    one()

print("run", first_run.execute_in_process(instance=instance()).success)
"""


@pytest.mark.slow
def test_processes_opening_a_fresh_dagster_home_at_once_all_run(tmp_path):
    """The first exports of a new server, or a command beside the daemon, open a DAGSTER_HOME that does
    not exist yet at the same moment: each must run (without the home's lock, one in two failed on a
    duplicate schema version and could leave the storage with two heads)."""
    home = tmp_path / "home"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    processes = [subprocess.Popen([sys.executable, "-c", FIRST_RUN], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
                 for _ in range(4)]
    outcomes = [process.communicate(timeout=300) for process in processes]
    assert [out.strip().splitlines()[-1:] for out, _ in outcomes] == [["run True"]] * 4, \
        [err[-800:] for _, err in outcomes]
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as opened:
        assert opened.get_runs_count() == 4
