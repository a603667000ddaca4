"""Options and parsing shared by several commands: the filter flags, dates, the read window, and the
settings, configuration and lake every command starts from. Heavy imports stay inside the functions."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from pipelines.cli.errors import UsageError


def add_filter_flags(parser: argparse.ArgumentParser) -> None:
    """The filter language as flags (README "Filter language"); ``--filter`` takes the YAML/JSON shape."""
    group = parser.add_argument_group("filters (repeat a flag to match any of several values)")
    group.add_argument("--filter", metavar="JSON|@FILE",
                       help="a filter in the configuration's shape, as JSON or YAML, or @path to a file; flags add to it")
    group.add_argument("--start", help="from this date or ISO-8601 timestamp, inclusive (UTC)")
    group.add_argument("--end", help="until this date (its whole day) or timestamp, inclusive (UTC)")
    group.add_argument("--user", action="append", default=[], help="actor uuid or email")
    group.add_argument("--scope", action="append", default=[], help="resource type, e.g. FeatureFlag")
    group.add_argument("--activity", action="append", default=[], help="e.g. updated")
    group.add_argument("--item-id", action="append", default=[], help="resource id")
    group.add_argument("--team-id", action="append", default=[], type=int, help="project id")
    group.add_argument("--include-org", action="store_true",
                       help="with --team-id: also the organization-level events of those projects' organizations")
    group.add_argument("--impersonated", dest="was_impersonated", action="store_const", const=True, default=None,
                       help="only impersonated actions")
    group.add_argument("--not-impersonated", dest="was_impersonated", action="store_const", const=False,
                       help="no impersonated actions")
    group.add_argument("--system", dest="is_system", action="store_const", const=True, default=None,
                       help="only system activity")
    group.add_argument("--not-system", dest="is_system", action="store_const", const=False,
                       help="no system activity")
    group.add_argument("--client", action="append", default=[], help="client, * is a wildcard")
    group.add_argument("--ip-address", action="append", default=[], help="IP address, * is a wildcard")
    group.add_argument("--search", help="case-insensitive text in the detail or the summary")
    group.add_argument("--detail", nargs=3, action="append", default=[], metavar=("PATH", "OP", "VALUE"),
                       help="detail filter: PATH like changes[].field, OP exact|contains|in, VALUE as JSON "
                            "(1, true, \"1\", [\"a\",\"b\"]) or plain text; for in, a JSON list or a,b,c")
    group.add_argument("--window", metavar="DURATION",
                       help="read-time look-back, e.g. 7d, 2mo, 5y (default: $ACTIVITYLOG_READ_WINDOW, else none)")


# Flag ↔ filter field, so an error about a field names the flag that set it.
FLAG_OF_FIELD = {"start": "--start", "end": "--end", "users": "--user", "scopes": "--scope",
                 "activities": "--activity", "item_ids": "--item-id", "team_ids": "--team-id",
                 "include_organization": "--include-org", "clients": "--client", "ip_addresses": "--ip-address",
                 "search": "--search", "detail_filters": "--detail"}


def filter_from_args(args: argparse.Namespace):
    """The ActivityFilter the flags describe (:func:`transforms.filters.filter_from_flags`); UsageError
    naming the flag when a value is wrong (the field, when a ``--filter`` document is given)."""
    from transforms.filters import FilterError, filter_from_flags

    try:
        activity_filter = filter_from_flags(
            filter_document(args.filter) if args.filter else None,
            lists=[("users", args.user), ("scopes", args.scope), ("activities", args.activity),
                   ("item_ids", args.item_id), ("team_ids", args.team_id), ("clients", args.client),
                   ("ip_addresses", args.ip_address)],
            values=[("start", args.start), ("end", args.end), ("search", args.search),
                    ("was_impersonated", args.was_impersonated), ("is_system", args.is_system),
                    ("include_organization", True if args.include_org else None)],
            details=args.detail)
    except FilterError as exc:
        raise UsageError(str(exc.problem if args.filter else exc.problem.renamed(FLAG_OF_FIELD))) from None
    for warning in activity_filter.warnings():
        print(f"activitylog {args.command}: warning: {warning}", file=sys.stderr)
    return activity_filter


def _filter_loader():
    import yaml

    class FilterLoader(yaml.SafeLoader):
        """YAML dates and timestamps stay text: the filter parses them itself, so that a bad one
        (``start: 2024-13-01``) is reported with its value and the field, not as a traceback."""

    FilterLoader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))
    return FilterLoader


def filter_document(text: str) -> dict:
    import yaml

    where = "--filter"
    if text.startswith("@"):
        path = Path(text[1:])
        where = f"--filter {path}"
        try:
            text = path.read_text()
        except OSError as exc:
            raise UsageError(f"{where}: cannot read the file ({exc.strerror})") from None
    try:
        document = yaml.load(text, Loader=_filter_loader())  # noqa: S506 - a SafeLoader; JSON is YAML, so both work
    except yaml.YAMLError as exc:
        raise UsageError(f"{where}: not valid JSON or YAML ({str(exc).splitlines()[0]})") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise UsageError(f"{where}: must be a mapping of filter fields like {{\"scopes\": [\"FeatureFlag\"]}}")
    return document


def read_window(args: argparse.Namespace):
    from transforms.durations import DurationError, parse_duration

    if args.window is not None:
        try:
            return parse_duration(args.window, "--window")
        except DurationError as exc:
            raise UsageError(str(exc)) from None
    return settings().read_window


def iso_days(flag: str, texts: list[str]) -> list[date]:
    """Each ``YYYY-MM-DD`` of a repeated flag; a bad one is refused with its value echoed."""
    days = []
    for text in texts:
        try:
            days.append(date.fromisoformat(text))
        except ValueError as exc:
            raise UsageError(f"{flag} {text!r} is not a date like 2024-01-31 ({exc})") from None
    return days


def settings():
    from transforms.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise UsageError(str(exc)) from None


def load_config():
    from pipelines.config import ConfigError, load_config as load

    try:
        return load()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def require_lake(lake) -> None:
    """Exit 2 when the lake is not there at all (a mistyped --lake), rather than answer "no keys"."""
    from transforms.keys import API_KEYS
    from transforms.lake import ACTIVITY_LOG, ACTIVITY_RAW
    from transforms.reference import lake_reference_uris

    if "://" not in lake.root and not Path(lake.root).is_dir():
        raise UsageError(f"no lake at {lake.root}: the directory does not exist (check --lake or ACTIVITYLOG_LAKE)")
    if not any(lake.exists(table) for table in (API_KEYS, ACTIVITY_RAW, ACTIVITY_LOG)) \
            and not lake_reference_uris(lake.root):
        raise UsageError(f"no lake at {lake.root}: it holds no activity_raw, activity_log or api_keys table and no "
                         "reference data (check --lake or ACTIVITYLOG_LAKE; `activitylog ingest` builds a lake)")
