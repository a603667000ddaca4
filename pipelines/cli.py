"""The ``activitylog`` command line.

Commands that change the lake run the Dagster jobs (recorded in DAGSTER_HOME, visible in the UI);
read-only commands call ``transforms`` directly and never import Dagster.
Exit codes: 0 ok, 1 the command's own failure, 2 bad usage or bad input (one-line reason on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad usage or bad input: exit 2."""


class CommandFailure(Exception):
    """The command could not do its job: exit 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="activitylog", description="Activity log pipeline on a Delta Lake.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--lake", help="lake root: a path or s3://bucket/prefix (default: $ACTIVITYLOG_LAKE or ./data/lake)")
        return sub

    demo = command("demo", "generate sample events, run the whole pipeline on them, print a summary")
    demo.add_argument("--landing", help="landing area for the sample (default: $ACTIVITYLOG_LANDING or ./data/landing)")
    demo.add_argument("--events", type=int, default=50_000, help="number of sample events (default 50000)")
    demo.add_argument("--days", type=int, default=30, help="days the sample spans, ending yesterday (default 30)")
    demo.add_argument("--quiet", action="store_true", help="print only the summary")

    ingest = command("ingest", "ingest new landing files and refresh the days they changed")
    ingest.add_argument("--landing", help="a directory or s3:// prefix (default: $ACTIVITYLOG_LANDING or ./data/landing)")
    ingest.add_argument("--quiet", action="store_true", help="print only the summary")

    backfill = command("backfill", "refresh (normalize + enrich) many days, several runs at once")
    backfill.add_argument("--start", metavar="YYYY-MM-DD", help="first day (default: the first day of activity_raw)")
    backfill.add_argument("--end", metavar="YYYY-MM-DD", help="last day (default: the last day of activity_raw)")
    # One run already keeps about four cores busy (Polars is multi-threaded): more workers than that
    # only pay off with cores to spare (measured: on 2 cores, 4 workers took 1.1x as long as one).
    backfill.add_argument("--workers", type=int, default=max(1, min(4, (os.cpu_count() or 1) // 4)),
                          help="runs at once, each in its own process (default: one per 4 cores, at most 4)")
    backfill.add_argument("--days-per-run", type=int, default=None, metavar="N",
                          help="days per run (default 31, as the assets' backfill policy)")
    backfill.add_argument("--quiet", action="store_true", help="print only the summary")

    query = command("query", "find events in activity_log, newest first")
    _add_filter_flags(query)
    query.add_argument("--format", choices=["table", "jsonl", "csv"], default="table")
    query.add_argument("--limit", type=int, default=100, help="rows per page (default 100; 0 = every matching row)")
    query.add_argument("--after", metavar="CURSOR", help="the next page: the cursor printed after the previous page")

    history = command("history", "one resource's change history, newest first")
    history.add_argument("scope", metavar="SCOPE", help="resource type, e.g. FeatureFlag")
    history.add_argument("item_id", metavar="ITEM_ID", help="the resource's id")
    history.add_argument("--team-id", type=int, help="project id (item ids are unique per project)")
    history.add_argument("--format", choices=["table", "jsonl", "csv"], default="table")
    history.add_argument("--limit", type=int, default=0, help="at most N events (default 0 = all); "
                         "how many more exist is printed, with the command for the next page")
    history.add_argument("--after", metavar="CURSOR", help="the next page: the cursor printed after the previous page")
    history.add_argument("--window", metavar="DURATION", help="read-time look-back, e.g. 7d, 2mo, 5y "
                         "(default: $ACTIVITYLOG_READ_WINDOW, else none)")

    export = command("export", "write matching activity_log rows to CSV, XLSX or JSONL, with a manifest")
    _add_filter_flags(export)
    export.add_argument("--format", choices=["csv", "xlsx", "jsonl"], required=True)
    export.add_argument("--out", required=True, metavar="URI",
                        help="a file path, a directory (ending in /), or s3://bucket/prefix/")
    export.add_argument("--name", help="file name without extension when --out is a directory (default: from the bounds)")
    export.add_argument("--quiet", action="store_true", help="no progress lines")

    verify_export = command("verify-export", "recompute an export's checksums against its manifest")
    verify_export.add_argument("manifest", metavar="MANIFEST", help="the <name>.manifest.json (path or s3:// URI)")

    verify = command("verify", "recompute the integrity chain; exit 1 naming the first bad day")
    verify.add_argument("--day", action="append", default=[], metavar="YYYY-MM-DD",
                        help="check only these days' data (every digest and link is always checked)")

    serve = command("serve", "serve PostHog's activity-log API over the lake (read-only, scoped keys)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes (default 1; rate limits and page caches are per process)")

    keys = command("keys", "scoped API keys for `serve`")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="create|list|revoke")

    def key_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = key_commands.add_parser(name, help=help_text, description=help_text)
        # --lake after the subcommand too (`keys create --lake X`), as every other command takes it;
        # SUPPRESS: when absent here, the value given before the subcommand (or none) stands.
        sub.add_argument("--lake", default=argparse.SUPPRESS,
                         help="lake root: a path or s3://bucket/prefix (default: $ACTIVITYLOG_LAKE or ./data/lake)")
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

    erase = command("erase-user", "erase one actor's email, names and IP from the lake (their events stay, pseudonymised)")
    erase.add_argument("user", metavar="USER", help="the actor's uuid or email")
    erase.add_argument("--reason", default=None, help="why (recorded in the user_erased event), e.g. 'GDPR request #123'")
    erase.add_argument("--requested-by", default=None, help="who asked (recorded in the user_erased event)")
    erase.add_argument("--quiet", action="store_true", help="print only the summary")

    retention = command("retention", "delete what the retention policy expires (then vacuum after the grace)")
    retention.add_argument("--dry-run", action="store_true", help="print what would go, per table and policy; change nothing")
    retention.add_argument("--quiet", action="store_true", help="print only the summary")

    stream = command("stream", "deliver SIEM streams (the streams: section) up to now")
    stream.add_argument("name", nargs="?", metavar="NAME", help="one stream (default: every stream)")
    stream.add_argument("--quiet", action="store_true", help="print only the summary")

    notify = command("notify", "evaluate subscriptions for days not yet evaluated and deliver (exactly once)")
    notify.add_argument("--day", action="append", default=[], metavar="YYYY-MM-DD",
                        help="evaluate this day (repeatable; default: every day written since its last evaluation)")
    notify.add_argument("--retry-failed", action="store_true", help="send the failed deliveries (dead letters) again")
    notify.add_argument("--test", metavar="SUBSCRIPTION",
                        help="send one sample message of this subscription to its destinations (not recorded)")
    notify.add_argument("--quiet", action="store_true", help="print only the summary")
    return parser


def _add_filter_flags(parser: argparse.ArgumentParser) -> None:
    """The filter language as flags (DESIGN.md "Filter language"); ``--filter`` takes the YAML/JSON shape."""
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
_FLAG_OF_FIELD = {"start": "--start", "end": "--end", "users": "--user", "scopes": "--scope",
                  "activities": "--activity", "item_ids": "--item-id", "team_ids": "--team-id",
                  "include_organization": "--include-org", "clients": "--client", "ip_addresses": "--ip-address",
                  "search": "--search", "detail_filters": "--detail"}


def _detail_value(operation: str, text: str):
    import json

    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if operation == "in" and not isinstance(value, list):
        value = [part.strip() for part in text.split(",")] if isinstance(value, str) else [value]
    return value


def _filter_from_args(args: argparse.Namespace):
    """The ActivityFilter the flags describe; UsageError naming the flag when a value is wrong."""
    from transforms.filters import ActivityFilter, FilterError

    base: dict = {}
    if args.filter:
        base = _filter_document(args.filter)
    merged = dict(base)
    for name, values in [("users", args.user), ("scopes", args.scope), ("activities", args.activity),
                         ("item_ids", args.item_id), ("team_ids", args.team_id), ("clients", args.client),
                         ("ip_addresses", args.ip_address)]:
        if values:
            existing = merged.get(name) or []
            merged[name] = (existing if isinstance(existing, list) else [existing]) + list(values)
    for name, value in [("start", args.start), ("end", args.end), ("search", args.search),
                        ("was_impersonated", args.was_impersonated), ("is_system", args.is_system)]:
        if value is not None:
            merged[name] = value
    if args.include_org:
        merged["include_organization"] = True
    if args.detail:
        detail = dict(merged.get("detail_filters") or {})
        for path, operation, text in args.detail:
            detail[path] = {"operation": operation, "value": _detail_value(operation, text)}
        merged["detail_filters"] = detail
    try:
        activity_filter = ActivityFilter.from_dict(merged, where="")
    except FilterError as exc:
        message = str(exc).lstrip(": ")
        field = message.split(":", 1)[0].split("[", 1)[0]
        flag = _FLAG_OF_FIELD.get(field)
        raise UsageError(flag + message[len(field):] if flag and not args.filter else message) from None
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


def _filter_document(text: str) -> dict:
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


def _read_window(args: argparse.Namespace):
    from transforms.durations import DurationError, parse_duration

    if args.window is not None:
        try:
            return parse_duration(args.window, "--window")
        except DurationError as exc:
            raise UsageError(str(exc)) from None
    return _settings().read_window


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.lake:
        os.environ["ACTIVITYLOG_LAKE"] = args.lake
    if getattr(args, "landing", None):
        os.environ["ACTIVITYLOG_LANDING"] = args.landing
    handler = {"demo": _demo, "ingest": _ingest, "backfill": _backfill, "query": _query, "history": _history,
               "notify": _notify, "export": _export, "verify-export": _verify_export,
               "stream": _stream, "retention": _retention, "verify": _verify,
               "erase-user": _erase_user, "serve": _serve, "keys": _keys}[args.command]
    try:
        return handler(args)
    except UsageError as exc:
        print(f"activitylog {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandFailure as exc:
        print(f"activitylog {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _settings():
    from pipelines.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise UsageError(str(exc)) from None


# ------------------------------------------------------------------------------------------------
# demo and ingest: run the Dagster jobs


def _run_pipeline(quiet: bool) -> dict:
    from transforms.landing import LandingError, list_landing

    from pipelines.config import ConfigError, load_config

    settings = _settings()
    try:  # bad input is reported before any run starts
        load_config()
        list_landing(settings.landing)
    except (LandingError, ConfigError) as exc:
        raise UsageError(str(exc)) from None
    from pipelines.runner import first_line, run_ingest

    try:
        result = run_ingest(settings, log_level="WARNING" if quiet else "INFO")
    except LandingError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:  # a failed Dagster run: its error is in the run's logs too
        raise CommandFailure(first_line(exc)) from exc
    return {**result.ingest, "run_ids": result.run_ids}


def _print_summary(summary: dict, lake: str, elapsed: float) -> None:
    print()
    print(f"Ingested {summary['files_ingested']} files in {elapsed:.1f}s "
          f"({summary['files_skipped']} already ingested, skipped)")
    print(f"  lines read      {summary['lines']:>10,}")
    print(f"  accepted        {summary['accepted']:>10,}")
    print(f"  duplicates      {summary['duplicates']:>10,}")
    print(f"  quarantined     {summary['quarantined']:>10,}")
    for reason, count in summary["quarantine_reasons"].items():
        print(f"      {count:>6,}  {reason}")
    days = summary["days_changed"]
    if days:
        print(f"  days written    {len(days):>10,}  ({days[0]} … {days[-1]})")
    else:
        print("  days written             0  (nothing new)")
    for changed in summary["files_changed"]:
        print(f"  WARNING: {changed} changed after it was ingested and was not read again")
    print(f"Lake: {lake}")


def _ingest(args: argparse.Namespace) -> int:
    started = time.monotonic()
    summary = _run_pipeline(args.quiet)
    _print_summary(summary, _settings().lake, time.monotonic() - started)
    return EXIT_OK


def _iso_days(flag: str, texts: list[str]) -> list[date]:
    """Each ``YYYY-MM-DD`` of a repeated flag; a bad one is refused with its value echoed."""
    days = []
    for text in texts:
        try:
            days.append(date.fromisoformat(text))
        except ValueError as exc:
            raise UsageError(f"{flag} {text!r} is not a date like 2024-01-31 ({exc})") from None
    return days


def _backfill(args: argparse.Namespace) -> int:
    from transforms.lake import ACTIVITY_RAW, Lake
    from transforms.refresh import BACKFILL_DAYS_PER_RUN

    settings = _settings()
    bounds = {name: (_iso_days(f"--{name}", [getattr(args, name)]) or [None])[0] if getattr(args, name) else None
              for name in ("start", "end")}
    if bounds["start"] and bounds["end"] and bounds["start"] > bounds["end"]:
        raise UsageError(f"--start {bounds['start']} is after --end {bounds['end']}")
    days_per_run = args.days_per_run or BACKFILL_DAYS_PER_RUN
    if args.workers < 1 or days_per_run < 1:
        raise UsageError("--workers and --days-per-run must be at least 1")
    days = [d for d in Lake.at(settings.lake).days(ACTIVITY_RAW)
            if (bounds["start"] is None or d >= bounds["start"]) and (bounds["end"] is None or d <= bounds["end"])]
    if not days:
        print(f"No days of activity_raw in that range (lake: {settings.lake}); nothing to refresh.")
        return EXIT_OK
    from pipelines.runner import run_backfill

    started = time.monotonic()
    print(f"Refreshing {len(days)} days ({days[0]} … {days[-1]}), up to {days_per_run} days per run, "
          f"{args.workers} at once")
    result = run_backfill(days, settings, workers=args.workers, days_per_run=days_per_run,
                          log_level="ERROR", progress=None if args.quiet else print)
    elapsed = time.monotonic() - started
    print(f"Backfill: {len(result.run_ids)} of {len(result.ranges)} runs succeeded in {elapsed:.1f}s "
          f"({len(days) / elapsed:.1f} days/s)")
    if result.failed:
        for first, last, error in result.failed:
            print(f"  failed: {first} … {last}: {error}", file=sys.stderr)
        raise CommandFailure(f"{len(result.failed)} runs failed; run the command again for those days "
                             "(refreshing a day is idempotent)")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from transforms.sample import write_demo_landing, write_reference_data

    settings = _settings()
    landing = Path(settings.landing)
    if "://" in settings.landing:
        raise UsageError("the demo writes its sample to a local landing directory; unset ACTIVITYLOG_LANDING or pass --landing DIR")
    if args.events <= 0 or args.days <= 0:
        raise UsageError("--events and --days must be positive")
    started = time.monotonic()
    if landing.exists() and any(landing.iterdir()):
        print(f"Sample already in {landing}: ingesting what is new (delete ./data to start over)")
    else:
        print(f"Writing {args.events:,} sample events over {args.days} days to {landing} …")
        report = write_demo_landing(landing, events=args.events, days=args.days)
        if "://" not in settings.lake:  # reference tables the enrichment finds under <lake>/reference/
            write_reference_data(Path(settings.lake) / "reference")
        print(f"  {len(report.files)} files, {report.events:,} events, {report.duplicate_lines} duplicate lines, "
              f"{report.malformed_lines} malformed lines, {report.late_events:,} late events")
        _demo_start_date(settings, report.start_day)
    config_path = _demo_config(settings)
    summary = _run_pipeline(args.quiet)
    _print_summary(summary, settings.lake, time.monotonic() - started)
    config = _load_config()
    if config.notifications.subscriptions:
        report = _run_notify(settings, None, False, args.quiet)
        _print_notify(report)
        files = sorted({d.path for d in config.notifications.destinations.values() if d.type == "file"})
        print(f"  {report['sent']:,} notifications sent to {', '.join(files) or 'the configured destinations'}; "
              f"{report['skipped']:,} skipped as older than {config.notifications.max_event_age} "
              f"(max_event_age in {config_path or 'the configuration file'})")
    from pipelines.checks import run_checks

    checks = run_checks(settings)  # recorded in DAGSTER_HOME: the UI shows the checks evaluated
    chain, ids = checks["integrity_chain"], checks["unique_ids"]
    print(f"Integrity chain: {chain.metadata['days'].value} days, {chain.metadata['events'].value:,} events "
          + ("verify (activitylog verify)" if chain.passed else f"DO NOT verify: {chain.metadata['first_problem'].value}"))
    print(f"Event ids: {'each stored once' if ids.passed else 'REPEATED'} "
          f"({ids.metadata['rows'].value:,} rows; asset checks activity_raw/unique_ids, activity_digests/integrity_chain)")
    print(f"Dagster runs recorded in {os.environ.get('DAGSTER_HOME')}")
    print("Open the UI with `make ui`, then http://127.0.0.1:3000 (runs, asset lineage, partitions).")
    print("Try: .venv/bin/activitylog query --scope FeatureFlag --limit 5")
    return EXIT_OK


DEMO_START_FILE = "demo.mk"


def _demo_start_date(settings, first_day) -> None:
    """Daily partitions start at the sample's first day, not at ACTIVITYLOG_START_DATE's default
    (2020-01-01: thousands of empty partitions in the UI). Recorded as ``data/demo.mk``, which the
    Makefile reads, so `make ui` shows the same partitions; an ACTIVITYLOG_START_DATE of your own wins."""
    if os.environ.get("ACTIVITYLOG_START_DATE", "").strip() or "://" in settings.lake:
        return
    os.environ["ACTIVITYLOG_START_DATE"] = first_day.isoformat()
    path = Path(settings.lake).parent / DEMO_START_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Written by `activitylog demo`: daily partitions start at the sample's first day.\n"
                    f"ACTIVITYLOG_START_DATE ?= {first_day.isoformat()}\n")
    print(f"  daily partitions start {first_day} (ACTIVITYLOG_START_DATE, recorded in {path})")


DEMO_CONFIG = """\
# Written by `activitylog demo`. Edit freely; see the README ("The configuration file").
notifications:
  max_event_age: 7d            # older events are recorded as skipped, not sent
  destinations:
    local-file: {type: file, path: ./notifications.jsonl}
  subscriptions:
    - name: production flag changes
      filter:
        scopes: [FeatureFlag]
        activities: [updated]
        detail_filters: {"changes[].field": {operation: in, value: [active, rollout_percentage]}}
      destinations: [local-file]
    - name: membership and role changes
      filter: {scopes: [OrganizationMembership, OrganizationInvite, Role]}
      destinations: [local-file]
    - name: personal API keys
      filter: {scopes: [PersonalAPIKey]}
      destinations: [local-file]
"""


def _demo_config(settings) -> Path | None:
    """The demo's own configuration file beside its lake, unless one is configured already."""
    from pipelines.config import CONFIG_ENV, DEFAULT_CONFIG

    if os.environ.get(CONFIG_ENV, "").strip():
        return Path(os.environ[CONFIG_ENV])
    if Path(DEFAULT_CONFIG).exists() or "://" in settings.lake:
        return Path(DEFAULT_CONFIG) if Path(DEFAULT_CONFIG).exists() else None
    path = Path(settings.lake).parent / "activitylog.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(DEMO_CONFIG)
        print(f"Wrote the demo configuration {path} (subscriptions delivering to a JSONL file)")
    os.environ[CONFIG_ENV] = str(path)
    return path


# ------------------------------------------------------------------------------------------------
# query: read-only, no Dagster


def _query(args: argparse.Namespace) -> int:
    from transforms.filters import FilterError
    from transforms.lake import Lake
    from transforms.query import query, query_page

    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or a positive number")
    activity_filter = _filter_from_args(args)
    window = _read_window(args)
    lake = Lake.at(_settings().lake)
    try:
        if args.limit:
            page = query_page(lake, activity_filter, limit=args.limit, after=args.after, read_window=window)
            rows, cursor = (page.rows, page.next_cursor) if page else (None, None)
        else:
            frame = query(lake, activity_filter, after=args.after, read_window=window)
            rows, cursor = (frame.collect() if frame is not None else None), None
    except FilterError as exc:
        message = str(exc)
        raise UsageError("--" + message if message.startswith(("after:", "limit:")) else message) from None
    if rows is None:
        raise CommandFailure(f"no activity_log table in {lake.root}: run `activitylog ingest` first")
    _print_rows(rows, args.format, ["created_at", "scope", "activity", "item_id", "actor", "summary"])
    if cursor:
        print(f"more rows: {_next_page_command(args, cursor)}", file=sys.stderr)
    return EXIT_OK


def _filter_flag_tokens(args: argparse.Namespace) -> list[str]:
    """The filter flags of ``args`` as command-line tokens (the inverse of :func:`_add_filter_flags`)."""
    tokens: list[str] = []
    if args.filter:
        tokens += ["--filter", args.filter]
    for flag, value in (("--start", args.start), ("--end", args.end)):
        if value is not None:
            tokens += [flag, value]
    for flag, values in (("--user", args.user), ("--scope", args.scope), ("--activity", args.activity),
                         ("--item-id", args.item_id), ("--team-id", args.team_id), ("--client", args.client),
                         ("--ip-address", args.ip_address)):
        for value in values:
            tokens += [flag, str(value)]
    if args.include_org:
        tokens.append("--include-org")
    if args.was_impersonated is not None:
        tokens.append("--impersonated" if args.was_impersonated else "--not-impersonated")
    if args.is_system is not None:
        tokens.append("--system" if args.is_system else "--not-system")
    if args.search is not None:
        tokens += ["--search", args.search]
    for path, operation, value in args.detail:
        tokens += ["--detail", path, operation, value]
    return tokens


def _next_page_command(args: argparse.Namespace, cursor: str, positionals: list[str] = ()) -> str:
    """The command that prints the next page: the same command, lake, filters, format, limit and window,
    with ``--after CURSOR``, shell-quoted (``shlex``) so that it works pasted into a shell."""
    import shlex

    tokens = ["activitylog", args.command]
    if args.lake:
        tokens += ["--lake", args.lake]
    if args.command == "query":
        tokens += _filter_flag_tokens(args)
    elif args.team_id is not None:  # history
        tokens += ["--team-id", str(args.team_id)]
    if args.format != "table":
        tokens += ["--format", args.format]
    tokens += ["--limit", str(args.limit)]
    if args.window is not None:
        tokens += ["--window", args.window]
    tokens += ["--after", cursor]
    if positionals:  # after `--`, so that an item id such as -1 is not read as a flag
        tokens += ["--", *positionals] if any(p.startswith("-") for p in positionals) else list(positionals)
    return shlex.join(tokens)


def _print_rows(rows, output_format: str, table_columns: list[str]) -> None:
    import polars as pl

    from transforms.export import format_timestamps

    out = sys.stdout
    if output_format == "jsonl":  # timestamps as in exports: 2024-01-15T10:30:00.000000Z
        format_timestamps(rows).write_ndjson(out)
    elif output_format == "csv":  # CSV cells are flat: lists become "a,b", nested values JSON text
        flat = format_timestamps(rows).with_columns(pl.col(pl.List(pl.String)).list.join(","))
        flat = flat.with_columns(_json_column(name, dtype) for name, dtype in flat.schema.items() if dtype.is_nested())
        flat.write_csv(out)
    else:
        shown = rows.with_columns(
            pl.coalesce("actor_name", "actor_email", pl.when(pl.col("is_system")).then(pl.lit("System"))).alias("actor"),
            pl.col("created_at").dt.strftime("%Y-%m-%d %H:%M:%SZ"),
        ) if rows.height else rows.with_columns(pl.lit(None, dtype=pl.String).alias("actor"))
        with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=120, tbl_width_chars=220,
                       tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
            print(shown.select(c for c in table_columns if c in shown.columns), file=out)
        print(f"{rows.height} rows", file=sys.stderr)


def _json_column(name: str, dtype):
    """A nested column as JSON text (vectorized: one ``json_encode`` per element)."""
    import polars as pl

    if isinstance(dtype, pl.Struct):
        return pl.col(name).struct.json_encode()
    encoded = pl.col(name).list.eval(pl.element().struct.json_encode() if isinstance(dtype.inner, pl.Struct)
                                     else pl.element().cast(pl.String)).list.join(",")
    return pl.concat_str(pl.lit("["), encoded, pl.lit("]")).alias(name)


def _history(args: argparse.Namespace) -> int:
    from transforms.filters import FilterError
    from transforms.history import item_history
    from transforms.lake import ACTIVITY_LOG, Lake

    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or a positive number")
    lake = Lake.at(_settings().lake)
    try:
        result = item_history(lake, args.scope, args.item_id, team_id=args.team_id,
                              read_window=_read_window(args), limit=args.limit or None, after=args.after)
    except FilterError as exc:
        message = str(exc)
        raise UsageError("--" + message if message.startswith("after:") else message) from None
    if result is None:
        hint = "run `activitylog ingest` first" if not lake.exists(ACTIVITY_LOG) else \
            "it is built by the next refresh: run `activitylog ingest`"
        raise CommandFailure(f"no activity_item_history table in {lake.root}: {hint}")
    rows = result.rows
    if args.format != "table":
        _print_rows(rows, args.format, [])
        _print_history_more(args, result)
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
            print(f"      {change['field'] or '?'}: {_short(change['before'])} → {_short(change['after'])}")
    print(f"{rows.height} events" + (f" of {result.total}" if result.remaining else ""), file=sys.stderr)
    _print_history_more(args, result)
    return EXIT_OK


def _print_history_more(args: argparse.Namespace, result) -> None:
    """How many events are beyond ``--limit``, and the command that prints the next page."""
    if result.remaining and result.next_cursor:
        print(f"{result.remaining} more events: "
              f"{_next_page_command(args, result.next_cursor, [args.scope, args.item_id])}", file=sys.stderr)


def _short(text: str | None, limit: int = 80) -> str:
    text = "null" if text is None else text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------------------
# export and verify-export: read-only for the lake, no Dagster


def _export(args: argparse.Namespace) -> int:
    from destinations.exports import ExportError, run_export
    from transforms.lake import Lake

    activity_filter = _filter_from_args(args)
    window = _read_window(args)
    started = time.monotonic()
    progress = None if args.quiet else (lambda line: print(f"  {line}", file=sys.stderr))
    try:
        result = run_export(Lake.at(_settings().lake), activity_filter, args.format, args.out, name=args.name,
                            read_window=window, progress=progress)
    except ExportError as exc:
        raise CommandFailure(str(exc)) from None
    except OSError as exc:
        raise CommandFailure(f"{args.out}: {exc.strerror or exc}") from None
    manifest = result.manifest
    file = manifest["files"][0]
    print(f"Exported {manifest['rows']:,} rows in {time.monotonic() - started:.1f}s "
          f"(activity_log version {manifest['table_version']})")
    print(f"  file      {result.file}  ({file['bytes']:,} bytes, sha256 {file['sha256']})")
    sheets = file.get("sheets", [])
    if len(sheets) > 1:  # more rows than one sheet holds
        for sheet in sheets:
            print(f"  sheet     {sheet['name']}: {sheet['rows']:,} rows")
    if file.get("cells_truncated"):
        print(f"  NOTE: {file['cells_truncated']} cells exceeded Excel's 32,767 characters and end in …[truncated]; "
              f"CSV and JSONL carry them whole")
    print(f"  manifest  {result.manifest_uri}")
    return EXIT_OK


def _verify_export(args: argparse.Namespace) -> int:
    from destinations.exports import ExportError, verify_manifest

    try:
        manifest, problems = verify_manifest(args.manifest)
    except ExportError as exc:
        raise UsageError(str(exc)) from None
    if problems:
        for problem in problems:
            print(f"MISMATCH {problem}")
        raise CommandFailure(f"{len(problems)} problem(s): the export does not match its manifest")
    files = manifest["files"]
    print(f"OK: {len(files)} file(s) match the manifest ({manifest['rows']:,} rows, {manifest['format']}, "
          f"activity_log version {manifest['table_version']}, created {manifest['created_at']})")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------
# verify: read-only, no Dagster


def _verify(args: argparse.Namespace) -> int:
    from datetime import date

    from transforms.integrity import ACTIVITY_DIGESTS, table_on_storage, verify
    from transforms.lake import Lake, is_remote

    days = _iso_days("--day", args.day) or None
    lake = Lake.at(_settings().lake)
    if not is_remote(lake.root) and not Path(lake.root).is_dir():
        raise UsageError(f"no lake at {lake.root}: the directory does not exist")
    if not table_on_storage(lake, ACTIVITY_DIGESTS):
        raise CommandFailure(f"no activity_digests table in {lake.root}: run `activitylog ingest` first")
    started = time.monotonic()
    report = verify(lake, days)
    if report.ok:
        print(f"OK: {report.days} days, {report.events:,} events and {report.digest_rows} digest rows verify "
              f"({time.monotonic() - started:.1f}s)")
        return EXIT_OK
    for problem in sorted(report.problems, key=lambda p: (p.day or date.min, p.kind)):
        print(f"TAMPERED {problem}")
    first = report.first()
    if first.table:  # a damaged table or file: named with its table (and day, when it has one)
        where = " ".join(x for x in (first.table, first.day and first.day.isoformat()) if x)
        raise CommandFailure(f"integrity chain broken: {where}: {first.kind}")
    raise CommandFailure(f"integrity chain broken: first bad day {first.day}: {first.kind}")


# ------------------------------------------------------------------------------------------------
# retention


def _retention(args: argparse.Namespace) -> int:
    config = _load_config()
    if not config.retention.configured and args.dry_run:
        print("No retention policy configured (the retention: section of the configuration file): nothing expires.")
        return EXIT_OK
    from pipelines.runner import run_retention

    try:
        report, _ = run_retention(_settings(), dry_run=args.dry_run, log_level="WARNING" if args.quiet else "INFO")
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CommandFailure(f"retention run failed: {first}") from exc
    if not report["configured"]:
        print("No retention policy configured: nothing expires. Vacuum: files deleted more than "
              f"{report['vacuum_grace']} ago removed ({sum(report['vacuumed_files'].values()):,} files)")
        return EXIT_OK
    verb = "Would delete" if args.dry_run else "Deleted"
    whole = report["whole_days"]
    print(f"{verb}: {whole['count']} whole day(s)" + (f" ({whole['first']} … {whole['last']})" if whole["count"] else "")
          + f", expired rows in {report['partial_days']} more day(s)")
    print("  cut-offs: " + ", ".join(f"{k} {v[:19] + 'Z' if v else 'forever'}" for k, v in report["cutoffs"].items()))
    print(f"  {'table':<26}{'rows':>12}")
    for table, rows in report["deleted"].items():
        print(f"  {table:<26}{rows:>12,}")
    if report["deleted_by_policy"]:
        print("  activity_raw rows by policy: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report["deleted_by_policy"].items())))
    if not args.dry_run:
        print(f"  vacuum: files deleted more than {report['vacuum_grace']} ago removed "
              f"({sum(report['vacuumed_files'].values()):,} files); recorded as a retention_deleted system event")
    return EXIT_OK


def _erase_user(args: argparse.Namespace) -> int:
    from transforms.erasure import ErasureError, find_user_events
    from transforms.lake import Lake

    config = _load_config()
    settings = _settings()
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
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CommandFailure(f"erasure run failed: {first}") from exc
    grace = config.retention.vacuum_grace
    print(f"Erased the personal data of {report['events']:,} events on {report['days']} day(s); "
          f"they now belong to {report['pseudonym']}")
    print(f"  quarantined lines redacted: {report['quarantine_lines']}, reference rows removed: {report['reference_rows']}")
    print(f"  the old data files leave storage at the next vacuum after {grace or 'never (vacuum_grace: forever)'} "
          f"(`activitylog retention` runs it); `activitylog verify` still passes")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------
# serve and keys: no Dagster


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from pipelines.api import create_app

    from pipelines.api import PUBLIC_URL_ENV

    settings = _settings()
    if args.workers < 1:
        raise UsageError("--workers must be 1 or more")
    from pipelines.api.app import visibility_rules
    from pipelines.config import ConfigError

    try:  # the visibility rules of the configuration file: a bad section is exit 2, before anything listens
        visibility_rules()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    # Links in responses (next pages, downloads) start with ACTIVITYLOG_PUBLIC_URL, else with the address
    # listened on when it is one address (never the request's Host header); with a wildcard host
    # (0.0.0.0, ::) and no public URL they are relative.
    public_url = os.environ.get(PUBLIC_URL_ENV) or None
    if public_url is None and args.host not in ("", "0.0.0.0", "::"):
        public_url = f"http://{f'[{args.host}]' if ':' in args.host else args.host}:{args.port}"
    print(f"Serving {settings.lake} on http://{args.host}:{args.port} (OpenAPI: /docs, /openapi.json)", file=sys.stderr)
    if args.workers == 1:
        uvicorn.run(create_app(settings.lake, public_url=public_url), host=args.host, port=args.port,
                    log_level="info")
    else:  # each worker process builds its app from the environment
        os.environ["ACTIVITYLOG_LAKE"] = settings.lake
        if public_url:
            os.environ[PUBLIC_URL_ENV] = public_url
        uvicorn.run("pipelines.api:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                    log_level="info")
    return EXIT_OK


def _keys(args: argparse.Namespace) -> int:
    from transforms.keys import create_key, list_keys, revoke_key
    from transforms.lake import Lake

    lake = Lake.at(_settings().lake)
    _require_lake(lake)
    if args.keys_command == "create":
        from transforms.reference import ReferenceError, lake_reference_uris, load_references

        config = _load_config()
        try:  # the configured reference tables win over the ones under <lake>/reference/, as in enrichment
            references = load_references({**lake_reference_uris(lake.root), **config.reference.uris()})
        except ReferenceError as exc:
            raise UsageError(str(exc)) from None
        try:
            token, key = create_key(lake, args.organization, args.project, admin=args.admin,
                                    scopes=args.scope or None, label=args.label, references=references)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
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
    if not revoke_key(lake, args.key_id):
        raise UsageError(f"no active key {args.key_id!r} (activitylog keys list)")
    print(f"Revoked {args.key_id}")
    return EXIT_OK


def _require_lake(lake) -> None:
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


# ------------------------------------------------------------------------------------------------
# stream


def _stream(args: argparse.Namespace) -> int:
    config = _load_config()
    if not config.streams:
        print("No streams configured (the streams: section of the configuration file).")
        return EXIT_OK
    if args.name and args.name not in config.streams:
        raise UsageError(f"no stream named {args.name!r} (streams: {', '.join(sorted(config.streams))})")
    from pipelines.runner import run_stream

    try:
        report, _ = run_stream(_settings(), names=[args.name] if args.name else None,
                               log_level="WARNING" if args.quiet else "INFO")
    except Exception as exc:  # the run failed: a paused stream; its error is in the run's logs too
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CommandFailure(f"stream run failed: {first}") from exc
    print(f"  {'stream':<24}{'days':>6}{'sent':>10}{'batches':>9}  status")
    for row in report["streams"]:
        print(f"  {row['stream']:<24}{row['days']:>6}{row['sent']:>10,}{row['batches']:>9}  {row['status']}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------
# notify


def _load_config():
    from pipelines.config import ConfigError, load_config

    try:
        return load_config()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _notify(args: argparse.Namespace) -> int:
    from datetime import date

    config = _load_config()
    settings = _settings()
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
    days = sorted(set(_iso_days("--day", args.day))) or None
    if not config.notifications.subscriptions:
        print("No subscriptions configured (notifications.subscriptions in the configuration file).")
        return EXIT_OK
    report = _run_notify(settings, days, args.retry_failed, args.quiet)
    _print_notify(report)
    return EXIT_OK


def _run_notify(settings, days, retry_failed: bool, quiet: bool) -> dict:
    from pipelines.runner import run_notify

    try:
        report, _ = run_notify(settings, days=days, retry_failed=retry_failed,
                               log_level="WARNING" if quiet else "INFO")
    except Exception as exc:  # the run failed: its error (and the dead letters) are in the run's logs
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CommandFailure(f"notify run failed: {first}") from exc
    return report


def _print_notify(report: dict) -> None:
    days = report["days"]
    print()
    if not days:
        print("Notifications: no day of activity_log was written since its last evaluation; nothing to do")
        return
    print(f"Notifications: {len(days)} day(s) evaluated" + (f" ({days[0]} … {days[-1]})" if len(days) > 1 else f" ({days[0]})"))
    print(f"  {'subscription':<40}{'matched':>9}{'sent':>7}{'skipped':>9}{'failed':>8}{'already':>9}")
    for row in report["subscriptions"]:
        print(f"  {row['subscription'][:39]:<40}{row['matched']:>9,}{row['sent']:>7,}{row['skipped']:>9,}"
              f"{row['failed']:>8,}{row['already']:>9,}")
    if report.get("resumed"):
        print(f"  {report['resumed']} deliveries of an interrupted run were sent again (same webhook-id)")


if __name__ == "__main__":
    sys.exit(main())
