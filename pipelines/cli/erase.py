"""``erase-user``: erase one actor's personal data from the lake, as a Dagster run."""

from __future__ import annotations

import argparse

from pipelines.cli.errors import EXIT_OK, UsageError, command, run_failed
from pipelines.cli.options import load_config, settings as load_settings


def register(commands) -> None:
    erase = command(commands, "erase-user",
                    "erase one actor's email, names and IP from the lake (their events stay, pseudonymised)")
    erase.add_argument("user", metavar="USER", help="the actor's uuid or email")
    erase.add_argument("--reason", default=None, help="why (recorded in the user_erased event), e.g. 'GDPR request #123'")
    erase.add_argument("--requested-by", default=None, help="who asked (recorded in the user_erased event)")
    erase.add_argument("--quiet", action="store_true", help="print only the summary")
    erase.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from transforms.erasure import ErasureError, find_user_events
    from transforms.lake import Lake

    config = load_config()
    settings = load_settings()
    try:  # bad input is reported before a run starts
        rows, _ = find_user_events(Lake.at(settings.lake), args.user)
    except ErasureError as exc:
        raise UsageError(str(exc)) from None
    if rows.height == 0:
        raise UsageError(f"no events of {args.user!r} (matched against actor uuid and email)")
    from pipelines.runner import run_erase_user
    from transforms.erasure_requests import drop_request, pending_requests, read_request

    level = "WARNING" if args.quiet else "INFO"
    lake = Lake.at(settings.lake)
    try:
        for request_id in pending_requests(lake):  # left by an interrupted run
            if find_user_events(lake, read_request(lake, request_id)["user"])[0].height == 0:
                drop_request(lake, request_id)  # its erasure was done; only the request was left
                continue
            print(f"Finishing the erasure request {request_id} of an interrupted run first")
            run_erase_user(None, settings, request_id=request_id, log_level=level)
            if find_user_events(lake, args.user)[0].height == 0:
                print(f"{args.user!r} has no events left: the interrupted request erased them")
                return EXIT_OK
        report, _ = run_erase_user(args.user, settings, reason=args.reason, requested_by=args.requested_by,
                                   log_level=level)
    except Exception as exc:
        raise run_failed("erasure", exc) from exc
    grace = config.retention.vacuum_grace
    print(f"Erased the personal data of {report['events']:,} events on {report['days']} day(s); "
          f"they now belong to {report['pseudonym']}")
    print(f"  quarantined lines redacted: {report['quarantine_lines']}, reference rows removed: {report['reference_rows']}")
    print(f"  API exports deleted: {report['exports_deleted']}" + "".join(f"\n    {i}" for i in report["export_ids"])
          + f"\n  Dagster runs naming them deleted: {report['dagster_runs_deleted']}")
    print(f"  the old data files leave storage at the next vacuum after {grace or 'never (vacuum_grace: forever)'} "
          f"(`activitylog retention` runs it); `activitylog verify` still passes")
    return EXIT_OK
