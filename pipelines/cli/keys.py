"""``keys create|list|revoke``: scoped API keys for ``serve``. No Dagster."""

from __future__ import annotations

import argparse

from pipelines.cli import viewer_token
from pipelines.cli.errors import EXIT_OK, LAKE_HELP, CommandFailure, UsageError, command
from pipelines.cli.options import load_config, require_lake, settings


def register(commands) -> None:
    keys = command(commands, "keys", "scoped API keys for `serve`")
    keys.set_defaults(handler=run)
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="create|list|revoke|viewer-token")

    def key_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = key_commands.add_parser(name, help=help_text, description=help_text)
        # --lake after the subcommand too (`keys create --lake X`), as every other command takes it;
        # SUPPRESS: when absent here, the value given before the subcommand (or none) stands.
        sub.add_argument("--lake", default=argparse.SUPPRESS, help=LAKE_HELP)
        return sub

    create = key_command("create", "create a key; prints it once, on the last line")
    create.add_argument("--organization", required=True,
                        help="the organization id the key belongs to (known from reference data or the events)")
    create.add_argument("--project", action="append", type=int, default=[],
                        help="a project of that organization it may read (repeatable)")
    create.add_argument("--admin", action="store_true", help="organization admin: every project, the organization endpoint")
    create.add_argument("--scope", action="append", default=[], help="default activity_log:read")
    create.add_argument("--label", help="a note to recognise the key by")
    key_command("list", "keys (ids, never secrets)")
    revoke = key_command("revoke", "revoke a key (by id or the whole key)")
    revoke.add_argument("key_id", metavar="KEY_ID")
    viewer_token.add_to(key_command)


def run(args: argparse.Namespace) -> int:
    from transforms.keys import create_key, list_keys, revoke_key
    from transforms.lake import Lake

    lake = Lake.at(settings().lake)
    require_lake(lake)
    if args.keys_command == "viewer-token":
        return viewer_token.run(args, lake)
    if args.keys_command == "create":
        from transforms.reference import ReferenceError, lake_reference_uris, load_references

        config = load_config()
        try:  # the configured reference tables win over the ones under <lake>/reference/, as in enrichment
            references = load_references({**lake_reference_uris(lake.root), **config.reference.uris()})
        except ReferenceError as exc:
            raise UsageError(str(exc)) from None
        try:
            token, key = create_key(lake, args.organization, args.project, admin=args.admin,
                                    scopes=args.scope or None, label=args.label, references=references)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        try:
            _record(config, "key_created", key)
        except OSError as exc:  # nothing un-audited stays usable
            revoke_key(lake, key.key_id)
            raise CommandFailure(f"the key's creation could not be recorded in the landing area ({exc}); "
                                 f"key {key.key_id} was revoked at once") from None
        print(f"Key {key.key_id} for organization {key.organization_id}: "
              f"{'admin (every project)' if key.admin else 'projects ' + ', '.join(map(str, key.projects))}; "
              f"scopes {', '.join(key.scopes)}. Shown once; only its hash is stored:")
        print(token)
        return EXIT_OK
    if args.keys_command == "list":
        keys = list_keys(lake)
        if not keys:
            print("No keys (activitylog keys create --organization ORG --project ID).")
        for key in keys:
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}Z" if key.revoked_at else "active"
            print(f"{key.key_id}  {state:<24} org {key.organization_id}  "
                  f"{'admin' if key.admin else 'projects ' + ','.join(map(str, key.projects))}  {key.label or ''}")
        return EXIT_OK
    config = load_config()  # before anything changes: a bad file stops the command here
    revoked = revoke_key(lake, args.key_id)
    if revoked is None:
        raise UsageError(f"no active key {args.key_id!r} (activitylog keys list)")
    print(f"Revoked {args.key_id}")
    try:
        _record(config, "key_revoked", revoked)
    except OSError as exc:
        raise CommandFailure(f"key {revoked.key_id} is revoked, but the revocation could not be recorded in "
                             f"the landing area ({exc})") from None
    return EXIT_OK


def _record(config, activity: str, key) -> None:
    """The log's own record of a key change (``audit.keys``), spooled into the landing area: the next
    ingest takes it into the key's organization or project."""
    if not config.audit.keys:
        return
    from transforms.audit import key_event, spool_events

    spool_events(settings().landing, [key_event(activity, key)])
