"""The ``activitylog`` command line.

Commands that change the lake run the Dagster jobs (recorded in DAGSTER_HOME, visible in the UI);
read-only commands call ``transforms`` directly and never import Dagster.
Exit codes: 0 ok, 1 the command's own failure, 2 bad usage or bad input (one-line reason on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad usage or bad input: exit 2."""


class CommandFailure(Exception):
    """The command could not do its job: exit 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="activitylog", description="Activity log pipeline on a Delta Lake.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--lake", help="lake root: a path or s3://bucket/prefix (default: $ACTIVITYLOG_LAKE or ./data/lake)")
        return sub

    demo = command("demo", "generate sample events, run the whole pipeline on them, print a summary")
    demo.add_argument("--landing", help="landing area for the sample (default: $ACTIVITYLOG_LANDING or ./data/landing)")
    demo.add_argument("--events", type=int, default=50_000, help="number of sample events (default 50000)")
    demo.add_argument("--days", type=int, default=30, help="days the sample spans, ending yesterday (default 30)")
    demo.add_argument("--quiet", action="store_true", help="print only the summary")

    ingest = command("ingest", "ingest new landing files and refresh the days they changed")
    ingest.add_argument("--landing", help="a directory or s3:// prefix (default: $ACTIVITYLOG_LANDING or ./data/landing)")
    ingest.add_argument("--quiet", action="store_true", help="print only the summary")

    query = command("query", "find events in activity_log, newest first")
    _add_filter_flags(query)
    query.add_argument("--format", choices=["table", "jsonl", "csv"], default="table")
    query.add_argument("--limit", type=int, default=100, help="at most N rows (default 100; 0 = all)")
    return parser


def _add_filter_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", help="from this date or timestamp, inclusive (UTC)")
    parser.add_argument("--end", help="until this date (whole day) or timestamp, inclusive (UTC)")
    parser.add_argument("--scope", action="append", default=[], help="resource type, e.g. FeatureFlag (repeatable)")
    parser.add_argument("--activity", action="append", default=[], help="e.g. updated (repeatable)")
    parser.add_argument("--item-id", action="append", default=[], help="resource id (repeatable)")
    parser.add_argument("--user", action="append", default=[], help="actor uuid or email (repeatable)")
    parser.add_argument("--team-id", action="append", default=[], type=int, help="project id (repeatable)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.lake:
        os.environ["ACTIVITYLOG_LAKE"] = args.lake
    if getattr(args, "landing", None):
        os.environ["ACTIVITYLOG_LANDING"] = args.landing
    handler = {"demo": _demo, "ingest": _ingest, "query": _query}[args.command]
    try:
        return handler(args)
    except UsageError as exc:
        print(f"activitylog {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandFailure as exc:
        print(f"activitylog {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _settings():
    from pipelines.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise UsageError(str(exc)) from None


# ------------------------------------------------------------------------------------------------
# demo and ingest: run the Dagster jobs


def _run_pipeline(quiet: bool) -> dict:
    from transforms.landing import LandingError, list_landing

    from pipelines.config import ConfigError, load_config

    settings = _settings()
    try:  # bad input is reported before any run starts
        load_config()
        list_landing(settings.landing)
    except (LandingError, ConfigError) as exc:
        raise UsageError(str(exc)) from None
    try:
        from pipelines.runner import run_ingest

        result = run_ingest(settings, log_level="WARNING" if quiet else "INFO")
    except LandingError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:  # a failed Dagster run: its error is in the run's logs too
        raise CommandFailure(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    return {**result.ingest, "run_ids": result.run_ids}


def _print_summary(summary: dict, lake: str, elapsed: float) -> None:
    print()
    print(f"Ingested {summary['files_ingested']} files in {elapsed:.1f}s "
          f"({summary['files_skipped']} already ingested, skipped)")
    print(f"  lines read      {summary['lines']:>10,}")
    print(f"  accepted        {summary['accepted']:>10,}")
    print(f"  duplicates      {summary['duplicates']:>10,}")
    print(f"  quarantined     {summary['quarantined']:>10,}")
    for reason, count in summary["quarantine_reasons"].items():
        print(f"      {count:>6,}  {reason}")
    days = summary["days_changed"]
    if days:
        print(f"  days written    {len(days):>10,}  ({days[0]} … {days[-1]})")
    else:
        print("  days written             0  (nothing new)")
    for changed in summary["files_changed"]:
        print(f"  WARNING: {changed} changed after it was ingested and was not read again")
    print(f"Lake: {lake}")


def _ingest(args: argparse.Namespace) -> int:
    started = time.monotonic()
    summary = _run_pipeline(args.quiet)
    _print_summary(summary, _settings().lake, time.monotonic() - started)
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from transforms.sample import write_demo_landing, write_reference_data

    settings = _settings()
    landing = Path(settings.landing)
    if "://" in settings.landing:
        raise UsageError("the demo writes its sample to a local landing directory; unset ACTIVITYLOG_LANDING or pass --landing DIR")
    if args.events <= 0 or args.days <= 0:
        raise UsageError("--events and --days must be positive")
    started = time.monotonic()
    if landing.exists() and any(landing.iterdir()):
        print(f"Sample already in {landing}: ingesting what is new (delete ./data to start over)")
    else:
        print(f"Writing {args.events:,} sample events over {args.days} days to {landing} …")
        report = write_demo_landing(landing, events=args.events, days=args.days)
        if "://" not in settings.lake:  # reference tables the enrichment finds under <lake>/reference/
            write_reference_data(Path(settings.lake) / "reference")
        print(f"  {len(report.files)} files, {report.events:,} events, {report.duplicate_lines} duplicate lines, "
              f"{report.malformed_lines} malformed lines, {report.late_events:,} late events")
    summary = _run_pipeline(args.quiet)
    _print_summary(summary, settings.lake, time.monotonic() - started)
    print(f"Dagster runs recorded in {os.environ.get('DAGSTER_HOME')}")
    print("Open the UI with `make ui`, then http://127.0.0.1:3000 (runs, asset lineage, partitions).")
    print("Try: .venv/bin/activitylog query --scope FeatureFlag --limit 5")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------
# query: read-only, no Dagster


def _query(args: argparse.Namespace) -> int:
    import polars as pl

    from transforms.lake import Lake
    from transforms.query import BasicFilter, FilterError, parse_moment, query

    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or a positive number")
    try:
        activity_filter = BasicFilter(
            start=parse_moment(args.start, "--start") if args.start else None,
            end=parse_moment(args.end, "--end") if args.end else None,
            scopes=args.scope, activities=args.activity, item_ids=args.item_id,
            users=args.user, team_ids=args.team_id,
        )
    except FilterError as exc:
        raise UsageError(str(exc)) from None
    settings = _settings()
    frame = query(Lake.at(settings.lake), activity_filter, limit=args.limit or None)
    if frame is None:
        raise CommandFailure(f"no activity_log table in {settings.lake}: run `activitylog ingest` first")
    rows = frame.collect()
    out = sys.stdout
    if args.format == "jsonl":
        rows.write_ndjson(out)
    elif args.format == "csv":  # CSV cells are flat: lists become "a,b"
        rows.with_columns(pl.col(pl.List(pl.String)).list.join(",")).write_csv(out)
    else:
        columns = ["created_at", "scope", "activity", "item_id", "team_id", "summary"]
        with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=100, tbl_width_chars=200,
                       tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
            print(rows.select(c for c in columns if c in rows.columns), file=out)
        print(f"{rows.height} rows", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
