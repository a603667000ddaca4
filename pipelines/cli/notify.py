"""``notify``: evaluate subscriptions and deliver, exactly once, as a Dagster run."""

from __future__ import annotations

import argparse
import sys

from pipelines.cli.errors import EXIT_FAILURE, EXIT_OK, UsageError, command, run_failed
from pipelines.cli.options import iso_days, load_config, settings as load_settings
from pipelines.cli.output import print_notify_summary


def register(commands) -> None:
    notify = command(commands, "notify", "evaluate subscriptions for days not yet evaluated and deliver (exactly once)")
    notify.add_argument("--day", action="append", default=[], metavar="YYYY-MM-DD",
                        help="evaluate this day (repeatable; default: every day written since its last evaluation)")
    notify.add_argument("--retry-failed", action="store_true", help="send the failed deliveries (dead letters) again")
    notify.add_argument("--test", metavar="SUBSCRIPTION",
                        help="send one sample message of this subscription to its destinations (not recorded)")
    notify.add_argument("--quiet", action="store_true", help="print only the summary")
    notify.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_config()
    settings = load_settings()
    if args.test:
        from destinations.dispatch import send_test
        from pipelines.config import ConfigError
        from transforms.lake import Lake

        try:
            problems = send_test(Lake.at(settings.lake), config.notifications, args.test)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        for problem in problems:
            print(f"activitylog notify: {problem}", file=sys.stderr)
        return EXIT_FAILURE if problems else EXIT_OK
    if args.retry_failed and args.day:
        raise UsageError("--retry-failed retries every failed delivery: it takes no --day")
    days = sorted(set(iso_days("--day", args.day))) or None
    if not config.notifications.subscriptions:
        print("No subscriptions configured (notifications.subscriptions in the configuration file).")
        return EXIT_OK
    report = run_notify(settings, days, args.retry_failed, args.quiet)
    print_notify_summary(report)
    return EXIT_OK


def run_notify(settings, days, retry_failed: bool, quiet: bool) -> dict:
    """One notify run; a failed run is the command's failure (its error and dead letters are in its logs)."""
    from pipelines.runner import run_notify as run_notify_job

    try:
        report, _ = run_notify_job(settings, days=days, retry_failed=retry_failed,
                                   log_level="WARNING" if quiet else "INFO")
    except Exception as exc:  # the run failed: its error (and the dead letters) are in the run's logs
        raise run_failed("notify", exc) from exc
    return report
