"""``query``: find events in activity_log, newest first. Read-only: no Dagster."""

from __future__ import annotations

import argparse
import sys

from pipelines.cli.errors import EXIT_OK, CommandFailure, UsageError, command
from pipelines.cli.options import add_filter_flags, filter_from_args, read_window, settings
from pipelines.cli.output import filter_flag_tokens, next_page_command, print_rows


def register(commands) -> None:
    query = command(commands, "query", "find events in activity_log, newest first")
    add_filter_flags(query)
    query.add_argument("--format", choices=["table", "jsonl", "csv"], default="table")
    query.add_argument("--limit", type=int, default=100, help="rows per page (default 100; 0 = every matching row)")
    query.add_argument("--after", metavar="CURSOR", help="the next page: the cursor printed after the previous page")
    query.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from transforms.filters import FilterError
    from transforms.lake import Lake
    from transforms.query import query, query_page

    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or a positive number")
    activity_filter = filter_from_args(args)
    window = read_window(args)
    lake = Lake.at(settings().lake)
    try:
        if args.limit:
            page = query_page(lake, activity_filter, limit=args.limit, after=args.after, read_window=window)
            rows, cursor = (page.rows, page.next_cursor) if page else (None, None)
        else:
            frame = query(lake, activity_filter, after=args.after, read_window=window)
            rows, cursor = (frame.collect() if frame is not None else None), None
    except FilterError as exc:
        raise UsageError(str(exc.problem.renamed({"after": "--after", "limit": "--limit"}))) from None
    if rows is None:
        raise CommandFailure(f"no activity_log table in {lake.root}: run `activitylog ingest` first")
    print_rows(rows, args.format, ["created_at", "scope", "activity", "item_id", "actor", "summary"])
    if cursor:
        print(f"more rows: {next_page_command(args, cursor, filter_flag_tokens(args))}", file=sys.stderr)
    return EXIT_OK
