"""``make bench``: how fast and how lean is the ingest, next to plain Polars and DuckDB doing less.

    python -m bench.run                               # 1M events, 365 days, 20 files
    python -m bench.run --events 50000 --days 30 --files 4 --keep

The bench landing is written once per parameter set (``--dir``/landing-<events>-<days>-<files>, not
timed; ``--keep`` reuses it). Every measurement then runs in a fresh child process, so its wall time
and its peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss`` of that child, exact) are its own. Suite
``ingest``:

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

The figures are a report: targets are marked PASS/MISS; only a failed correctness check (row counts,
the accounting, "duplicates write nothing") or a crash of our ingest makes the exit status non-zero. Our
runs are instrumented by wrapping the functions of ``transforms.ingest`` (a few dozen calls, negligible
cost), so the report also says where the time and the memory go. Results: ``--dir``/results/last.json.

This module imports only the standard library at the top: the parent process stays small and the
children import what their measurement needs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import date, datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / "bench" / "data"
GIB = 1024**3

# (label, numerator, denominator or None, target, kind): kind "ratio" compares seconds, "memory" GiB.
# A denominator "a|b" means a, or b when a failed (the literal raw-Polars recipe cannot always run).
TARGETS = [
    ("first ingest / raw Polars", "ours_first", "raw_polars|raw_polars_flat", 1.5, "ratio"),
    ("re-ingest of copies / first ingest", "ours_copies", "ours_first", 0.5, "ratio"),
    ("peak memory of first ingest (GiB)", "ours_first", None, 4.0, "memory"),
    ("gzip bomb (5 GB inflated), size cap only: peak GiB", "bomb_size_cap", None, 1.0, "memory"),
    ("gzip bomb (5 GB inflated), size cap only: seconds", "bomb_size_cap", None, 10.0, "seconds"),
    ("normalize + enrich, all days / read raw + write back", "enrich_all", "enrich_baseline", 1.5, "ratio"),
    ("normalize + enrich, one day of 100,000 events (s)", "enrich_day", None, 3.0, "seconds"),
]
INFORMATIVE = [
    ("first ingest / raw Polars, nested as text", "ours_first", "raw_polars_flat"),
    ("first ingest / DuckDB", "ours_first", "duckdb"),
    ("no-op re-ingest / first ingest", "ours_noop", "ours_first"),
    ("same events in new files / first ingest", "ours_reordered", "ours_first"),
]


# ================================================================================================
# Parent: options, data, orchestration, report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", "1000000")),
                        help="events in the bench landing (default 1,000,000, or $BENCH_EVENTS)")
    parser.add_argument("--days", type=int, default=365, help="days the events spread over (default 365)")
    parser.add_argument("--files", type=int, default=20, help="NDJSON files (default 20)")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"data and results (default {DEFAULT_DIR})")
    parser.add_argument("--keep", action="store_true",
                        help="reuse the generated landing if it exists with the same parameters")
    parser.add_argument("--only", choices=["ingest", "enrich", "query", "notify", "export", "retention", "api"], action="append",
                        help="run only this suite (repeatable; default: every suite)")
    parser.add_argument("--keep-work", action="store_true",
                        help="leave the written lakes and tables under --dir/work after the run")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the ingest's own progress lines")
    args = parser.parse_args(argv)
    if args.events < 1 or args.days < 1 or args.files < 1:
        parser.error("--events, --days and --files must be >= 1")
    args.dir = args.dir.expanduser().resolve()
    return args


def say(message: str = "") -> None:
    print(message, flush=True)


def machine_info() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    info: dict[str, Any] = {
        "load_average_1m": load,
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "polars": version("polars"),
        "deltalake": version("deltalake"),
        "duckdb": version("duckdb"),
        "pyarrow": version("pyarrow"),
    }
    usable = info["usable_cores"] or 1
    try:
        import psutil

        busy = psutil.cpu_percent(interval=1.0)  # system-wide, over one second before anything starts
        info["cpu_busy_percent_before"] = busy
        if busy > 20:
            info["busy_warning"] = (
                f"the CPU was {busy:.0f}% busy before the bench started ({usable} cores, load average "
                f"{load:.1f}): other processes compete with the measurements, figures are pessimistic")
    except ImportError:
        pass
    try:
        import psutil

        info["ram_gib"] = round(psutil.virtual_memory().total / GIB, 1)
        info["physical_cores"] = psutil.cpu_count(logical=False)
    except ImportError:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["ram_gib"] = round(pages * size / GIB, 1)
    return info


def landing_files(landing: Path) -> list[Path]:
    return sorted(p for p in landing.iterdir() if p.suffix == ".jsonl" and not p.name.startswith("."))


def prepare_landing(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The bench landing for these parameters: reused with --keep if complete, else written now."""
    params = {"events": args.events, "days": args.days, "files": args.files, "seed": 1}
    landing = args.dir / f"landing-{args.events}-{args.days}-{args.files}"
    marker = landing.with_name(landing.name + ".json")  # beside the landing, never listed by the ingest
    if args.keep and marker.exists():
        stamp = json.loads(marker.read_text())
        files = landing_files(landing) if landing.is_dir() else []
        if stamp.get("params") == params and len(files) == args.files \
                and sum(p.stat().st_size for p in files) == stamp.get("bytes"):
            say(f"landing: reusing {landing} ({stamp['events']:,} events, {stamp['bytes'] / 1e6:,.0f} MB, "
                f"written {stamp['written_at']})")
            return landing, {**stamp, "reused": True}
        say("landing: cached landing does not match the parameters; writing it again")

    from pipelines.demo import write_bench_landing

    marker.unlink(missing_ok=True)
    shutil.rmtree(landing, ignore_errors=True)
    landing.parent.mkdir(parents=True, exist_ok=True)
    tty = sys.stdout.isatty()
    started = time.perf_counter()

    def progress(written: int) -> None:
        elapsed = time.perf_counter() - started
        text = (f"landing: writing {written:,}/{args.events:,} events "
                f"({100 * written / args.events:.0f}%, {elapsed:.1f} s)")
        print(("\r" + text) if tty else text, end="" if tty else "\n", flush=True)

    say(f"landing: writing {args.events:,} events over {args.days} days into {args.files} files (not timed)")
    report = write_bench_landing(landing, events=args.events, days=args.days, files=args.files, seed=1,
                                 progress=progress)
    if tty:
        print()
    files = landing_files(landing)
    stamp = {
        "params": params,
        "events": report.events,
        "late_events": report.late_events,
        "start_day": report.start_day.isoformat(),
        "end_day": report.end_day.isoformat(),
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "seconds": round(time.perf_counter() - started, 2),
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    marker.write_text(json.dumps(stamp, indent=2))
    say(f"landing: wrote {stamp['events']:,} events, {stamp['bytes'] / 1e6:,.0f} MB "
        f"({stamp['bytes'] / max(stamp['events'], 1):,.0f} bytes/event) in {stamp['seconds']:.1f} s")
    return landing, {**stamp, "reused": False}


def warm_page_cache(files: list[Path]) -> None:
    """Read every landing file once so each measurement starts from the same (warm) page cache."""
    for path in files:
        with path.open("rb") as handle:
            while handle.read(16 << 20):
                pass


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


def run_child(kind: str, spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return what it wrote (or the error)."""
    spec = {**spec, "kind": kind, "result": str(work / "results" / f"{spec['name']}.json")}
    result_path = Path(spec["result"])
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, bench.run as b; b.child(sys.argv[1])", json.dumps(spec)],
        cwd=ROOT, env=env, stdout=None, stderr=subprocess.PIPE, text=True,
    )
    process_seconds = time.perf_counter() - started
    if result_path.exists():
        result = json.loads(result_path.read_text())
    else:
        result = {"name": spec["name"], "error": f"child exited {proc.returncode} without a result"}
    if proc.returncode != 0 and "error" not in result:
        result["error"] = f"child exited {proc.returncode}"
    if "error" in result:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        result["stderr_tail"] = tail
    elif proc.stderr.strip():
        sys.stderr.write(proc.stderr)
    result["process_seconds"] = round(process_seconds, 3)
    return result


def say_failed_checks(result: dict[str, Any]) -> None:
    for check in result.get("checks", []):
        if not check["ok"]:
            say(f"  CHECK FAILED: {check['what']} (got {check['got']}, expected {check['expected']})")


def ingest_suite(args: argparse.Namespace, landing: Path, stamp: dict[str, Any], work: Path) -> list[dict]:
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
    for name, label, kind, variants in [
        ("raw_polars", "raw Polars (scan_ndjson -> write_delta)", "raw_polars", ["infer_100", "infer_all"]),
        ("raw_polars_flat", "raw Polars, nested as JSON text", "raw_polars", ["flat"]),
        ("duckdb", "DuckDB (read_json -> parquet by day)", "duckdb", ["auto", "depth_1"]),
    ]:
        say(f"- {label}")
        failures = []
        for variant in variants:
            target = work / name
            shutil.rmtree(target, ignore_errors=True)
            result = run_child(kind, {"name": name, "label": label, "files": files, "target": str(target),
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
        result = run_child("ours", {"name": name, "label": label, "lake": str(lake), "landing": str(source),
                                    "events": events, "files": len(files), "verbose": args.verbose}, work)
        result["label"] = label
        show(result)
        say_failed_checks(result)
        results.append(result)
    from bench.bomb import write_bomb

    bomb_landing = work / "landing-bomb"
    shutil.rmtree(bomb_landing, ignore_errors=True)
    write_bomb(bomb_landing / "bomb.jsonl.gz")
    for name, label, ratio in [("bomb_default", "ours: gzip bomb, default caps", None),
                               ("bomb_size_cap", "ours: gzip bomb, ratio cap lifted", "1000000")]:
        say(f"- {label}")
        shutil.rmtree(work / "lake-bomb", ignore_errors=True)
        result = run_child("bomb", {"name": name, "label": label, "lake": str(work / "lake-bomb"),
                                    "landing": str(bomb_landing), "ratio": ratio}, work)
        result["label"] = label
        show(result)
        say_failed_checks(result)
        results.append(result)
    shutil.rmtree(bomb_landing, ignore_errors=True)
    return results


DAY_EVENTS = 100_000


def enrich_suite(args: argparse.Namespace, landing: Path, stamp: dict[str, Any], work: Path) -> list[dict]:
    """Normalize + enrich (activity_events, activity_changes, activity_log) over every day of the
    bench lake, beside reading activity_raw and writing the same rows back; and one 100k-event day."""
    from pipelines.demo import write_bench_landing, write_reference_data

    results: list[dict] = []
    reference = work / "reference"
    write_reference_data(reference, seed=1)  # the bench universe (seed 1)
    day_landing = args.dir / f"landing-day-{DAY_EVENTS}"
    if not (args.keep and day_landing.is_dir() and landing_files(day_landing)):
        shutil.rmtree(day_landing, ignore_errors=True)
        say(f"landing: writing one day of {DAY_EVENTS:,} events (not timed)")
        write_bench_landing(day_landing, events=DAY_EVENTS, days=1, files=2, seed=1)
    for name, source in [("enrich_lake", landing), ("enrich_day_lake", day_landing)]:
        say(f"- preparing {name}: ingest (not timed)")
        shutil.rmtree(work / name, ignore_errors=True)
        prepared = run_child("prepare_enrich", {"name": f"prepare_{name}", "lake": str(work / name),
                                                "landing": str(source)}, work)
        if "error" in prepared:
            say(f"  FAILED: {prepared['error']}")
            return results
    for name, label, lake in [
        ("enrich_baseline", "read activity_raw + write the same rows back", work / "enrich_lake"),
        ("enrich_all", "ours: normalize + enrich, every day", work / "enrich_lake"),
        ("enrich_day", f"ours: normalize + enrich, one day of {DAY_EVENTS:,} events", work / "enrich_day_lake"),
    ]:
        say(f"- {label}")
        kind = "enrich_baseline" if name == "enrich_baseline" else "enrich_ours"
        result = run_child(kind, {"name": name, "label": label, "lake": str(lake), "reference": str(reference),
                                  "target": str(work / "enrich_copy")}, work)
        result["label"] = label
        if "error" in result:
            say(f"  FAILED: {result['error']}")
        else:
            say(f"  {result['seconds']:.2f} s, peak RSS {result['peak_rss'] / GIB:.2f} GiB, {result['rows']:,} rows; "
                f"{result.get('notes', '')}")
        say_failed_checks(result)
        results.append(result)
    from bench.bomb import write_bomb

    bomb_landing = work / "landing-bomb"
    shutil.rmtree(bomb_landing, ignore_errors=True)
    write_bomb(bomb_landing / "bomb.jsonl.gz")
    for name, label, ratio in [("bomb_default", "ours: gzip bomb, default caps", None),
                               ("bomb_size_cap", "ours: gzip bomb, ratio cap lifted", "1000000")]:
        say(f"- {label}")
        shutil.rmtree(work / "lake-bomb", ignore_errors=True)
        result = run_child("bomb", {"name": name, "label": label, "lake": str(work / "lake-bomb"),
                                    "landing": str(bomb_landing), "ratio": ratio}, work)
        result["label"] = label
        show(result)
        say_failed_checks(result)
        results.append(result)
    shutil.rmtree(bomb_landing, ignore_errors=True)
    return results


def enriched_lake(lake: Path, landing: Path, work: Path, ready: bool, name: str) -> dict[str, Any] | None:
    """Ingest + normalize + enrich ``landing`` into ``lake`` (not timed) unless an earlier suite built it
    (``ready``). Returns the failed child's result, or None."""
    if ready and (lake / "activity_item_history").is_dir():
        return None
    say(f"- preparing the lake for {name}: ingest + normalize + enrich (not timed)")
    shutil.rmtree(lake, ignore_errors=True)
    prepared = run_child("prepare_query", {"name": f"prepare_{name}", "lake": str(lake), "landing": str(landing),
                                           "reference": str(work / "reference")}, work)
    return prepared if "error" in prepared else None


def query_suite(args: argparse.Namespace, landing: Path, work: Path, ran_enrich: bool) -> dict[str, Any]:
    """Our queries and DuckDB's on the enriched bench lake (built here when the enrich suite did not)."""
    from bench import queries

    lake = work / "enrich_lake"
    failed = enriched_lake(lake, landing, work, ran_enrich, "query")
    if failed:
        say(f"  FAILED: {failed['error']}")
        return {"ours": {**failed, "name": "ours_query", "label": "query suite: prepare"}}
    say("- ours: filter language + resource history")
    ours = run_child("query_ours", {"name": "ours_query", "label": "query suite: ours", "lake": str(lake)}, work)
    if "error" in ours:
        return {"ours": ours}
    say("- DuckDB over the same Parquet files")
    duck = run_child("query_duckdb", {"name": "duckdb_query", "label": "query suite: DuckDB", "lake": str(lake),
                                      "params": ours["params"]}, work)
    say("- cold processes")
    cold = queries.cold_runs(str(lake), ours["params"])
    return {"params": ours["params"], "ours": ours, "duckdb": duck, "cold": cold}


def api_suite(args: argparse.Namespace, landing: Path, work: Path, ready: bool) -> dict[str, Any]:
    from bench import api_load

    lake = work / "enrich_lake"
    failed = enriched_lake(lake, landing, work, ready, "api")
    if failed:
        return {"error": failed["error"]}
    try:
        result = api_load.run(str(lake), work, say=say)
        result["uncached"] = api_load.run(str(lake), work, seconds=20, say=say, cache=False)
        return result
    except Exception as exc:  # noqa: BLE001 - reported, not fatal to the other suites
        return {"error": f"{type(exc).__name__}: {exc}"}


def retention_suite(args: argparse.Namespace, landing: Path, work: Path, ready: bool) -> dict[str, dict[str, Any]]:
    lake = work / "enrich_lake"
    failed = enriched_lake(lake, landing, work, ready, "retention")
    if failed:
        return {"retention": failed}
    results = {}
    for key, kind in (("retention", "retention_ours"), ("baseline", "retention_baseline"), ("verify", "verify_ours"),
                      ("verify_baseline", "verify_baseline")):
        say(f"- {key}")
        results[key] = run_child(kind, {"name": f"{key}_retention", "lake": str(lake),
                                        "copy": str(work / "retention_copy")}, work)
        r = results[key]
        say(f"  FAILED: {r['error']}" if "error" in r else f"  {r['seconds']:.2f} s")
    return results


def export_suite(args: argparse.Namespace, landing: Path, work: Path, ready: bool) -> dict[str, dict[str, Any]]:
    lake = work / "enrich_lake"
    failed = enriched_lake(lake, landing, work, ready, "export")
    if failed:
        return {"ours_csv": failed}
    results = {}
    for fmt in ("csv", "xlsx"):
        for who in ("ours", "polars"):
            say(f"- {who}: {fmt}")
            results[f"{who}_{fmt}"] = run_child(f"export_{who}", {"name": f"{who}_export_{fmt}", "lake": str(lake),
                                                                  "format": fmt, "out": str(work / f"export-{who}")}, work)
            r = results[f"{who}_{fmt}"]
            say(f"  FAILED: {r['error']}" if "error" in r else f"  {r['seconds']:.2f} s")
    return results


def notify_suite(args: argparse.Namespace, work: Path, ran_enrich: bool) -> dict[str, Any]:
    """1,000 subscriptions over the enriched 100k-event day (built here when the enrich suite did not)."""
    from pipelines.demo import write_bench_landing

    lake = work / "enrich_day_lake"
    day_landing = args.dir / f"landing-day-{DAY_EVENTS}"
    if not (ran_enrich and (lake / "activity_item_history").is_dir()) and not (
            args.keep and day_landing.is_dir() and landing_files(day_landing)):
        shutil.rmtree(day_landing, ignore_errors=True)
        write_bench_landing(day_landing, events=DAY_EVENTS, days=1, files=2, seed=1)
    failed = enriched_lake(lake, day_landing, work, ran_enrich, "notify")
    if failed:
        return {**failed, "name": "ours_notify", "label": "notify suite: prepare"}
    say("- ours and the per-subscription baseline")
    return run_child("notify", {"name": "ours_notify", "label": "notify suite", "lake": str(lake)}, work)


def ratios(results: list[dict]) -> list[dict[str, Any]]:
    by_name = {r["name"]: r for r in results if "error" not in r}
    rows = []
    used: set[tuple[str, str | None]] = set()
    for label, num, den, target, kind in TARGETS:
        if den and "|" in den:
            first, fallback = den.split("|")
            den = first if first in by_name else fallback
            if den == fallback:
                label = f"{label} (nested as text; structs failed)"
        row: dict[str, Any] = {"what": label, "target": target, "value": None, "status": "n/a"}
        if kind == "memory" and num in by_name:
            row["value"] = by_name[num]["peak_rss"] / GIB
        elif kind == "seconds" and num in by_name:
            row["value"] = by_name[num]["seconds"]
        elif kind == "ratio" and num in by_name and den in by_name and by_name[den]["seconds"] > 0:
            row["value"] = by_name[num]["seconds"] / by_name[den]["seconds"]
        if row["value"] is not None:
            row["status"] = "PASS" if row["value"] <= target else "MISS"
        rows.append(row)
        used.add((num, den))
    for label, num, den in INFORMATIVE:
        if (num, den) in used:
            continue
        value = None
        if num in by_name and den in by_name and by_name[den]["seconds"] > 0:
            value = by_name[num]["seconds"] / by_name[den]["seconds"]
        rows.append({"what": label, "target": None, "value": value, "status": "info"})
    return rows


def print_report(info: dict[str, Any], stamp: dict[str, Any], results: list[dict], ratio_rows: list[dict]) -> None:
    say()
    say(f"machine: {info['cpu']}; {info['usable_cores']} usable cores "
        f"({info.get('physical_cores', '?')} physical); {info['ram_gib']} GiB RAM; Python {info['python']}")
    say(f"         polars {info['polars']}, deltalake {info['deltalake']}, duckdb {info['duckdb']}, "
        f"pyarrow {info['pyarrow']}; {info['platform']}")
    say(f"data:    {stamp['events']:,} events, {stamp['params']['days']} days, "
        f"{stamp['files']} files, {stamp['bytes'] / 1e6:,.0f} MB NDJSON (warm page cache)")
    say()
    header = (f"{'measurement':<42}{'seconds':>9}{'peak GiB':>10}{'start GiB':>11}{'CPU s':>8}{'MB/s':>7}"
              f"{'rows written':>14}  notes")
    say(header)
    say("-" * len(header))
    for r in results:
        if "error" in r:
            say(f"{r['label']:<42}{'FAILED':>9}  {r['error'].splitlines()[0][:80]}")
            continue
        mbps = stamp["bytes"] / 1e6 / r["seconds"] if r["seconds"] > 0 and r.get("reads_landing", True) else None
        say(f"{r['label']:<42}{r['seconds']:>9.2f}{r['peak_rss'] / GIB:>10.2f}{r['rss_before'] / GIB:>11.2f}"
            f"{r['cpu_seconds']:>8.1f}{(f'{mbps:,.0f}' if mbps else '-'):>7}{r['rows']:>14,}  {r.get('notes', '')}")
    say("(seconds: the measured call only, in a fresh process; peak GiB: that process's RSS high-water mark,")
    say(" imports included; start GiB: its RSS after importing Polars; CPU s: user + system of the call;")
    say(" MB/s: landing bytes / seconds)")
    if info.get("busy_warning"):
        say(f"WARNING: {info['busy_warning']}")
    say()
    for row in ratio_rows:
        value = "n/a" if row["value"] is None else f"{row['value']:.2f}"
        target = "" if row["target"] is None else f"target <= {row['target']:.2f}"
        say(f"  {row['what']:<58}{value:>8}   {target:<16}{row['status']}")
    for r in results:
        if r.get("profile"):
            say()
            say(f"where the time goes: {r['label']} ({r['seconds']:.2f} s; self = not in a nested stage)")
            print_profile(r["profile"], r["seconds"])


def print_profile(profile: list[dict[str, Any]], total: float) -> None:
    header = f"  {'stage':<52}{'calls':>6}{'total s':>9}{'self s':>9}{'self %':>8}{'peak RSS GiB':>14}"
    say(header)
    for row in profile:
        name = "  " * (len(row["path"]) - 1) + row["path"][-1]
        share = 100 * row["self"] / total if total else 0
        peak = f"{row['peak_rss'] / GIB:.2f}" if row.get("peak_rss") else "-"
        say(f"  {name:<52}{row['calls']:>6}{row['total']:>9.2f}{row['self']:>9.2f}{share:>7.1f}%{peak:>14}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    suites = args.only or ["ingest", "enrich", "query", "notify", "export", "retention", "api"]
    info = machine_info()
    say(f"bench: {info['cpu']}, {info['usable_cores']} cores, {info['ram_gib']} GiB RAM; "
        f"polars {info['polars']}, deltalake {info['deltalake']}")
    if info.get("busy_warning"):
        say(f"WARNING: {info['busy_warning']}")
    args.dir.mkdir(parents=True, exist_ok=True)
    landing, stamp = prepare_landing(args)
    work = args.dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    warm_page_cache(landing_files(landing))

    results: list[dict] = []
    if "ingest" in suites:
        say(f"suite ingest: each measurement in a fresh process ({sys.executable})")
        results += ingest_suite(args, landing, stamp, work)
    if "enrich" in suites:
        say("suite enrich: normalize + enrich, each measurement in a fresh process")
        results += enrich_suite(args, landing, stamp, work)
    query_outcome: dict[str, Any] = {}
    if "query" in suites:
        say("suite query: filters and history, ours beside DuckDB, each side in a fresh process")
        query_outcome = query_suite(args, landing, work, ran_enrich="enrich" in suites)
    notify_result: dict[str, Any] = {}
    if "notify" in suites:
        say("suite notify: subscriptions over one day of 100,000 events, in a fresh process")
        notify_result = notify_suite(args, work, ran_enrich="enrich" in suites)
    export_results: dict[str, Any] = {}
    if "export" in suites:
        say("suite export: 90 days to CSV and XLSX, ours beside Polars' writers, each in a fresh process")
        export_results = export_suite(args, landing, work, ready="query" in suites or "enrich" in suites)
    retention_results: dict[str, Any] = {}
    if "retention" in suites:
        say("suite retention: delete 60 whole days, verify the chain, each in a fresh process")
        retention_results = retention_suite(args, landing, work,
                                            ready=bool({"query", "enrich", "export"} & set(suites)))
    api_result: dict[str, Any] = {}
    if "api" in suites:
        say("suite api: the read API under load from a second process")
        api_result = api_suite(args, landing, work, ready=bool({"query", "enrich", "export", "retention"} & set(suites)))
    ratio_rows = ratios(results)
    print_report(info, stamp, results, ratio_rows)
    if export_results:
        from bench import export as export_bench

        export_bench.report(export_results, say)
    if retention_results:
        from bench import retention as retention_bench

        retention_bench.report(retention_results, say)
    if api_result:
        from bench import api_load

        api_load.report(api_result, say)
        if api_result.get("uncached"):
            api_load.report(api_result["uncached"], say)
    if notify_result and "error" not in notify_result:
        from bench import notify as notify_bench

        notify_bench.report(notify_result, say)
    elif notify_result:
        say(f"notify suite FAILED: {notify_result['error']}")
        results.append(notify_result)
    if query_outcome.get("duckdb", {}).get("error"):  # report ours alone, DuckDB marked as failed
        query_outcome["duckdb"]["queries"] = {}
    if query_outcome.get("ours", {}).get("queries") is not None and query_outcome.get("duckdb"):
        from bench import queries

        query_outcome["checks"] = queries.report(query_outcome["params"], query_outcome["ours"],
                                                 query_outcome["duckdb"], query_outcome["cold"], say)
    for side in ("ours", "duckdb"):
        if query_outcome.get(side, {}).get("error"):
            say(f"query suite, {side}: FAILED: {query_outcome[side]['error']}")
            if side == "ours":
                results.append(query_outcome[side])

    failed_checks = [c for r in results for c in r.get("checks", []) if not c["ok"]]
    failed_checks += [c for c in query_outcome.get("checks", []) if not c["ok"]]
    failed_checks += [c for c in notify_result.get("checks", []) if not c["ok"]]
    failed_checks += [c for r in export_results.values() for c in r.get("checks", []) if not c["ok"]]
    failed_checks += [c for r in retention_results.values() for c in r.get("checks", []) if not c["ok"]]
    # A baseline that cannot run is reported, not a failure of ours: only our runs set the exit status.
    errors = [r["name"] for r in results if "error" in r and r["name"].startswith("ours")]
    errors += [k for k, r in export_results.items() if "error" in r and k.startswith("ours")]
    out = args.dir / "results" / "last.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else argv,
        "machine": info,
        "landing": {**stamp, "path": str(landing)},
        "measurements": results,
        "targets": ratio_rows,
        "queries": {k: v for k, v in query_outcome.items() if k != "checks"},
        "notify": notify_result,
        "export": export_results,
        "retention": retention_results,
        "api": api_result,
        "failed_checks": failed_checks,
    }, indent=2, default=str))
    say()
    say(f"results: {out}")
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    if failed_checks or errors:
        say(f"bench: {len(failed_checks)} failed check(s), {len(errors)} failed measurement(s)")
        return 1
    return 0


# ================================================================================================
# Child: one measurement per process


class Sampler:
    """Polls this process's RSS (and its children's) and charges each sample to the current stage."""

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self._process = psutil.Process()
        self.interval = interval
        self.peak = 0
        self.stage_peaks: dict[tuple[str, ...], int] = {}
        self.stack: list[tuple[str, ...]] = []  # shared with the Profiler (same thread order is fine)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def rss(self) -> int:
        total = self._process.memory_info().rss
        for child in self._process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except Exception:  # noqa: BLE001 - a child that just ended
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        rss = self.rss()
        self.peak = max(self.peak, rss)
        for path in list(self.stack):  # a stage's peak includes its nested stages' samples
            if rss > self.stage_peaks.get(path, 0):
                self.stage_peaks[path] = rss

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


class Profiler:
    """Inclusive and self time per call path of wrapped functions (a tiny, deterministic profiler)."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.stats: dict[tuple[str, ...], dict[str, float]] = {}
        self._frames: list[list[Any]] = []  # [path, start, time in nested stages]
        self._undo: list[Callable[[], None]] = []
        self.seconds: float | None = None
        self.cpu_seconds: float | None = None

    @contextmanager
    def timed(self) -> Iterator[None]:
        """The measured region: setup before it (imports, fresh dirs, version checks) is not timed."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
            self.cpu_seconds = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime

    @contextmanager
    def stage(self, label: str) -> Iterator[None]:
        parent = self._frames[-1][0] if self._frames else ()
        path = (*parent, label)
        frame = [path, time.perf_counter(), 0.0]
        self._frames.append(frame)
        self.sampler.stack.append(path)
        self.sampler.sample()
        try:
            yield
        finally:
            self.sampler.sample()
            self.sampler.stack.pop()
            self._frames.pop()
            elapsed = time.perf_counter() - frame[1]
            stat = self.stats.setdefault(path, {"calls": 0, "total": 0.0, "self": 0.0})
            stat["calls"] += 1
            stat["total"] += elapsed
            stat["self"] += elapsed - frame[2]
            if self._frames:
                self._frames[-1][2] += elapsed

    def wrap(self, owner: Any, attribute: str, label: str | Callable[..., str] | None = None) -> None:
        original = getattr(owner, attribute)
        profiler = self

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            name = label(*args, **kwargs) if callable(label) else (label or attribute)
            with profiler.stage(name):
                return original(*args, **kwargs)

        wrapper.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(owner, attribute, wrapper)
        self._undo.append(lambda: setattr(owner, attribute, original))

    def rows(self) -> list[dict[str, Any]]:
        def order(path: tuple[str, ...]) -> tuple:
            # depth-first, siblings by total time descending
            keys = []
            for depth in range(1, len(path) + 1):
                prefix = path[:depth]
                keys.append((-self.stats[prefix]["total"], prefix[-1]))
            return tuple(keys)

        return [
            {"path": list(path), "calls": int(s["calls"]), "total": round(s["total"], 4),
             "self": round(s["self"], 4), "peak_rss": self.sampler.stage_peaks.get(path)}
            for path, s in sorted(self.stats.items(), key=lambda item: order(item[0]))
        ]


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
        "checks": [_check("raw Polars wrote every event", rows, spec["events"])],
        "with_profile": True,
    }


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
        "checks": [_check("DuckDB wrote every event", rows, spec["events"])],
    }


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
    checks = [_check("accepted + duplicates + quarantined = lines", report.balanced, True)]
    if name == "ours_first":
        checks += [_check("first ingest accepts every event", report.accepted, events),
                   _check("first ingest quarantines nothing", report.quarantined, 0)]
        rows = report.accepted
    elif name in ("ours_copies", "ours_reordered"):
        checks += [_check("copies: nothing accepted", report.accepted, 0),
                   _check("copies: every event a duplicate", report.duplicates, events),
                   _check("copies: activity_raw version unchanged", version_after, version_before)]
        rows = report.accepted
    else:
        checks += [_check("no-op: every file skipped", report.files_skipped, spec["files"]),
                   _check("no-op: nothing read", report.lines, 0),
                   _check("no-op: activity_raw version unchanged", version_after, version_before)]
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


def _check(what: str, got: Any, expected: Any) -> dict[str, Any]:
    return {"what": what, "got": got, "expected": expected, "ok": got == expected}


def prepare_enrich(spec: dict[str, Any], profiler: Profiler) -> dict[str, Any]:
    from transforms.ingest import ingest
    from transforms.lake import Lake
    from transforms.validate import ValidationSettings

    with profiler.timed():
        report = ingest(Lake.at(spec["lake"]), spec["landing"], ValidationSettings(start_date=date(2020, 1, 1)))
    return {"rows": report.accepted, "checks": [_check("prepared lake balances", report.balanced, True)]}


def measure_enrich_baseline(spec: dict[str, Any], profiler: Profiler) -> dict[str, Any]:
    import polars as pl

    shutil.rmtree(spec["target"], ignore_errors=True)
    with profiler.timed(), profiler.stage("read + write back"):
        with profiler.stage("read activity_raw"):
            raw = pl.scan_delta(f"{spec['lake']}/activity_raw").collect()
        with profiler.stage("write_delta"):
            raw.write_delta(spec["target"], mode="append", delta_write_options={"partition_by": ["day"]})
    shutil.rmtree(spec["target"], ignore_errors=True)
    return {"rows": raw.height, "notes": f"{raw.width} columns, {raw['day'].n_unique()} days", "with_profile": True}


def measure_enrich_ours(spec: dict[str, Any], profiler: Profiler) -> dict[str, Any]:
    import transforms.refresh as refresh_module
    from transforms.checks import expected_change_rows, raw_events_once_in_log
    from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_LOG, ACTIVITY_RAW, Lake
    from transforms.reference import load_references

    lake = Lake.at(spec["lake"])
    days = lake.days(ACTIVITY_RAW)
    references = load_references({n: f"{spec['reference']}/{n}.csv" for n in ("users", "projects", "organizations")})
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
            _check("every raw event once in activity_log", once["missing_from_log"] + once["repeated_in_log"], 0),
            _check("change rows = sum of len(detail.changes)", change_rows, expected_change_rows(lake, days)),
        ],
        "with_profile": True,
    }


def prepare_query(spec: dict[str, Any], profiler: Profiler) -> dict[str, Any]:
    from transforms.ingest import ingest
    from transforms.lake import ACTIVITY_RAW, Lake
    from transforms.reference import load_references
    from transforms.refresh import refresh_all
    from pipelines.demo import write_reference_data
    from transforms.validate import ValidationSettings

    lake = Lake.at(spec["lake"])
    write_reference_data(Path(spec["reference"]), seed=1)
    references = load_references({n: f"{spec['reference']}/{n}.csv" for n in ("users", "projects", "organizations")})
    with profiler.timed():
        report = ingest(lake, spec["landing"], ValidationSettings(start_date=date(2020, 1, 1)))
        refresh_all(lake, lake.days(ACTIVITY_RAW), references=references)
    return {"rows": report.accepted}


def measure_query_ours(spec: dict[str, Any], profiler: Profiler) -> dict[str, Any]:
    from bench import queries

    params = queries.parameters(spec["lake"])
    return {**queries.measure_ours({**spec, "params": params}, profiler), "params": params}


def measure_query_duckdb(spec: dict[str, Any], profiler: Profiler) -> dict[str, Any]:
    from bench import queries

    return queries.measure_duckdb(spec, profiler)


MEASUREMENTS: dict[str, Callable[[dict[str, Any], Profiler], dict[str, Any]]] = {
    "prepare_query": prepare_query,
    "scale_ingest": lambda spec, profiler: __import__("bench.scale", fromlist=["x"]).scale_ingest(spec, profiler),
    "scale_refresh": lambda spec, profiler: __import__("bench.scale", fromlist=["x"]).scale_refresh(spec, profiler),
    "retention_ours": lambda spec, profiler: __import__("bench.retention", fromlist=["x"]).measure_retention(spec, profiler),
    "retention_baseline": lambda spec, profiler: __import__("bench.retention", fromlist=["x"]).measure_baseline(spec, profiler),
    "verify_ours": lambda spec, profiler: __import__("bench.retention", fromlist=["x"]).measure_verify(spec, profiler),
    "verify_baseline": lambda spec, profiler: __import__("bench.retention", fromlist=["x"]).measure_verify_baseline(spec, profiler),
    "export_ours": lambda spec, profiler: __import__("bench.export", fromlist=["x"]).measure_ours(spec, profiler),
    "export_polars": lambda spec, profiler: __import__("bench.export", fromlist=["x"]).measure_baseline(spec, profiler),
    "notify": lambda spec, profiler: __import__("bench.notify", fromlist=["measure"]).measure(spec, profiler),
    "query_ours": measure_query_ours,
    "query_duckdb": measure_query_duckdb,
    "prepare_enrich": prepare_enrich,
    "enrich_baseline": measure_enrich_baseline,
    "enrich_ours": measure_enrich_ours,
    "raw_polars": measure_raw_polars,
    "duckdb": measure_duckdb,
    "ours": measure_ours,
    "bomb": lambda spec, profiler: __import__("bench.bomb", fromlist=["x"]).measure(spec, profiler),
}


def child(spec_json: str) -> None:
    """Entry point of a measurement process: do one measurement, write its result file."""
    spec = json.loads(spec_json)
    result: dict[str, Any] = {"name": spec["name"], "kind": spec["kind"]}
    try:
        import polars  # noqa: F401  - imports are not part of any measurement
        import psutil  # noqa: F401

        sampler = Sampler()
        profiler = Profiler(sampler)
        result["rss_before"] = sampler.rss()
        with sampler:
            outcome = MEASUREMENTS[spec["kind"]](spec, profiler)
        if profiler.seconds is None:
            raise RuntimeError(f"measurement {spec['kind']} did not mark its timed region")
        after = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        with_profile = outcome.pop("with_profile", False)
        result.update(outcome)
        result.update({
            "seconds": round(profiler.seconds, 4),
            "cpu_seconds": round(profiler.cpu_seconds or 0.0, 3),
            # ru_maxrss is KiB on Linux: the exact high-water mark of this process (imports included).
            "peak_rss": max(after.ru_maxrss, children.ru_maxrss) * 1024,
            "peak_rss_sampled": sampler.peak,
            "profile": profiler.rows() if with_profile else None,
        })
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which carries on
        import traceback

        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"
    Path(spec["result"]).write_text(json.dumps(result, default=str))
    if "error" in result:
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(main())
