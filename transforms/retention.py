"""Retention that really deletes: expired rows leave every table that holds event data, then vacuum
removes their files after a grace period.

A row's window is its project's (``projects``), else its organization's (``organizations``), else the
``default``; it expires when ``created_at`` is older than ``now - window``. ``forever`` never expires.

* A day whose every possible row is expired (older than the *longest* window's cut-off) is deleted by a
  predicate on the partition column ``day`` — metadata-only in Delta.
* Days between the longest and the shortest cut-off lose the rows whose own policy expired them: one
  row-level delete per table with the policies written out as a SQL predicate.

Tables: ``activity_raw``, ``activity_events``, ``activity_changes``, ``activity_log`` (by day and
policy), ``activity_item_history`` (the same predicates on its ``day``/``created_at`` columns),
``deliveries`` and ``stream_ledger`` (whole days, and the expired events' ids), ``notify_evaluations``
and ``stream_progress`` (whole days), ``activity_quarantine`` (rejected lines carry no reliable
project: they follow the longest window, on ``ingested_at``). Each delete is one atomic Delta commit;
a run that stops halfway leaves every table consistent on its own and the next run finishes the job.

Legal holds (``held_organizations``, ``held_projects``: the configuration's ``retention.holds`` and
the active rows of ``legal_holds``, :mod:`transforms.holds`): a row whose ``team_id`` is a held project
or whose ``organization_id`` a held organization is never deleted, whatever its window (a NULL is not
held). While any hold is active no day is deleted whole: every expired day goes through the
row-level deletes, the ledgers lose the expired events' ids only, and the quarantine and the
bookkeeping tables (which name no tenant) are kept.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Callable

import polars as pl
from deltalake.exceptions import CommitFailedError

from transforms.commitments import MERKLE_SALTS
from transforms.durations import Duration
from transforms.history import ACTIVITY_ITEM_HISTORY
from transforms.lake import (
    ACTIVITY_CHANGES, ACTIVITY_EVENTS, ACTIVITY_LOG, ACTIVITY_QUARANTINE, ACTIVITY_RAW, Lake,
)
from transforms.notify import DELIVERIES, NOTIFY_EVALUATIONS
from transforms.streams import STREAM_LEDGER, STREAM_PROGRESS

EVENT_TABLES = [ACTIVITY_LOG, ACTIVITY_CHANGES, ACTIVITY_EVENTS, ACTIVITY_RAW]  # derived first, raw last
DERIVED_TABLES = EVENT_TABLES[:-1]
# Tables of (day, event_id) rows that go with their events: the notify and stream ledgers, and the
# salts of the verifiable log's personal-data commitments (the leaves stay: they hold no personal data,
# and the tree and every earlier proof stay checkable).
LEDGERS = [DELIVERIES, STREAM_LEDGER, MERKLE_SALTS]
BOOKKEEPING = [NOTIFY_EVALUATIONS, STREAM_PROGRESS]
ID_CHUNK = 5_000  # event ids per ledger delete predicate


@dataclass(frozen=True)
class RetentionPolicy:
    default: Duration | None = None
    organizations: dict[str, Duration | None] = field(default_factory=dict)
    projects: dict[int, Duration | None] = field(default_factory=dict)
    held_organizations: frozenset[str] = frozenset()  # legal holds: never deleted, whatever the window
    held_projects: frozenset[int] = frozenset()

    @property
    def holds(self) -> bool:
        """Whether a legal hold is active."""
        return bool(self.held_organizations or self.held_projects)

    def cutoffs(self, now: datetime) -> dict[str, datetime | None]:
        """policy label → cut-off (None: forever). Labels: ``default``, ``organization:ID``, ``project:ID``."""
        out = {"default": self.default.before(now) if self.default else None}
        out.update({f"organization:{o}": w.before(now) if w else None for o, w in self.organizations.items()})
        out.update({f"project:{t}": w.before(now) if w else None for t, w in self.projects.items()})
        return out

    def whole_days_before(self, now: datetime) -> date | None:
        """Days strictly before this are expired for every row (None: no day is, some window is forever,
        or a legal hold is active: a day may hold held rows, so none is deleted whole)."""
        cuts = self.cutoffs(now).values()
        if self.holds or any(c is None for c in cuts):
            return None
        return min(cuts).date()

    def label(self) -> pl.Expr:
        """Each row's policy label (project wins over organization wins over default)."""
        expression = pl.lit("default")
        if self.organizations:
            expression = pl.when(pl.col("organization_id").is_in(list(self.organizations))).then(
                pl.concat_str(pl.lit("organization:"), pl.col("organization_id"))).otherwise(expression)
        if self.projects:
            expression = pl.when(pl.col("team_id").is_in(list(self.projects))).then(
                pl.concat_str(pl.lit("project:"), pl.col("team_id").cast(pl.String))).otherwise(expression)
        return expression.alias("policy")

    def held(self) -> pl.Expr:
        """True for rows under a legal hold (a NULL team_id or organization_id is not held)."""
        expression = pl.lit(False)
        if self.held_projects:
            expression = expression | pl.col("team_id").is_in(sorted(self.held_projects)).fill_null(False)
        if self.held_organizations:
            expression = expression | pl.col("organization_id").is_in(sorted(self.held_organizations)).fill_null(False)
        return expression

    def expired(self, now: datetime) -> pl.Expr:
        """True for rows their own policy has expired and no legal hold keeps (a Polars expression)."""
        return self.expired_by_window(now) & ~self.held() if self.holds else self.expired_by_window(now)

    def expired_by_window(self, now: datetime) -> pl.Expr:
        """True for rows their own policy has expired, held or not (a Polars expression)."""
        cuts = self.cutoffs(now)
        label = self.label()
        expression = pl.lit(False)
        for name, cut in cuts.items():
            if cut is not None:
                expression = pl.when(label == name).then(pl.col("created_at") < cut).otherwise(expression)
        return expression

    def sql(self, now: datetime) -> str | None:
        """The same as :meth:`expired`, as a Delta (DataFusion) predicate; None when nothing can expire."""
        cuts = self.cutoffs(now)
        projects = sorted(self.projects)
        organizations = sorted(self.organizations)
        not_project = ("(team_id IS NULL OR team_id NOT IN (" + ", ".join(str(t) for t in projects) + "))"
                       if projects else "TRUE")
        not_org = ("(organization_id IS NULL OR organization_id NOT IN (" +
                   ", ".join(_quote(o) for o in organizations) + "))" if organizations else "TRUE")
        parts = []
        for team in projects:
            if cuts[f"project:{team}"] is not None:
                parts.append(f"(team_id = {team} AND created_at < {_ts(cuts[f'project:{team}'])})")
        for org in organizations:
            if cuts[f"organization:{org}"] is not None:
                parts.append(f"({not_project} AND organization_id = {_quote(org)} AND "
                             f"created_at < {_ts(cuts[f'organization:{org}'])})")
        if cuts["default"] is not None:
            parts.append(f"({not_project} AND {not_org} AND created_at < {_ts(cuts['default'])})")
        if not parts:
            return None
        if not self.holds:
            return " OR ".join(parts)
        not_held = []  # as in held(): a NULL is not held
        if self.held_projects:
            not_held.append("(team_id IS NULL OR team_id NOT IN (" +
                            ", ".join(str(t) for t in sorted(self.held_projects)) + "))")
        if self.held_organizations:
            not_held.append("(organization_id IS NULL OR organization_id NOT IN (" +
                            ", ".join(_quote(o) for o in sorted(self.held_organizations)) + "))")
        return "(" + " OR ".join(parts) + ") AND " + " AND ".join(not_held)

    def as_dict(self) -> dict:
        return {"default": str(self.default) if self.default else "forever",
                "organizations": {o: str(w) if w else "forever" for o, w in self.organizations.items()},
                "projects": {str(t): str(w) if w else "forever" for t, w in self.projects.items()}}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ts(moment: datetime) -> str:
    return "'" + moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


def _days_sql(days: list[date]) -> str:
    return "day IN (" + ", ".join(f"'{d.isoformat()}'" for d in days) + ")"


@dataclass
class RetentionReport:
    now: datetime
    cutoffs: dict[str, datetime | None]
    whole_days: list[date] = field(default_factory=list)   # deleted by partition predicate
    partial_days: list[date] = field(default_factory=list)  # row-level deletes
    tables: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # table → rows (to be) deleted
    by_policy: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # activity_raw rows per policy
    vacuumed: dict[str, int] = field(default_factory=dict)  # table → files removed by vacuum
    held: int = 0  # activity_raw rows their window expired but a legal hold keeps
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def deleted(self) -> int:
        return self.tables.get(ACTIVITY_RAW, 0)

    def as_detail(self, policy: RetentionPolicy) -> dict:
        return {
            "policy": policy.as_dict(),
            "cutoffs": {k: v.isoformat() if v else None for k, v in self.cutoffs.items()},
            "whole_days": {"count": len(self.whole_days), "first": _first(self.whole_days), "last": _last(self.whole_days)},
            "partial_days": len(self.partial_days),
            "deleted": dict(self.tables),
            "deleted_by_policy": dict(self.by_policy),
            "held": {"rows": self.held, "organizations": sorted(policy.held_organizations),
                     "projects": sorted(policy.held_projects)},
            "dry_run": self.dry_run,
        }


def _first(days: list[date]) -> str | None:
    return days[0].isoformat() if days else None


def _last(days: list[date]) -> str | None:
    return days[-1].isoformat() if days else None


def _with_retry(action: Callable[[], dict], attempts: int = 5) -> dict:
    """A delete that lost a race with a concurrent commit is evaluated again on the new version."""
    for attempt in range(attempts):
        try:
            return action()
        except CommitFailedError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    return {}


def _delete(lake: Lake, table_name: str, predicate: str) -> int:
    def run() -> dict:
        table = lake.table(table_name)
        return {} if table is None else table.delete(predicate)

    return int(_with_retry(run).get("num_deleted_rows", 0) or 0)


def apply_retention(lake: Lake, policy: RetentionPolicy, *, now: datetime | None = None, dry_run: bool = False,
                    log: Callable[[str], None] = lambda _: None, run_id: str | None = None) -> RetentionReport:
    """Delete (or, with ``dry_run``, count) what the policy expires. Vacuum is separate: :func:`vacuum`.

    Every prefix of the run leaves evidence of what is left to do: first the digest intent (the whole
    days to expire, the thinned days to digest again), then the derived tables, the ledgers and their
    bookkeeping, the quarantine, and the system of record last; then the digests. A run killed after
    any of these commits is finished by the next run: whole days are judged by date, so the re-run
    deletes what is left of them everywhere, and the open intent makes the next digest step (of any
    command) expire the digests of the days that are gone (transforms.recovery)."""
    from transforms.recovery import (LOG_STAGE, finish_digests, fingerprint_before, mark_stale, open_intent,
                                     record_refreshed, stale_days)

    started = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    report = RetentionReport(now=now, cutoffs=policy.cutoffs(now), dry_run=dry_run)
    days = lake.days(ACTIVITY_RAW)
    whole_before = policy.whole_days_before(now)
    known = [c for c in report.cutoffs.values() if c is not None]
    if not known:
        report.seconds = time.perf_counter() - started
        return report
    latest = max(known)
    report.whole_days = [d for d in days if whole_before is not None and d < whole_before]
    # A day can hold expired rows only if it starts before the latest cut-off.
    report.partial_days = [d for d in days if d not in report.whole_days
                           and datetime.combine(d, datetime.min.time(), tzinfo=timezone.utc) < latest]
    predicate = policy.sql(now)

    # What goes from the system of record, per policy (three columns of the affected days), and the
    # expired event ids of partially expired days (the ledgers have no project to judge by).
    expired_ids: dict[date, list[str]] = {}
    raw = lake.scan(ACTIVITY_RAW)
    if raw is not None and (report.whole_days or report.partial_days):
        labelled = raw.filter(pl.col("day").is_in(report.whole_days + report.partial_days)).select(
            "day", "id", "created_at", "team_id", "organization_id").with_columns(policy.label()).filter(
            pl.col("day").is_in(report.whole_days) | policy.expired(now))
        by_policy = labelled.group_by("policy").len().collect()
        report.by_policy.update({label: count for label, count in by_policy.iter_rows()})
        if policy.holds:  # every affected day is a partial one: no day is deleted whole under a hold
            report.held = raw.filter(pl.col("day").is_in(report.partial_days)).select(
                "created_at", "team_id", "organization_id").filter(
                policy.expired_by_window(now) & policy.held()).select(pl.len()).collect().item()
        if report.partial_days and any(lake.exists(n) for n in LEDGERS):
            partial = labelled.filter(pl.col("day").is_in(report.partial_days)).select("day", "id").collect()
            expired_ids = {d: g["id"].to_list() for (d,), g in partial.group_by("day")}
    if dry_run:
        _count_everything(lake, policy, now, report, expired_ids, whole_before)
        report.seconds = time.perf_counter() - started
        return report

    # Delete: derived tables first, the system of record last (a re-run finishes an interrupted run).
    from transforms.integrity import ACTIVITY_DIGESTS

    stale_before = set(stale_days(lake))  # days already behind activity_raw are left to a refresh
    if lake.exists(ACTIVITY_DIGESTS):
        open_intent(lake, "retention", digest=report.partial_days, expire=report.whole_days, run_id=run_id)
    # Derived rows go before raw rows: until raw's are gone too, the days are stale (a refresh by any
    # command in between rebuilds them from raw; the next retention deletes them again).
    mark_stale(lake, report.whole_days + report.partial_days, "retention in progress", run_id)
    # Whole days are judged by date, not by what activity_raw still holds: a run killed after deleting
    # some tables' days has the re-run delete the others' (each table is asked only if it holds such a day).
    whole_sql = f"day < '{whole_before.isoformat()}'" if whole_before is not None else None

    def holds_whole_days(name: str) -> bool:  # tables not partitioned by day are asked when raw has such days
        return whole_sql is not None and lake.exists(name) and (
            bool(report.whole_days) or any(d < whole_before for d in lake.days(name)))

    partial_sql = f"({_days_sql(report.partial_days)}) AND ({predicate})" if report.partial_days and predicate else None
    for name in [ACTIVITY_ITEM_HISTORY] + DERIVED_TABLES:
        for sql in (whole_sql, partial_sql):
            if sql is whole_sql and (name == ACTIVITY_ITEM_HISTORY and not report.whole_days or
                                     name != ACTIVITY_ITEM_HISTORY and not holds_whole_days(name)):
                continue
            if sql:
                deleted = _delete(lake, name, sql)
                report.tables[name] += deleted
                log(f"{name}: deleted {deleted:,} rows ({'whole days' if sql is whole_sql else 'expired rows'})")
    for name in LEDGERS + BOOKKEEPING:
        if holds_whole_days(name):
            report.tables[name] += _delete(lake, name, whole_sql)
    for name in LEDGERS:
        for day, ids in expired_ids.items():
            for start in range(0, len(ids), ID_CHUNK):
                chunk = ", ".join(_quote(i) for i in ids[start:start + ID_CHUNK])
                report.tables[name] += _delete(lake, name, f"day = '{day.isoformat()}' AND event_id IN ({chunk})")
    quarantine_cut = min(known) if whole_before is not None else None
    if quarantine_cut is not None and lake.exists(ACTIVITY_QUARANTINE):
        report.tables[ACTIVITY_QUARANTINE] += _delete(lake, ACTIVITY_QUARANTINE, f"ingested_at < {_ts(quarantine_cut)}")
    # The system of record last: until it is gone, a re-run finds the same days and ids again.
    for sql in (whole_sql if report.whole_days else None, partial_sql):
        if sql:
            deleted = _delete(lake, ACTIVITY_RAW, sql)
            report.tables[ACTIVITY_RAW] += deleted
            log(f"{ACTIVITY_RAW}: deleted {deleted:,} rows ({'whole days' if sql is whole_sql else 'expired rows'})")
    report.seconds = time.perf_counter() - started  # the deletes; the digests below are bookkeeping
    # The derived tables lost exactly the rows activity_raw lost: the days are up to date as they are.
    thinned = [d for d in report.whole_days + report.partial_days if d not in stale_before]
    if thinned:
        record_refreshed(lake, LOG_STAGE, fingerprint_before(lake, thinned), run_id)
    # The integrity chain: deleted days keep their digest, marked expired; thinned days get a new version.
    finish_digests(lake, report.partial_days, reason="retention", expire=report.whole_days, run_id=run_id,
                   create=False)
    return report


def _count_everything(lake: Lake, policy: RetentionPolicy, now: datetime, report: RetentionReport,
                      expired_ids: dict[date, list[str]], whole_before: date | None) -> None:
    """The dry run's per-table counts: what each delete would remove (nothing is changed)."""
    for name in EVENT_TABLES + [ACTIVITY_ITEM_HISTORY]:
        frame = lake.scan(name)
        if frame is None:
            continue
        rows = frame.filter(pl.col("day").is_in(report.whole_days + report.partial_days)).select(
            "day", "created_at", "team_id", "organization_id").filter(
            pl.col("day").is_in(report.whole_days) | policy.expired(now)).select(pl.len()).collect().item()
        report.tables[name] = rows
    ids = [i for v in expired_ids.values() for i in v]
    for name in LEDGERS + BOOKKEEPING:
        frame = lake.scan(name)
        if frame is None:
            continue
        condition = pl.col("day").is_in(report.whole_days)
        if name in LEDGERS and ids:
            condition = condition | (pl.col("day").is_in(list(expired_ids)) & pl.col("event_id").is_in(ids))
        report.tables[name] = frame.filter(condition).select(pl.len()).collect().item()
    known = [c for c in report.cutoffs.values() if c is not None]
    quarantine = lake.scan(ACTIVITY_QUARANTINE)
    if quarantine is not None and whole_before is not None:
        report.tables[ACTIVITY_QUARANTINE] = quarantine.filter(pl.col("ingested_at") < min(known)).select(
            pl.len()).collect().item()


ALL_TABLES = EVENT_TABLES + [ACTIVITY_ITEM_HISTORY, ACTIVITY_QUARANTINE] + LEDGERS + BOOKKEEPING


def vacuum(lake: Lake, grace: timedelta | None, tables: list[str] | None = None) -> dict[str, int]:
    """Remove data files deleted more than ``grace`` ago (None: never), then expire Delta log entries
    older than the grace too (they name the removed files and hold column statistics)."""
    if grace is None:
        return {}
    hours = int(grace.total_seconds() // 3600)
    removed = {}
    for name in tables or ALL_TABLES:
        table = lake.table(name)
        if table is None:
            continue
        files = table.vacuum(retention_hours=hours, dry_run=False, enforce_retention_duration=False)
        removed[name] = len(files)
        days = max(0, grace.days)
        if table.metadata().configuration.get("delta.logRetentionDuration") != f"interval {days} days":
            table.alter.set_table_properties({"delta.logRetentionDuration": f"interval {days} days"},
                                             raise_if_not_exists=False)
        table.create_checkpoint()
        table.cleanup_metadata()
    return removed


# ----------------------------------------------------------------------------------------------
# Recording a run as a system activity event, through the normal ingest path
# ----------------------------------------------------------------------------------------------

#: The organization that system events of the pipeline itself belong to (an event needs a level).
SYSTEM_ORGANIZATION = "activitylog-system"
SYSTEM_LANDING = "_system/landing"


def system_event(activity: str, detail: dict, now: datetime, event_id: str) -> dict:
    """A PostHog-shaped system event (scope ``ActivityLog``) about the pipeline's own actions."""
    return {
        "id": event_id, "activity": activity, "scope": "ActivityLog", "item_id": activity, "detail": detail,
        "user": None, "created_at": now.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
        "is_system": True, "was_impersonated": False, "team_id": None, "organization_id": SYSTEM_ORGANIZATION,
        "client": "activitylog",
    }


def write_system_event(lake: Lake, event: dict) -> str:
    """Write the event as a one-line landing file under ``<lake>/_system/landing/``; returns that
    landing area's URI, for :func:`transforms.ingest.ingest`."""
    import json

    from transforms.landing import _filesystem  # the landing area's own local/S3 handling

    landing = f"{lake.root}/{SYSTEM_LANDING}"
    name = f"{event['activity']}-{event['created_at'].replace(':', '')}-{event['id']}.jsonl"
    data = (json.dumps(event, ensure_ascii=False) + "\n").encode()
    filesystem, base = _filesystem(landing)
    filesystem.create_dir(base, recursive=True)
    with filesystem.open_output_stream(f"{base}/{name}") as stream:
        stream.write(data)
    return landing


def record_system_event(lake: Lake, activity: str, detail: dict, validation, *, run_id: str | None = None) -> set[date]:
    """Log one of the pipeline's own actions the way every event comes in: a landing file, the ingest,
    then the integrity chain of the days it changed. Returns those days."""
    import uuid

    from transforms.ingest import ingest
    from transforms.recovery import finish_digests

    event = system_event(activity, detail, datetime.now(timezone.utc), str(uuid.uuid4()))
    ingested = ingest(lake, write_system_event(lake, event), validation, run_id=run_id)
    finish_digests(lake, ingested.days_changed, run_id=run_id)
    return set(ingested.days_changed)
