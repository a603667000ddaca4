"""``history``: one resource's change history, newest first. Read-only: no Dagster."""

from __future__ import annotations

import argparse
import sys

from pipelines.cli.errors import EXIT_OK, CommandFailure, UsageError, command
from pipelines.cli.options import read_window, settings
from pipelines.cli.output import next_page_command, print_rows, short


def register(commands) -> None:
    history = command(commands, "history", "one resource's change history, newest first")
    history.add_argument("scope", metavar="SCOPE", help="resource type, e.g. FeatureFlag")
    history.add_argument("item_id", metavar="ITEM_ID", help="the resource's id")
    history.add_argument("--team-id", type=int, help="project id (item ids are unique per project)")
    history.add_argument("--format", choices=["table", "jsonl", "csv"], default="table")
    history.add_argument("--limit", type=int, default=0, help="at most N events (default 0 = all); "
                         "how many more exist is printed, with the command for the next page")
    history.add_argument("--after", metavar="CURSOR", help="the next page: the cursor printed after the previous page")
    history.add_argument("--window", metavar="DURATION", help="read-time look-back, e.g. 7d, 2mo, 5y "
                         "(default: $ACTIVITYLOG_READ_WINDOW, else none)")
    history.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from transforms.filters import FilterError
    from transforms.history import item_history
    from transforms.lake import ACTIVITY_LOG, Lake

    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or a positive number")
    lake = Lake.at(settings().lake)
    try:
        result = item_history(lake, args.scope, args.item_id, team_id=args.team_id,
                              read_window=read_window(args), limit=args.limit or None, after=args.after)
    except FilterError as exc:
        raise UsageError(str(exc.problem.renamed({"after": "--after"}))) from None
    if result is None:
        hint = "run `activitylog ingest` first" if not lake.exists(ACTIVITY_LOG) else \
            "it is built by the next refresh: run `activitylog ingest`"
        raise CommandFailure(f"no activity_item_history table in {lake.root}: {hint}")
    rows = result.rows
    if args.format != "table":
        print_rows(rows, args.format, [])
        _print_more(args, result)
        return EXIT_OK
    if rows.height == 0:
        print(f"No events for {args.scope} {args.item_id}" + (f" in project {args.team_id}" if args.team_id else "")
              + (" after that cursor" if args.after else ""))
        return EXIT_OK
    for row in rows.iter_rows(named=True):
        actor = row["actor_name"] or row["actor_email"] or ("System" if row["is_system"] else "someone")
        print(f"{row['created_at']:%Y-%m-%d %H:%M:%SZ}  {row['activity']:<10} {actor}  (project {row['team_id']})"
              if row["team_id"] is not None else
              f"{row['created_at']:%Y-%m-%d %H:%M:%SZ}  {row['activity']:<10} {actor}")
        print(f"    {row['summary']}")
        for change in row["changes"] or []:
            print(f"      {change['field'] or '?'}: {short(change['before'])} → {short(change['after'])}")
    print(f"{rows.height} events" + (f" of {result.total}" if result.remaining else ""), file=sys.stderr)
    _print_more(args, result)
    return EXIT_OK


def _print_more(args: argparse.Namespace, result) -> None:
    """How many events are beyond ``--limit``, and the command that prints the next page."""
    if result.remaining and result.next_cursor:
        selection = ["--team-id", str(args.team_id)] if args.team_id is not None else []
        print(f"{result.remaining} more events: "
              f"{next_page_command(args, result.next_cursor, selection, [args.scope, args.item_id])}", file=sys.stderr)
