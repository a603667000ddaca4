"""``hold add|remove|list``: legal holds retention never deletes from (the lake's ``legal_holds`` table,
beside the configuration's ``retention.holds``). Each change is logged as a system event. No Dagster."""

from __future__ import annotations

import argparse
import sys

from pipelines.cli.errors import EXIT_OK, LAKE_HELP, CommandFailure, UsageError, command
from pipelines.cli.options import load_config, require_lake, settings


def register(commands) -> None:
    hold = command(commands, "hold", "legal holds: organizations and projects retention never deletes from")
    hold.set_defaults(handler=run)
    hold_commands = hold.add_subparsers(dest="hold_command", required=True, metavar="add|remove|list")

    def hold_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = hold_commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--lake", default=argparse.SUPPRESS, help=LAKE_HELP)  # as `keys`: before or after
        return sub

    for name, help_text in (("add", "put an organization or a project under a legal hold"),
                            ("remove", "lift a legal hold added with `hold add`")):
        sub = hold_command(name, help_text)
        sub.add_argument("--organization", metavar="ORG_ID", help="an organization id")
        sub.add_argument("--project", metavar="TEAM_ID", help="a project (team) id")
        if name == "add":
            sub.add_argument("--reason", help="why (kept with the hold and in its system event)")
    hold_command("list", "the active legal holds, the configuration's included")


def _target(args: argparse.Namespace) -> tuple[str, str | int]:
    """(kind, id) from exactly one of --organization and --project."""
    from transforms.holds import ORGANIZATION, PROJECT

    if (args.organization is None) == (args.project is None):
        raise UsageError(f"hold {args.hold_command}: give either --organization ORG_ID or --project TEAM_ID"
                         + (", not both" if args.organization is not None else ""))
    if args.organization is not None:
        if not args.organization.strip():
            raise UsageError("--organization: an organization id is a non-empty string")
        return ORGANIZATION, args.organization.strip()
    try:
        return PROJECT, int(args.project.strip())
    except ValueError:
        raise UsageError(f"--project {args.project!r} is not a project id (an integer team id)") from None


def _configured(config) -> list:
    from transforms.holds import ORGANIZATION, PROJECT, Hold

    holds = config.retention.holds
    return ([Hold(ORGANIZATION, o, source="configuration") for o in holds.organizations]
            + [Hold(PROJECT, p, source="configuration") for p in holds.projects])


def run(args: argparse.Namespace) -> int:
    from transforms.holds import HoldError, HoldNotRecorded, active_holds, add_recorded, remove_recorded
    from transforms.lake import Lake

    config = load_config()  # before anything changes: a bad file stops the command here
    lake = Lake.at(settings().lake)
    require_lake(lake)
    configured = _configured(config)
    where = f"retention.holds of {config.source}" if config.source else "retention.holds of the configuration file"
    if args.hold_command == "list":
        holds = configured + active_holds(lake)
        if not holds:
            print("No legal holds (activitylog hold add --organization ORG_ID | --project TEAM_ID).")
        for hold in holds:
            origin = (f"configuration ({where})" if hold.source == "configuration"
                      else f"since {hold.added_at:%Y-%m-%d %H:%M}Z")
            print(f"{hold.kind:<13}{str(hold.id):<24}{origin}" + (f"  {hold.reason}" if hold.reason else ""))
        return EXIT_OK
    kind, key = _target(args)
    in_configuration = any(h.kind == kind and h.id == key for h in configured)
    if args.hold_command == "add":
        _warn_if_unknown(lake, kind, key)
        try:
            hold = add_recorded(lake, kind, key, args.reason, settings().validation)
        except HoldError as exc:
            raise UsageError(str(exc)) from None
        except HoldNotRecorded as exc:
            raise CommandFailure(str(exc)) from None
        print(f"Legal hold added: {hold.label}" + (f" ({hold.reason})" if hold.reason else "")
              + "; retention keeps its events. Recorded as a legal_hold_added system event.")
        if in_configuration:
            print(f"({hold.label} is also held by {where}.)")
        return EXIT_OK
    if in_configuration and not any(h.kind == kind and h.id == key for h in active_holds(lake)):
        raise UsageError(f"{kind} {key} is held by the configuration ({where}): `hold remove` lifts only holds "
                         "added with `hold add`; remove it from the configuration file instead")
    try:
        hold = remove_recorded(lake, kind, key, settings().validation)
    except HoldError as exc:
        raise UsageError(str(exc)) from None
    except HoldNotRecorded as exc:
        raise CommandFailure(str(exc)) from None
    print(f"Legal hold removed: {hold.label}. Recorded as a legal_hold_removed system event.")
    if in_configuration:
        print(f"{hold.label} stays held: {where} holds it too.")
    return EXIT_OK


def _warn_if_unknown(lake, kind: str, key) -> None:
    """A hold on an id the lake does not know yet is kept (events may come later), with a warning: a
    typo would hold nothing."""
    from transforms.keys import tenants

    known = tenants(lake)
    if key not in (known.organizations if kind == "organization" else known.project_organizations):
        print(f"activitylog hold: warning: no reference data or event names {kind} {key} yet; "
              "the hold is kept for the events to come", file=sys.stderr)

