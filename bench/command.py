"""Suite ``ingest``'s whole-command measurements: ``activitylog ingest`` as a user runs it (a fresh
process, a fresh lake and DAGSTER_HOME; ingest, verifiable log, refresh of every changed day, checks),
then the same command after one new 10,000-event file lands on that lake (incremental). Where the time
goes comes from Dagster's own records of the command's runs: each run, its steps, and what is neither
(process start, run creation, event-log writes between steps)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.harness import check, measurement
from bench.profiler import Profiler

COMMAND = "activitylog ingest"
INCREMENTAL_EVENTS = 10_000


def _environment(spec: dict[str, Any]) -> dict[str, str]:
    work = Path(spec["work"])
    config = work / "command.yaml"  # the embedded defaults, not a developer's configuration
    config.write_text("")
    return {**os.environ, "ACTIVITYLOG_LAKE": str(work / "lake"), "ACTIVITYLOG_LANDING": str(work / "landing"),
            "DAGSTER_HOME": str(work / "home"), "ACTIVITYLOG_CONFIG": str(config),
            "ACTIVITYLOG_START_DATE": "2020-01-01", "ACTIVITYLOG_STATE_DIR": str(work / "state")}


def prepare(spec: dict[str, Any]) -> None:
    """A fresh lake and DAGSTER_HOME, and a landing of the bench files (links) for the first command."""
    work = Path(spec["work"])
    for name in ("lake", "home", "state", "landing"):
        shutil.rmtree(work / name, ignore_errors=True)
    (work / "landing").mkdir(parents=True)
    for path in spec["files"]:
        try:
            os.link(path, work / "landing" / Path(path).name)
        except OSError:
            shutil.copyfile(path, work / "landing" / Path(path).name)


def add_new_file(spec: dict[str, Any]) -> None:
    """One new landing file of :data:`INCREMENTAL_EVENTS` events on the lake's newest day."""
    from pipelines.demo import write_bench_landing
    from transforms.lake import ACTIVITY_RAW, Lake

    work = Path(spec["work"])
    newest = Lake.at(work / "lake").days(ACTIVITY_RAW)[-1]
    staging = work / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    write_bench_landing(staging, events=INCREMENTAL_EVENTS, days=1, files=1, end_day=newest, seed=2)
    (staging / "bench-0000.jsonl").rename(work / "landing" / "new-10000.jsonl")
    shutil.rmtree(staging)


def run_stages(home: Path, profiler: Profiler, root: tuple[str, ...], since: float) -> list[dict[str, Any]]:
    """Record each Dagster run the command started (after ``since``) and its steps under ``root``."""
    import dagster as dg

    runs = []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = sorted((r for r in instance.get_run_records() if (r.start_time or 0) >= since),
                         key=lambda r: r.start_time or 0)
        for record in records:
            run = record.dagster_run
            seconds = (record.end_time or 0) - (record.start_time or 0)
            path = (*root, f"run {run.job_name}")
            profiler.record(path, seconds)
            steps = instance.get_run_step_stats(run.run_id)
            for step in sorted(steps, key=lambda s: s.start_time or 0):
                profiler.record((*path, f"step {step.step_key}"), (step.end_time or 0) - (step.start_time or 0))
            runs.append({"job": run.job_name, "seconds": round(seconds, 3), "status": run.status.value,
                         "steps": {s.step_key: round((s.end_time or 0) - (s.start_time or 0), 3) for s in steps}})
    return runs


def _run_command(spec: dict[str, Any], profiler: Profiler, label: str) -> tuple[float, list[dict[str, Any]]]:
    import time

    env = _environment(spec)
    started = time.time()
    with profiler.timed(), profiler.stage(label):
        done = subprocess.run([sys.executable, "-m", "pipelines.cli", "ingest", "--quiet"], env=env,
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{COMMAND} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    return started, run_stages(Path(env["DAGSTER_HOME"]), profiler, (label,), started)


def _lake_rows(spec: dict[str, Any]) -> tuple[int, int]:
    """Rows of activity_log and leaves of the log in the command's lake."""
    import polars as pl

    from transforms.lake import ACTIVITY_LOG, Lake
    from transforms.merkle import DeltaTree

    lake = Lake.at(_environment(spec)["ACTIVITYLOG_LAKE"])
    return lake.scan(ACTIVITY_LOG).select(pl.len()).collect().item(), DeltaTree(lake).size


@measurement("command")
def measure_command(spec: dict[str, Any], profiler: Profiler) -> dict[str, Any]:
    """``activitylog ingest`` of the whole bench landing into a fresh lake and DAGSTER_HOME."""
    prepare(spec)
    _, runs = _run_command(spec, profiler, COMMAND)
    rows, leaves = _lake_rows(spec)
    return {"rows": rows, "runs": runs, "with_profile": True,
            "notes": f"{len(runs)} Dagster runs; every table, digest, leaf and checkpoint written",
            "checks": [check("activitylog ingest: every event in activity_log", rows, spec["events"]),
                       check("activitylog ingest: a leaf per event", leaves, spec["events"])]}


@measurement("command")
def measure_incremental(spec: dict[str, Any], profiler: Profiler) -> dict[str, Any]:
    """The same command after a new 10,000-event file lands on the lake the first command wrote."""
    add_new_file(spec)
    _, runs = _run_command(spec, profiler, f"{COMMAND}, one new file")
    rows, leaves = _lake_rows(spec)
    expected = spec["events"] + INCREMENTAL_EVENTS
    return {"rows": INCREMENTAL_EVENTS, "runs": runs, "with_profile": True, "reads_landing": False,
            "notes": f"{INCREMENTAL_EVENTS:,} new events on a {spec['events']:,}-event lake, queryable",
            "checks": [check("incremental: every event in activity_log", rows, expected),
                       check("incremental: a leaf per event", leaves, expected)]}
