"""``verify``: recompute the integrity chain. Read-only: no Dagster."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pipelines.cli.errors import EXIT_OK, CommandFailure, UsageError, command
from pipelines.cli.options import iso_days, settings


def register(commands) -> None:
    verify = command(commands, "verify", "recompute the integrity chain; exit 1 naming the first bad day")
    verify.add_argument("--day", action="append", default=[], metavar="YYYY-MM-DD",
                        help="check only these days' data (every digest and link is always checked)")
    verify.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from datetime import date

    from transforms.integrity import ACTIVITY_DIGESTS, table_on_storage, verify
    from transforms.lake import Lake, is_remote

    days = iso_days("--day", args.day) or None
    lake = Lake.at(settings().lake)
    if not is_remote(lake.root) and not Path(lake.root).is_dir():
        raise UsageError(f"no lake at {lake.root}: the directory does not exist")
    if not table_on_storage(lake, ACTIVITY_DIGESTS):
        raise CommandFailure(f"no activity_digests table in {lake.root}: run `activitylog ingest` first")
    started = time.monotonic()
    report = verify(lake, days)
    if report.ok:
        print(f"OK: {report.days} days, {report.events:,} events and {report.digest_rows} digest rows verify "
              f"({time.monotonic() - started:.1f}s)")
        return EXIT_OK
    for problem in sorted(report.problems, key=lambda p: (p.day or date.min, p.kind)):
        print(f"TAMPERED {problem}")
    first = report.first()
    if first.table:  # a damaged table or file: named with its table (and day, when it has one)
        where = " ".join(x for x in (first.table, first.day and first.day.isoformat()) if x)
        raise CommandFailure(f"integrity chain broken: {where}: {first.kind}")
    raise CommandFailure(f"integrity chain broken: first bad day {first.day}: {first.kind}")
