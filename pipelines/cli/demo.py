"""``demo``: write sample events, run the whole pipeline on them, print a summary."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from pipelines.cli.errors import EXIT_OK, UsageError, command
from pipelines.cli.ingest import run_pipeline
from pipelines.cli.notify import run_notify
from pipelines.cli.options import load_config, settings as load_settings
from pipelines.cli.output import print_ingest_summary, print_notify_summary

DEMO_START_FILE = "demo.mk"
# The configuration the demo writes beside its lake (subscriptions delivering to a JSONL file).
DEMO_CONFIG = Path(__file__).with_name("demo.yaml")


def register(commands) -> None:
    demo = command(commands, "demo", "generate sample events, run the whole pipeline on them, print a summary")
    demo.add_argument("--landing", help="landing area for the sample (default: $ACTIVITYLOG_LANDING or ./data/landing)")
    demo.add_argument("--events", type=int, default=50_000, help="number of sample events (default 50000)")
    demo.add_argument("--days", type=int, default=30, help="days the sample spans, ending yesterday (default 30)")
    demo.add_argument("--quiet", action="store_true", help="print only the summary")
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.demo import write_demo_landing, write_reference_data

    settings = load_settings()
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
        _demo_start_date(settings, report.start_day)
    config_path = _demo_config(settings)
    summary = run_pipeline(args.quiet)
    print_ingest_summary(summary, settings.lake, time.monotonic() - started)
    config = load_config()
    if config.notifications.subscriptions:
        report = run_notify(settings, None, False, args.quiet)
        print_notify_summary(report)
        files = sorted({d.path for d in config.notifications.destinations.values() if d.type == "file"})
        print(f"  {report['sent']:,} notifications sent to {', '.join(files) or 'the configured destinations'}; "
              f"{report['skipped']:,} skipped as older than {config.notifications.max_event_age} "
              f"(max_event_age in {config_path or 'the configuration file'})")
    from pipelines.checks import run_checks

    checks = run_checks(settings)  # recorded in DAGSTER_HOME: the UI shows the checks evaluated
    chain, ids = checks["integrity_chain"], checks["unique_ids"]
    print(f"Integrity chain: {chain.metadata['days'].value} days, {chain.metadata['events'].value:,} events "
          + ("verify (activitylog verify)" if chain.passed else f"DO NOT verify: {chain.metadata['first_problem'].value}"))
    print(f"Event ids: {'each stored once' if ids.passed else 'REPEATED'} "
          f"({ids.metadata['rows'].value:,} rows; asset checks activity_raw/unique_ids, activity_digests/integrity_chain)")
    print(f"Dagster runs recorded in {os.environ.get('DAGSTER_HOME')}")
    print("Open the UI with `make ui`, then http://127.0.0.1:3000 (runs, asset lineage, partitions).")
    print("Try: .venv/bin/activitylog query --scope FeatureFlag --limit 5")
    return EXIT_OK


def _demo_start_date(settings, first_day) -> None:
    """Daily partitions start at the sample's first day, not at ACTIVITYLOG_START_DATE's default
    (2020-01-01: thousands of empty partitions in the UI). Recorded as ``data/demo.mk``, which the
    Makefile reads, so `make ui` shows the same partitions; an ACTIVITYLOG_START_DATE of your own wins."""
    if os.environ.get("ACTIVITYLOG_START_DATE", "").strip() or "://" in settings.lake:
        return
    os.environ["ACTIVITYLOG_START_DATE"] = first_day.isoformat()
    path = Path(settings.lake).parent / DEMO_START_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Written by `activitylog demo`: daily partitions start at the sample's first day.\n"
                    f"ACTIVITYLOG_START_DATE ?= {first_day.isoformat()}\n")
    print(f"  daily partitions start {first_day} (ACTIVITYLOG_START_DATE, recorded in {path})")


def _demo_config(settings) -> Path | None:
    """The demo's own configuration file beside its lake, unless one is configured already."""
    from pipelines.config import CONFIG_ENV, DEFAULT_CONFIG

    if os.environ.get(CONFIG_ENV, "").strip():
        return Path(os.environ[CONFIG_ENV])
    if Path(DEFAULT_CONFIG).exists() or "://" in settings.lake:
        return Path(DEFAULT_CONFIG) if Path(DEFAULT_CONFIG).exists() else None
    path = Path(settings.lake).parent / "activitylog.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(DEMO_CONFIG.read_text(encoding="utf-8"))
        print(f"Wrote the demo configuration {path} (subscriptions delivering to a JSONL file)")
    os.environ[CONFIG_ENV] = str(path)
    return path
