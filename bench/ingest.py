"""Suite ``ingest`` of ``make bench``: how fast and how lean is the ingest, next to plain Polars and DuckDB
doing less. Every measurement runs in a fresh child process, so its wall time and its peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss`` of that child, exact) are its own.

1. raw Polars   ``scan_ndjson`` -> ``day`` -> ``write_delta(partition_by=day)``, no validation (nested
                objects decoded into structs); and the same with every top-level field read as text
                (nested objects stay JSON text, as in ours). Polars cannot decode PostHog events into
                structs when ``changes[].before/after`` hold objects of different shapes (arbitrary JSON):
                then the first one fails and the target compares with the second.
2. DuckDB       ``read_json`` -> ``COPY ... (FORMAT parquet, PARTITION_BY (day))``
3. first ingest ``transforms.ingest.ingest`` into a fresh lake
4. re-ingest of copies: the same files under new names into the same lake (all duplicates; a file
   whose bytes match a cleanly ingested file is recognised by its SHA-256 and not parsed)
4b. re-ingest of the same events in new files (lines reversed, so new bytes): parsed, validated and
   deduplicated against the lake, all duplicates
5. no-op re-ingest: the original landing again (ledger skip path)
5b. the whole command, ``activitylog ingest``, into a fresh lake and DAGSTER_HOME (ingest, verifiable
   log, refresh of every changed day, checks), and again after one new 10,000-event file
   (:mod:`bench.command`; where the time goes from Dagster's records of its runs and steps)
6. a gzip bomb (:mod:`bench.bomb`), with the default caps and with the ratio cap lifted

Our runs are instrumented by wrapping the functions of ``transforms.ingest`` (a few dozen calls,
negligible cost), so the report also says where the time and the memory go.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Any

from bench import bomb, command
from bench.harness import (
    GIB, Bench, Outcome, check, landing_files, measurement, run_child, say, say_failed_checks,
)
from bench.profiler import Profiler


def link_copies(landing: Path, target: Path) -> list[Path]:
    """The landing's files under new names (hard links when possible): new to the ledger, old in content."""
    target.mkdir(parents=True)
    copies = []
    for path in landing_files(landing):
        copy = target / f"copy-{path.name}"
        try:
            os.link(path, copy)
        except OSError:
            shutil.copyfile(path, copy)
        copies.append(copy)
    return copies


def reordered_copies(landing: Path, target: Path) -> list[Path]:
    """The landing's events with their lines in reverse order: new bytes (no content-hash match),
    same events, so every line must be parsed, validated and found to be a duplicate."""
    target.mkdir(parents=True)
    copies = []
    for path in landing_files(landing):
        copy = target / f"reordered-{path.name}"
        lines = path.read_bytes().rstrip(b"\n").split(b"\n")
        copy.write_bytes(b"\n".join(reversed(lines)) + b"\n")
        copies.append(copy)
    return copies


def run(bench: Bench) -> Outcome:
    """The baselines, our four ingests and the gzip bomb, each in a fresh process: rows of the common table."""
    args, landing, stamp, work = bench.args, bench.landing, bench.stamp, bench.work
    say(f"suite ingest: each measurement in a fresh process ({sys.executable})")
    files = [str(p) for p in landing_files(landing)]
    events = stamp["events"]
    results: list[dict] = []

    def show(result: dict[str, Any]) -> None:
        if "error" in result:
            say(f"  {result['label']}: FAILED: {result['error']}")
            if result.get("stderr_tail") and result["name"].startswith("ours"):
                say("    " + result["stderr_tail"].replace("\n", "\n    "))
        else:
            say(f"  {result['label']}: {result['seconds']:.2f} s, peak RSS {result['peak_rss'] / GIB:.2f} GiB, "
                f"{result['rows']:,} rows" + (f" ({result['variant']})" if result.get("variant") else ""))

    # Baselines: the literal recipe first; a more forgiving variant only if the literal one fails.
    for name, label, measure, variants in [
        ("raw_polars", "raw Polars (scan_ndjson -> write_delta)", measure_raw_polars, ["infer_100", "infer_all"]),
        ("raw_polars_flat", "raw Polars, nested as JSON text", measure_raw_polars, ["flat"]),
        ("duckdb", "DuckDB (read_json -> parquet by day)", measure_duckdb, ["auto", "depth_1"]),
    ]:
        say(f"- {label}")
        failures = []
        for variant in variants:
            target = work / name
            shutil.rmtree(target, ignore_errors=True)
            result = run_child(measure, {"name": name, "label": label, "files": files, "target": str(target),
                                         "variant": variant, "events": events}, work)
            result["label"] = label
            if "error" not in result:
                break
            failures.append({"variant": variant, "error": result["error"]})
            say(f"  variant {variant} failed: {result['error'].splitlines()[0][:200]}")
        result["failed_variants"] = failures
        show(result)
        shutil.rmtree(work / name, ignore_errors=True)  # free the disk before our runs
        results.append(result)

    lake = work / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    copies = work / "landing-copies"
    shutil.rmtree(copies, ignore_errors=True)
    link_copies(landing, copies)
    reordered = work / "landing-reordered"
    shutil.rmtree(reordered, ignore_errors=True)
    reordered_copies(landing, reordered)
    for name, label, source in [
        ("ours_first", "ours: first ingest", landing),
        ("ours_copies", "ours: re-ingest of copies", copies),
        ("ours_reordered", "ours: re-ingest, same events in new files", reordered),
        ("ours_noop", "ours: no-op re-ingest", landing),
    ]:
        say(f"- {label}")
        result = run_child(measure_ours, {"name": name, "label": label, "lake": str(lake), "landing": str(source),
                                          "events": events, "files": len(files), "verbose": args.verbose}, work)
        result["label"] = label
        show(result)
        say_failed_checks(result)
        results.append(result)
    shutil.rmtree(lake, ignore_errors=True)  # free the disk before the commands
    for name, label, measure in [("ours_command", "ours: activitylog ingest (whole command)", command.measure_command),
                                 ("ours_incremental", "ours: activitylog ingest, one new 10k file",
                                  command.measure_incremental)]:
        say(f"- {label}")
        result = run_child(measure, {"name": name, "label": label, "files": files, "events": events,
                                     "work": str(work / "command")}, work)
        result["label"] = label
        show(result)
        say_failed_checks(result)
        results.append(result)
    shutil.rmtree(work / "command", ignore_errors=True)
    bomb_landing = work / "landing-bomb"
    shutil.rmtree(bomb_landing, ignore_errors=True)
    bomb.write_bomb(bomb_landing / "bomb.jsonl.gz")
    for name, label, ratio in [("bomb_default", "ours: gzip bomb, default caps", None),
                               ("bomb_size_cap", "ours: gzip bomb, ratio cap lifted", "1000000")]:
        say(f"- {label}")
        shutil.rmtree(work / "lake-bomb", ignore_errors=True)
        result = run_child(bomb.measure, {"name": name, "label": label, "lake": str(work / "lake-bomb"),
                                          "landing": str(bomb_landing), "ratio": ratio}, work)
        result["label"] = label
        show(result)
        say_failed_checks(result)
        results.append(result)
    shutil.rmtree(bomb_landing, ignore_errors=True)
    return Outcome(measurements=results)


def report(outcome: Outcome, say) -> None:
    """Nothing of its own: the measurements are rows of the common table (:mod:`bench.report`)."""


def instrument_ingest(profiler: Profiler) -> None:
    """Wrap the stages of transforms.ingest (module globals, looked up at call time) and the lake I/O."""
    import transforms.ingest as ingest_module
    import transforms.landing.reading as landing_module  # where files are hashed as they are read
    import transforms.validate as validate_module
    from transforms.lake import Lake

    for attribute in ("scan_landing", "plan_files", "read_ledger", "read_file", "split_ndjson",
                      "split_json_document", "parse_keys", "validate", "_process_file", "_flush", "_new_events",
                      "_append_quarantine", "_reason_kinds"):
        if hasattr(ingest_module, attribute):
            profiler.wrap(ingest_module, attribute)
    import transforms.jsontext as jsontext_module

    profiler.wrap(validate_module, "_key_columns")
    profiler.wrap(validate_module, "_iso_timestamps")
    profiler.wrap(jsontext_module, "decode_values")
    profiler.wrap(Lake, "append", lambda self, name, *a, **k: f"Lake.append({name})")
    profiler.wrap(Lake, "read_days", lambda self, name, *a, **k: f"Lake.read_days({name})")
    profiler.wrap(Lake, "scan", lambda self, name, *a, **k: f"Lake.scan({name})")

    class _TimedHashlib:  # transforms.landing hashes every file it reads: time it apart from the read
        def __init__(self, real: Any) -> None:
            self._real = real

        def sha256(self, *args: Any, **kwargs: Any) -> Any:
            with profiler.stage("sha256"):
                return self._real.sha256(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

    landing_module.hashlib = _TimedHashlib(landing_module.hashlib)  # type: ignore[assignment]


def top_level_keys(files: list[str], lines: int = 1000) -> list[str]:
    """Top-level field names of the first lines (the flat baseline's schema; not timed)."""
    keys: dict[str, None] = {}
    with open(files[0], encoding="utf-8") as handle:
        for _, line in zip(range(lines), handle):
            if line.strip():
                keys.update(dict.fromkeys(json.loads(line)))
    return list(keys)


@measurement("raw_polars")
def measure_raw_polars(spec: dict[str, Any], profiler: Profiler) -> dict[str, Any]:
    import polars as pl

    infer = 100 if spec["variant"] == "infer_100" else None
    schema = None
    if spec["variant"] == "flat":  # every top-level field as text: nested objects stay JSON text, like ours
        schema = {key: pl.String for key in top_level_keys(spec["files"])}
    with profiler.timed(), profiler.stage("raw Polars"):
        with profiler.stage("scan_ndjson + day + collect"):
            frame = (
                pl.scan_ndjson(spec["files"], infer_schema_length=infer, schema=schema)
                .with_columns(
                    pl.col("created_at").str.to_datetime(format="%+", time_zone="UTC", time_unit="us")
                    .dt.date().alias("day")
                )
                .collect()
            )
        with profiler.stage("write_delta"):
            frame.write_delta(spec["target"], mode="append", delta_write_options={"partition_by": ["day"]})
    rows = frame.height
    variant = {"infer_100": None, "infer_all": "scan_ndjson(infer_schema_length=None)",
               "flat": f"schema: {len(schema or {})} top-level fields as String"}[spec["variant"]]
    return {
        "rows": rows,
        "variant": variant,
        "notes": f"{frame.width - 1} columns, {frame['day'].n_unique()} days, no validation",
        "checks": [check("raw Polars wrote every event", rows, spec["events"])],
        "with_profile": True,
    }


@measurement("duckdb")
def measure_duckdb(spec: dict[str, Any], profiler: Profiler) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    files = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in spec["files"]) + "]"
    # "auto": DuckDB's own schema detection; "depth_1": nested values kept as JSON (only if auto fails).
    depth = ", maximum_depth = 1" if spec["variant"] == "depth_1" else ""
    source = f"read_json({files}, format = 'newline_delimited'{depth})"
    with profiler.timed(), profiler.stage("DuckDB COPY"):
        copied = con.execute(
            f"COPY (SELECT *, CAST(CAST(created_at AS TIMESTAMPTZ) AS DATE) AS day FROM {source}) "
            f"TO '{spec['target']}' (FORMAT parquet, PARTITION_BY (day))"
        ).fetchone()
    rows = int(copied[0]) if copied and copied[0] is not None else -1
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    return {
        "rows": rows,
        "variant": None if spec["variant"] == "auto" else "read_json(maximum_depth = 1)",
        "with_profile": True,
        "notes": f"{threads} threads, no validation, no Delta log",
        "checks": [check("DuckDB wrote every event", rows, spec["events"])],
    }


@measurement("ours")
def measure_ours(spec: dict[str, Any], profiler: Profiler) -> dict[str, Any]:
    from transforms.lake import ACTIVITY_RAW, Lake
    from transforms.validate import ValidationSettings

    lake = Lake.at(spec["lake"])
    version_before = lake.version(ACTIVITY_RAW)
    settings = ValidationSettings(start_date=date(2020, 1, 1))
    instrument_ingest(profiler)
    import transforms.ingest as ingest_module

    profiler.wrap(ingest_module, "ingest")  # the root stage
    progress = (lambda message: print(f"    | {message}", flush=True)) if spec.get("verbose") else None
    with profiler.timed():
        report = ingest_module.ingest(lake, spec["landing"], settings, progress=progress)
    version_after = lake.version(ACTIVITY_RAW)

    events, name = spec["events"], spec["name"]
    checks = [check("accepted + duplicates + quarantined = lines", report.balanced, True)]
    if name == "ours_first":
        checks += [check("first ingest accepts every event", report.accepted, events),
                   check("first ingest quarantines nothing", report.quarantined, 0)]
        rows = report.accepted
    elif name in ("ours_copies", "ours_reordered"):
        checks += [check("copies: nothing accepted", report.accepted, 0),
                   check("copies: every event a duplicate", report.duplicates, events),
                   check("copies: activity_raw version unchanged", version_after, version_before)]
        rows = report.accepted
    else:
        checks += [check("no-op: every file skipped", report.files_skipped, spec["files"]),
                   check("no-op: nothing read", report.lines, 0),
                   check("no-op: activity_raw version unchanged", version_after, version_before)]
        rows = report.accepted
    return {
        "rows": rows,
        "reads_landing": name != "ours_noop",
        "notes": (f"accepted {report.accepted:,}, duplicates {report.duplicates:,}, "
                  f"quarantined {report.quarantined:,}, skipped {report.files_skipped} files, "
                  f"activity_raw v{version_before}->v{version_after}"),
        "report": report.summary() | {"days_changed": len(report.days_changed)},
        "activity_raw_version": [version_before, version_after],
        "checks": checks,
        "with_profile": True,
    }

