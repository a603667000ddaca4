"""``make bench``: how fast and how lean is the ingest, next to plain Polars and DuckDB doing less.

    python -m bench.run                               # 1M events, 365 days, 20 files
    python -m bench.run --events 50000 --days 30 --files 4 --keep

The bench landing is written once per parameter set (``--dir``/landing-<events>-<days>-<files>, not
timed; ``--keep`` reuses it). Then every suite runs, in the order of :data:`SUITES` (``--only`` picks
some): each is a module with ``run(bench) -> Outcome`` and ``report(outcome, say)`` (see
:mod:`bench.harness`), and every measurement runs in a fresh child process. After the runs: the common
table of the ingest and enrich measurements with their targets (:mod:`bench.report`), then each suite's
own report. Results: ``--dir``/results/last.json.

The figures are a report: targets are marked PASS/MISS; only a failed correctness check (row counts,
the accounting, "duplicates write nothing") or a crash of our side makes the exit status non-zero.

This module imports only the standard library and the suites at the top (which import only the standard
library at theirs): the parent process stays small and the children import what their measurement needs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from bench import api_load, enrich, export, ingest, notify, queries, retention
from bench.harness import DEFAULT_DIR, Bench, landing_files, machine_info, prepare_landing, say, warm_page_cache
from bench.report import print_report, ratios

# Every suite of ``make bench``, in the order they run.
SUITES = {"ingest": ingest, "enrich": enrich, "query": queries, "notify": notify, "export": export,
          "retention": retention, "api": api_load}
# The order of their reports, after the common table (and of the failures they add to the measurements).
REPORTS = ("ingest", "enrich", "export", "retention", "api", "notify", "query")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", "1000000")),
                        help="events in the bench landing (default 1,000,000, or $BENCH_EVENTS)")
    parser.add_argument("--days", type=int, default=365, help="days the events spread over (default 365)")
    parser.add_argument("--files", type=int, default=20, help="NDJSON files (default 20)")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"data and results (default {DEFAULT_DIR})")
    parser.add_argument("--keep", action="store_true",
                        help="reuse the generated landing if it exists with the same parameters")
    parser.add_argument("--only", choices=list(SUITES), action="append",
                        help="run only this suite (repeatable; default: every suite)")
    parser.add_argument("--keep-work", action="store_true",
                        help="leave the written lakes and tables under --dir/work after the run")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the ingest's own progress lines")
    args = parser.parse_args(argv)
    if args.events < 1 or args.days < 1 or args.files < 1:
        parser.error("--events, --days and --files must be >= 1")
    args.dir = args.dir.expanduser().resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.only or list(SUITES)
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

    bench = Bench(args=args, landing=landing, stamp=stamp, work=work, suites=names)
    outcomes = {name: suite.run(bench) for name, suite in SUITES.items() if name in names}

    def measurements() -> list[dict]:  # a report may add a failure of its suite, after the table's rows
        return [row for name in REPORTS if name in outcomes for row in outcomes[name].measurements]

    ratio_rows = ratios(measurements())
    print_report(info, stamp, measurements(), ratio_rows)
    for name in REPORTS:
        if name in outcomes:
            SUITES[name].report(outcomes[name], say)

    results = measurements()
    failed_checks = [c for r in results for c in r.get("checks", []) if not c["ok"]]
    failed_checks += [c for outcome in outcomes.values() for c in outcome.checks if not c["ok"]]
    # A baseline that cannot run is reported, not a failure of ours: only our runs set the exit status.
    errors = [r["name"] for r in results if "error" in r and r["name"].startswith("ours")]
    errors += [name for outcome in outcomes.values() for name in outcome.errors]

    def section(name: str) -> dict:
        return outcomes[name].section if name in outcomes else {}

    out = args.dir / "results" / "last.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else argv,
        "machine": info,
        "landing": {**stamp, "path": str(landing)},
        "measurements": results,
        "targets": ratio_rows,
        "queries": section("query"),
        "notify": section("notify"),
        "export": section("export"),
        "retention": section("retention"),
        "api": section("api"),
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


if __name__ == "__main__":
    sys.exit(main())
