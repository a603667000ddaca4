"""``keys viewer-token``: a short-lived signed token for the page (``?token=`` on ``/``, ``/embed/…``),
signed with the page's secret (``pipelines/web/tokens.py``). A subcommand of ``keys``. No Dagster."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from pipelines.cli.errors import EXIT_OK, CommandFailure, UsageError


def add_to(key_command) -> None:
    """The subcommand, on ``keys``'s subparsers (``key_command(name, help)`` adds ``--lake``)."""
    viewer = key_command("viewer-token", "a short-lived signed token for the page (?token= on /, /embed/...)")
    viewer.add_argument("--project", type=int, help="the project it shows (its organization from the lake)")
    viewer.add_argument("--organization", help="the organization: with --project, checked; alone, all of it")
    viewer.add_argument("--ttl", default="15m", help="how long it lives: 900s, 15m, 2h ... up to 24h (default 15m)")


def run(args: argparse.Namespace, lake) -> int:
    from pipelines.web.tokens import issue

    try:
        token, claims = issue(lake, args.project, args.organization, args.ttl)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise CommandFailure(f"the page secret cannot be read or made: {exc}") from None
    expires = datetime.fromtimestamp(claims.expires_at, timezone.utc)
    what = f"project {claims.project_id}" if claims.project_id is not None else "the whole organization"
    print(f"Viewer token for {what} of {claims.organization_id}, until {expires:%Y-%m-%d %H:%M:%S}Z "
          "(?token= on /, /embed/feed, /embed/history):", file=sys.stderr)
    print(token)
    return EXIT_OK
