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
    _record(claims)
    what = f"project {claims.project_id}" if claims.project_id is not None else "the whole organization"
    print(f"Viewer token for {what} of {claims.organization_id}, until {expires:%Y-%m-%d %H:%M:%S}Z "
          "(?token= on /, /embed/feed, /embed/history):", file=sys.stderr)
    print(token)
    return EXIT_OK


def _record(claims) -> None:
    """The log's own record of the token (``audit.keys``), spooled into the landing area."""
    from pipelines.cli.options import load_config, settings
    from transforms.audit import audit_event, spool_events

    if not load_config().audit.keys:
        return
    event = audit_event("viewer_token_issued", organization_id=claims.organization_id, project_id=claims.project_id,
                        item_id="viewer-token", name="activitylog keys viewer-token",
                        context={"issued_by": "operator", "expires_at": claims.expires_at})
    try:
        spool_events(settings().landing, [event])
    except OSError as exc:
        raise CommandFailure(f"the token's issue could not be recorded in the landing area ({exc}); "
                             "no token was printed") from None
