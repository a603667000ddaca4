"""``stream``: deliver the SIEM streams up to now, as a Dagster run."""

from __future__ import annotations

import argparse

from pipelines.cli.errors import EXIT_OK, UsageError, command, run_failed
from pipelines.cli.options import load_config, settings


def register(commands) -> None:
    stream = command(commands, "stream", "deliver SIEM streams (the streams: section) up to now")
    stream.add_argument("name", nargs="?", metavar="NAME", help="one stream (default: every stream)")
    stream.add_argument("--quiet", action="store_true", help="print only the summary")
    stream.add_argument("--status", action="store_true",
                        help="print each stream's state (ok, degraded, failing, paused), last error and lag; send nothing")
    stream.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_config()
    if not config.streams:
        print("No streams configured (the streams: section of the configuration file).")
        return EXIT_OK
    if args.name and args.name not in config.streams:
        raise UsageError(f"no stream named {args.name!r} (streams: {', '.join(sorted(config.streams))})")
    if args.status:
        return status(config, args.name)
    from pipelines.runner import run_stream

    try:
        report, _ = run_stream(settings(), names=[args.name] if args.name else None,
                               log_level="WARNING" if args.quiet else "INFO")
    except Exception as exc:  # the run failed: a paused stream; its error is in the run's logs too
        raise run_failed("stream", exc) from exc
    print(f"  {'stream':<24}{'days':>6}{'sent':>10}{'batches':>9}  status")
    for row in report["streams"]:
        print(f"  {row['stream']:<24}{row['days']:>6}{row['sent']:>10,}{row['batches']:>9}  {row['status']}")
    return EXIT_OK


def status(config, name: str | None) -> int:
    from transforms.lake import Lake
    from transforms.streams import status_rows

    streams = {n: s for n, s in config.streams.items() if name in (None, n)}
    rows = status_rows(Lake.at(settings().lake), streams)
    print(f"  {'stream':<24}{'state':<10}{'since':<22}{'days due':>9}{'events':>10}{'oldest':>10}  last error")
    for row in rows:
        since = row["since"].strftime("%Y-%m-%d %H:%M:%S") if row["since"] else "-"
        age = row["oldest_age_seconds"]
        oldest = "-" if age is None else (f"{age / 86400:.1f}d" if age >= 86400 else f"{age / 3600:.1f}h")
        print(f"  {row['stream']:<24}{row['state']:<10}{since:<22}{row['days']:>9}{row['events']:>10,}{oldest:>10}"
              f"  {row['last_error'] or '-'}")
    return EXIT_OK
