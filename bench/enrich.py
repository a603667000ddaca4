"""Suite ``enrich`` of ``make bench``: normalize + enrich (``transforms.refresh.refresh_all``:
activity_events, activity_changes, activity_log, activity_item_history) over every day of the bench lake,
beside reading activity_raw and writing the same rows back with no transformation; and over one day of
:data:`DAY_EVENTS` events. Each measurement runs in a fresh process; its rows join the common table.

Also here, for the suites that run on an enriched lake (query, notify, export, retention, api):
:func:`enriched_lake` builds one (ingest + normalize + enrich, not timed) unless an earlier suite of the
same run did, and :func:`day_landing` writes the one-day landing.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench.harness import (
    GIB, REFERENCE_TABLES, Bench, Outcome, bench_ingest, bench_references, check, landing_files, measurement,
    run_child, say, say_failed_checks,
)

DAY_EVENTS = 100_000


def day_landing(bench: Bench, *, announce: bool = True, ready: bool = False) -> Path:
    """The landing of one day of :data:`DAY_EVENTS` events beside the bench landing: written now unless
    ``--keep`` finds it, or the caller's lake built from it is ``ready``."""
    from pipelines.demo import write_bench_landing

    path = bench.args.dir / f"landing-day-{DAY_EVENTS}"
    if not ready and not (bench.args.keep and path.is_dir() and landing_files(path)):
        shutil.rmtree(path, ignore_errors=True)
        if announce:
            say(f"landing: writing one day of {DAY_EVENTS:,} events (not timed)")
        write_bench_landing(path, events=DAY_EVENTS, days=1, files=2, seed=1)
    return path


def enriched_lake(lake: Path, landing: Path, work: Path, ready: bool, name: str) -> dict[str, Any] | None:
    """Ingest + normalize + enrich ``landing`` into ``lake`` (not timed) unless an earlier suite built it
    (``ready``). Returns the failed child's result, or None."""
    if ready and (lake / "activity_item_history").is_dir():
        return None
    say(f"- preparing the lake for {name}: ingest + normalize + enrich (not timed)")
    shutil.rmtree(lake, ignore_errors=True)
    prepared = run_child(prepare_enriched_lake, {"name": f"prepare_{name}", "lake": str(lake),
                                                 "landing": str(landing), "reference": str(work / "reference")}, work)
    return prepared if "error" in prepared else None


def run(bench: Bench) -> Outcome:
    """Normalize + enrich over every day of the bench lake and over one 100k-event day, beside the
    read-and-write-back baseline: rows of the common table."""
    from pipelines.demo import write_reference_data

    work = bench.work
    say("suite enrich: normalize + enrich, each measurement in a fresh process")
    results: list[dict] = []
    reference = work / "reference"
    write_reference_data(reference, seed=1)  # the bench universe (seed 1)
    one_day = day_landing(bench)
    for name, source in [("enrich_lake", bench.landing), ("enrich_day_lake", one_day)]:
        say(f"- preparing {name}: ingest (not timed)")
        shutil.rmtree(work / name, ignore_errors=True)
        prepared = run_child(prepare_enrich, {"name": f"prepare_{name}", "lake": str(work / name),
                                              "landing": str(source)}, work)
        if "error" in prepared:
            say(f"  FAILED: {prepared['error']}")
            return Outcome(measurements=results)
    for name, label, lake in [
        ("enrich_baseline", "read activity_raw + write the same rows back", work / "enrich_lake"),
        ("enrich_all", "ours: normalize + enrich, every day", work / "enrich_lake"),
        ("enrich_day", f"ours: normalize + enrich, one day of {DAY_EVENTS:,} events", work / "enrich_day_lake"),
    ]:
        say(f"- {label}")
        measure = measure_enrich_baseline if name == "enrich_baseline" else measure_enrich_ours
        result = run_child(measure, {"name": name, "label": label, "lake": str(lake), "reference": str(reference),
                                     "target": str(work / "enrich_copy")}, work)
        result["label"] = label
        if "error" in result:
            say(f"  FAILED: {result['error']}")
        else:
            say(f"  {result['seconds']:.2f} s, peak RSS {result['peak_rss'] / GIB:.2f} GiB, {result['rows']:,} rows; "
                f"{result.get('notes', '')}")
        say_failed_checks(result)
        results.append(result)
    return Outcome(measurements=results)


def report(outcome: Outcome, say) -> None:
    """Nothing of its own: the measurements are rows of the common table (:mod:`bench.report`)."""


# ------------------------------------------------------------------------------------------------
# In the measurement processes


@measurement("prepare_enrich")
def prepare_enrich(spec: dict[str, Any], profiler) -> dict[str, Any]:
    from transforms.lake import Lake

    ingest = bench_ingest()
    with profiler.timed():
        report = ingest(Lake.at(spec["lake"]), spec["landing"])
    return {"rows": report.accepted, "checks": [check("prepared lake balances", report.balanced, True)]}


@measurement("prepare_query")
def prepare_enriched_lake(spec: dict[str, Any], profiler) -> dict[str, Any]:
    from transforms.lake import ACTIVITY_RAW, Lake
    from transforms.refresh import refresh_all

    ingest = bench_ingest()
    lake = Lake.at(spec["lake"])
    references = bench_references(spec["reference"])
    with profiler.timed():
        report = ingest(lake, spec["landing"])
        refresh_all(lake, lake.days(ACTIVITY_RAW), references=references)
    return {"rows": report.accepted}


@measurement("enrich_baseline")
def measure_enrich_baseline(spec: dict[str, Any], profiler) -> dict[str, Any]:
    import polars as pl

    shutil.rmtree(spec["target"], ignore_errors=True)
    with profiler.timed(), profiler.stage("read + write back"):
        with profiler.stage("read activity_raw"):
            raw = pl.scan_delta(f"{spec['lake']}/activity_raw").collect()
        with profiler.stage("write_delta"):
            raw.write_delta(spec["target"], mode="append", delta_write_options={"partition_by": ["day"]})
    shutil.rmtree(spec["target"], ignore_errors=True)
    return {"rows": raw.height, "notes": f"{raw.width} columns, {raw['day'].n_unique()} days", "with_profile": True}


@measurement("enrich_ours")
def measure_enrich_ours(spec: dict[str, Any], profiler) -> dict[str, Any]:
    import transforms.refresh as refresh_module
    from transforms.checks import expected_change_rows, raw_events_once_in_log
    from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_LOG, ACTIVITY_RAW, Lake
    from transforms.reference import load_references

    lake = Lake.at(spec["lake"])
    days = lake.days(ACTIVITY_RAW)
    references = load_references({n: f"{spec['reference']}/{n}.csv" for n in REFERENCE_TABLES})
    for attribute in ("refresh_events", "refresh_changes", "refresh_log"):
        profiler.wrap(refresh_module, attribute)
    with profiler.timed(), profiler.stage("refresh_all"):
        refresh_module.refresh_all(lake, days, references=references)
    log = lake.scan(ACTIVITY_LOG).select("project_name", "actor_role").collect()
    change_rows = lake.scan(ACTIVITY_CHANGES).select("id").collect().height
    once = raw_events_once_in_log(lake, days)
    return {
        "rows": log.height,
        "notes": (f"{len(days)} days, {change_rows:,} change rows, project names joined on "
                  f"{log['project_name'].is_not_null().mean():.0%} of rows"),
        "checks": [
            check("every raw event once in activity_log", once["missing_from_log"] + once["repeated_in_log"], 0),
            check("change rows = sum of len(detail.changes)", change_rows, expected_change_rows(lake, days)),
        ],
        "with_profile": True,
    }

