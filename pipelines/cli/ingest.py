"""``ingest`` and ``backfill``: run the Dagster jobs that change the lake."""

from __future__ import annotations

import argparse
import os
import sys
import time

from pipelines.cli.errors import EXIT_OK, CommandFailure, UsageError, command
from pipelines.cli.options import iso_days, settings as load_settings
from pipelines.cli.output import print_ingest_summary


def register(commands) -> None:
    ingest = command(commands, "ingest", "ingest new landing files and refresh the days they changed")
    ingest.add_argument("--landing", help="a directory or s3:// prefix (default: $ACTIVITYLOG_LANDING or ./data/landing)")
    ingest.add_argument("--quiet", action="store_true", help="print only the summary")
    ingest.set_defaults(handler=run_ingest_command)

    backfill = command(commands, "backfill", "refresh (normalize + enrich) many days, several runs at once")
    backfill.add_argument("--start", metavar="YYYY-MM-DD", help="first day (default: the first day of activity_raw)")
    backfill.add_argument("--end", metavar="YYYY-MM-DD", help="last day (default: the last day of activity_raw)")
    # One run already keeps about four cores busy (Polars is multi-threaded): more workers than that
    # only pay off with cores to spare (measured: on 2 cores, 4 workers took 1.1x as long as one).
    backfill.add_argument("--workers", type=int, default=max(1, min(4, (os.cpu_count() or 1) // 4)),
                          help="runs at once, each in its own process (default: one per 4 cores, at most 4)")
    backfill.add_argument("--days-per-run", type=int, default=None, metavar="N",
                          help="days per run (default 31, as the assets' backfill policy)")
    backfill.add_argument("--quiet", action="store_true", help="print only the summary")
    backfill.set_defaults(handler=run_backfill_command)


def run_pipeline(quiet: bool) -> dict:
    """One ingest run (ingest, then refresh the changed days); bad input is refused before it starts."""
    from transforms.landing import LandingError, list_landing

    from pipelines.config import ConfigError, load_config

    settings = load_settings()
    try:  # bad input is reported before any run starts
        load_config()
        list_landing(settings.landing)
    except (LandingError, ConfigError) as exc:
        raise UsageError(str(exc)) from None
    from pipelines.runner import first_line, run_ingest

    try:
        result = run_ingest(settings, log_level="WARNING" if quiet else "INFO")
    except LandingError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:  # a failed Dagster run: its error is in the run's logs too
        raise CommandFailure(first_line(exc)) from exc
    return {**result.ingest, "run_ids": result.run_ids}


def run_ingest_command(args: argparse.Namespace) -> int:
    started = time.monotonic()
    summary = run_pipeline(args.quiet)
    print_ingest_summary(summary, load_settings().lake, time.monotonic() - started)
    return EXIT_OK


def run_backfill_command(args: argparse.Namespace) -> int:
    from transforms.lake import ACTIVITY_RAW, Lake
    from transforms.refresh import BACKFILL_DAYS_PER_RUN

    settings = load_settings()
    bounds = {name: (iso_days(f"--{name}", [getattr(args, name)]) or [None])[0] if getattr(args, name) else None
              for name in ("start", "end")}
    if bounds["start"] and bounds["end"] and bounds["start"] > bounds["end"]:
        raise UsageError(f"--start {bounds['start']} is after --end {bounds['end']}")
    days_per_run = args.days_per_run or BACKFILL_DAYS_PER_RUN
    if args.workers < 1 or days_per_run < 1:
        raise UsageError("--workers and --days-per-run must be at least 1")
    days = [d for d in Lake.at(settings.lake).days(ACTIVITY_RAW)
            if (bounds["start"] is None or d >= bounds["start"]) and (bounds["end"] is None or d <= bounds["end"])]
    if not days:
        print(f"No days of activity_raw in that range (lake: {settings.lake}); nothing to refresh.")
        return EXIT_OK
    from pipelines.runner import run_backfill

    started = time.monotonic()
    print(f"Refreshing {len(days)} days ({days[0]} … {days[-1]}), up to {days_per_run} days per run, "
          f"{args.workers} at once")
    result = run_backfill(days, settings, workers=args.workers, days_per_run=days_per_run,
                          log_level="ERROR", progress=None if args.quiet else print)
    elapsed = time.monotonic() - started
    print(f"Backfill: {len(result.run_ids)} of {len(result.ranges)} runs succeeded in {elapsed:.1f}s "
          f"({len(days) / elapsed:.1f} days/s)")
    if result.failed:
        for first, last, error in result.failed:
            print(f"  failed: {first} … {last}: {error}", file=sys.stderr)
        raise CommandFailure(f"{len(result.failed)} runs failed; run the command again for those days "
                             "(refreshing a day is idempotent)")
    return EXIT_OK
