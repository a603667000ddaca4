"""``retention``: delete what the retention policy expires, as a Dagster run."""

from __future__ import annotations

import argparse

from pipelines.cli.errors import EXIT_OK, command, run_failed
from pipelines.cli.options import load_config, settings


def register(commands) -> None:
    retention = command(commands, "retention", "delete what the retention policy expires (then vacuum after the grace)")
    retention.add_argument("--dry-run", action="store_true", help="print what would go, per table and policy; change nothing")
    retention.add_argument("--quiet", action="store_true", help="print only the summary")
    retention.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_config()
    if not config.retention.configured and args.dry_run:
        print("No retention policy configured (the retention: section of the configuration file): nothing expires.")
        return EXIT_OK
    from pipelines.runner import run_retention

    try:
        report, _ = run_retention(settings(), dry_run=args.dry_run, log_level="WARNING" if args.quiet else "INFO")
    except Exception as exc:
        raise run_failed("retention", exc) from exc
    if not report["configured"]:
        print("No retention policy configured: nothing expires. Vacuum: files deleted more than "
              f"{report['vacuum_grace']} ago removed ({sum(report['vacuumed_files'].values()):,} files)")
        return EXIT_OK
    verb = "Would delete" if args.dry_run else "Deleted"
    whole = report["whole_days"]
    print(f"{verb}: {whole['count']} whole day(s)" + (f" ({whole['first']} … {whole['last']})" if whole["count"] else "")
          + f", expired rows in {report['partial_days']} more day(s)")
    print("  cut-offs: " + ", ".join(f"{k} {v[:19] + 'Z' if v else 'forever'}" for k, v in report["cutoffs"].items()))
    print(f"  {'table':<26}{'rows':>12}")
    for table, rows in report["deleted"].items():
        print(f"  {table:<26}{rows:>12,}")
    if report["deleted_by_policy"]:
        print("  activity_raw rows by policy: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report["deleted_by_policy"].items())))
    held = report.get("held") or {}
    if held.get("organizations") or held.get("projects"):
        holds = [f"{kind} {', '.join(map(str, held[kind]))}" for kind in ("organizations", "projects") if held[kind]]
        print(f"  held: {held['rows']:,} rows kept (legal hold: {'; '.join(holds)}); "
              "no day is deleted whole and the quarantine is kept while a hold is active")
    if not args.dry_run:
        print(f"  vacuum: files deleted more than {report['vacuum_grace']} ago removed "
              f"({sum(report['vacuumed_files'].values()):,} files); recorded as a retention_deleted system event")
    return EXIT_OK
