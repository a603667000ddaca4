"""``ask``: a question in plain language → the filter (as chips), counts and the newest rows. Read-only."""

from __future__ import annotations

import argparse
import json
import sys

from pipelines.cli.errors import EXIT_OK, CommandFailure, UsageError, command
from pipelines.cli.options import settings


def register(commands) -> None:
    ask = command(commands, "ask", "ask in plain language, e.g. \"feature flags deleted by jane@example.com "
                  "in the last 30 days\"")
    ask.add_argument("question", metavar="QUESTION", help="the question (quote it)")
    ask.add_argument("--team-id", type=int, help="only this project")
    ask.add_argument("--top", type=int, default=10, help="newest rows to print (default 10)")
    ask.add_argument("--json", action="store_true", help="print the filter, chips, counts and rows as JSON")
    ask.add_argument("--no-model", action="store_true", help="use the parser even when ask.model is configured")
    ask.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from transforms.ask import AskError, ask
    from transforms.export import format_timestamps
    from transforms.filters import FilterError
    from transforms.lake import Lake

    if args.top < 0:
        raise UsageError("--top must be 0 or a positive number")
    lake = Lake.at(settings().lake)
    propose = None if args.no_model else proposer()
    try:
        result = ask(lake, args.question, fixed={"team_ids": [args.team_id]} if args.team_id is not None else None,
                     top=args.top, propose=propose)
    except (AskError, FilterError) as exc:
        raise UsageError(str(exc)) from None
    if result is None:
        raise CommandFailure(f"no activity_log table in {lake.root}: run `activitylog ingest` first")
    if args.json:
        print(json.dumps(result.to_dict(), default=str, indent=2))
        return EXIT_OK
    print("Filter: " + "  ".join(f"[{chip.label}]" for chip in result.answer.chips))
    print("        " + " ".join(f"{chip.param}={chip.value}" for chip in result.answer.chips))
    for warning in result.answer.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{result.total} events" + ("" if not result.counts else ": " + ", ".join(
        f"{scope} {activity} {events}" for scope, activity, events in result.counts[:10])))
    for row in format_timestamps(result.rows).iter_rows(named=True):
        actor = row.get("actor_email") or ("System" if row.get("is_system") else "someone")
        flag = " (impersonated)" if row.get("was_impersonated") else ""
        print(f"  {row['created_at']}  {row['scope']} {row['item_id']} {row['activity']}  {actor}{flag}")
        if row.get("summary"):
            print(f"      {row['summary']}")
    if result.more:
        print(f"more: activitylog query " + " ".join(_flags(result.answer)), file=sys.stderr)
    return EXIT_OK


def proposer():
    """The ``ask.model`` endpoint's proposer, or None (the parser) without one."""
    from pipelines.askmodel import model_proposer
    from pipelines.config import AskConfig, ConfigError
    from pipelines.config.loader import load_section

    try:
        config = load_section("ask", AskConfig)
        return model_proposer(config.model) if config.model else None
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _flags(answer) -> list[str]:
    import shlex

    names = {"start_date": "--start", "end_date": "--end", "users": "--user", "scopes": "--scope",
             "activities": "--activity", "item_ids": "--item-id", "search_text": "--search"}
    out = []
    for chip in answer.chips:
        if chip.param in names:
            out += [names[chip.param], shlex.quote(chip.value)]
        elif chip.param == "was_impersonated":
            out.append("--impersonated" if chip.value == "true" else "--not-impersonated")
        elif chip.param == "is_system":
            out.append("--system" if chip.value == "true" else "--not-system")
    return out
