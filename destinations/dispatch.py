"""One notify pass: evaluate subscriptions for days, record intents, send, record outcomes.

Exactly once per (subscription, event, destination):

1. every subscription is evaluated over the day in one pass (:func:`transforms.notify.evaluate`);
2. deliveries already in the ledger (sent, skipped, failed) are left alone; events older than
   ``max_event_age`` at their first evaluation are recorded as ``skipped``;
3. the intent (``pending``) of every remaining delivery is recorded in one commit, **before** sending;
4. each message is sent, then its deliveries are recorded ``sent`` (or ``failed`` with the error).

The window: a crash between a send and its ``sent`` record leaves that message's deliveries
``pending``; the next pass sends exactly those again, with the same ``webhook-id`` (the delivery id),
so a receiver that dedupes on it sees one message. Slack has no such key: there the in-flight message
can appear twice. Nothing else is ever sent twice, and nothing is dropped: every match ends in the
ledger as sent, skipped or failed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable, Iterable

import polars as pl

from destinations.channels import channel_for
from destinations.delivery import DeliveryFailed, RetryPolicy
from destinations.templates import TemplateProblem
from transforms.lake import ACTIVITY_LOG, Lake
from transforms.notify import (
    FAILED, PENDING, SENT, SKIPPED, compact_ledger, deliveries_for, disabled_destinations, evaluate, failed_deliveries,
    ledger_state, plan_deliveries, record, record_evaluation, set_destination_state, url_fingerprint,
)

LEDGER_COLUMNS = ["delivery_id", "day", "subscription", "destination", "event_id", "event_created_at", "attempts"]


@dataclass
class NotifyReport:
    days: list[date] = field(default_factory=list)
    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # subscription → counts
    errors: list[str] = field(default_factory=list)
    disabled: dict[str, str] = field(default_factory=dict)  # destination → reason (disabled in this pass)
    resumed: int = 0

    def total(self, key: str) -> int:
        return sum(c[key] for c in self.counts.values())

    @property
    def failed(self) -> int:
        return self.total("failed")

    def as_rows(self) -> list[dict[str, Any]]:
        return [{"subscription": name, **{k: counts.get(k, 0) for k in ("matched", "sent", "skipped", "failed",
                                                                       "already")}}
                for name, counts in sorted(self.counts.items())]

    def markdown(self) -> str:
        lines = ["| subscription | matched | sent | skipped | failed | already delivered |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['subscription']} | {r['matched']} | {r['sent']} | {r['skipped']} | {r['failed']} | {r['already']} |"
                  for r in self.as_rows()]
        return "\n".join(lines)


class Router:
    """The configured destinations as clients (opened once per pass), each through its channel."""

    def __init__(self, notifications, policy: RetryPolicy | None = None) -> None:
        self.config = notifications
        self.policy = policy
        self._clients: dict[str, Any] = {}

    def url_of(self, name: str) -> str | None:
        spec = self.config.destinations[name]
        return channel_for(spec).address(spec, f"notifications.destinations.{name}")

    def batch_size(self, name: str) -> int:
        spec = self.config.destinations[name]
        return channel_for(spec).batch_size(spec)

    def client(self, name: str):
        if name not in self._clients:
            spec = self.config.destinations[name]
            policy = self.policy or RetryPolicy(max_attempts=getattr(spec, "max_attempts", 1))
            self._clients[name] = channel_for(spec).open(spec, f"notifications.destinations.{name}", policy)
        return self._clients[name]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def notify_days(lake: Lake, notifications, days: Iterable[date], *, run_id: str | None = None,
                log: Callable[[str], None] = print, now: datetime | None = None,
                policy: RetryPolicy | None = None, after_send: Callable[[list[str]], None] | None = None,
                ) -> NotifyReport:
    """Evaluate every subscription for each day and deliver what is new. ``after_send`` (for tests of
    the crash window) is called with the delivery ids of each message right after it was sent."""
    from transforms.query import team_organizations

    report = NotifyReport()
    subscriptions = [(s.name, s.filter) for s in notifications.subscriptions]
    routes = {s.name: s.destinations for s in notifications.subscriptions}
    max_age = (notifications.max_event_age.to_timedelta() if notifications.max_event_age is not None else None)
    router = Router(notifications, policy)
    try:
        ordered = sorted(set(days))
        for position, day in enumerate(ordered, 1):
            counter = f"[{position}/{len(ordered)}] "
            report.days.append(day)
            log_rows = lake.read_days(ACTIVITY_LOG, [day])
            if log_rows is None or log_rows.height == 0 or not subscriptions:
                record_evaluation(lake, day, lake.version(ACTIVITY_LOG), {}, run_id)
                log(f"{counter}{day}: nothing to evaluate")
                continue
            teams = tuple(sorted({t for _, f in subscriptions if f.include_organization for t in f.team_ids}))
            organizations = team_organizations(lake, teams, log_rows.lazy()) if teams else None
            matches = evaluate(log_rows, subscriptions, organizations)
            for name, count in matches.group_by("subscription").agg(pl.col("event_id").n_unique()).iter_rows():
                report.counts[name]["matched"] += count
            candidates = deliveries_for(matches, routes)
            plan = plan_deliveries(candidates, ledger_state(lake, [day]), max_event_age=max_age, now=now)
            report.resumed += plan.resumed
            _count(report, plan.already, "already")
            record(lake, plan.new_skipped.select(LEDGER_COLUMNS[:-1]), SKIPPED, run_id=run_id, attempts=0)
            _count(report, plan.new_skipped, "skipped")
            fresh = plan.to_send.filter(pl.col("attempts") == 0)
            record(lake, fresh.select(LEDGER_COLUMNS), PENDING, run_id=run_id)  # intent, before any send
            _send(lake, router, notifications, plan.to_send, log_rows, report, run_id=run_id, log=log,
                  after_send=after_send)
            counts = {k: sum(c[k] for c in report.counts.values()) for k in ("matched", "sent", "skipped", "failed")}
            record_evaluation(lake, day, lake.version(ACTIVITY_LOG), counts, run_id)
            compact_ledger(lake, [day])
            log(f"{counter}{day}: {matches.height:,} matches, {plan.to_send.height:,} to send"
                + (f" ({plan.resumed} resumed after an interrupted run)" if plan.resumed else "")
                + f", {plan.new_skipped.height:,} skipped (older than {notifications.max_event_age}), "
                  f"{plan.already.height:,} already handled")
    finally:
        router.close()
    return report


def retry_failed(lake: Lake, notifications, *, run_id: str | None = None, log: Callable[[str], None] = print,
                 policy: RetryPolicy | None = None) -> NotifyReport:
    """Send the dead letters again (subscriptions and destinations as configured now)."""
    report = NotifyReport()
    failed = failed_deliveries(lake)
    known = {s.name for s in notifications.subscriptions}
    gone = failed.filter(~pl.col("subscription").is_in(list(known)) | ~pl.col("destination").is_in(
        list(notifications.destinations)))
    if gone.height:
        log(f"{gone.height} failed deliveries belong to subscriptions or destinations no longer configured: left as failed")
    failed = failed.join(gone.select("delivery_id"), on="delivery_id", how="anti")
    if failed.height == 0:
        log("no failed deliveries to retry")
        return report
    router = Router(notifications, policy)
    try:
        for (day,), rows in failed.group_by("day", maintain_order=True):
            log_rows = lake.read_days(ACTIVITY_LOG, [day])
            report.days.append(day)
            pending = rows.select(LEDGER_COLUMNS).with_columns(pl.lit(0, dtype=pl.Int32).alias("attempts"))
            record(lake, pending, PENDING, run_id=run_id)
            _send(lake, router, notifications, pending, log_rows if log_rows is not None else pl.DataFrame(),
                  report, run_id=run_id, log=log)
    finally:
        router.close()
    return report


def _count(report: NotifyReport, rows: pl.DataFrame, key: str) -> None:
    if rows.height:
        for name, count in rows.group_by("subscription").len().iter_rows():
            report.counts[name][key] += count


def _send(lake: Lake, router: Router, notifications, to_send: pl.DataFrame, log_rows: pl.DataFrame,
          report: NotifyReport, *, run_id: str | None, log: Callable[[str], None],
          after_send: Callable[[list[str]], None] | None = None) -> None:
    if to_send.height == 0:
        return
    events = {row["id"]: row for row in log_rows.filter(pl.col("id").is_in(to_send["event_id"].unique().to_list()))
              .iter_rows(named=True)} if log_rows.height else {}
    disabled = disabled_destinations(lake)
    templates = {s.name: s.template for s in notifications.subscriptions}
    for (destination, subscription), rows in to_send.sort("event_created_at", "event_id").group_by(
            ["destination", "subscription"], maintain_order=True):
        rows = rows.select(LEDGER_COLUMNS)
        spec = notifications.destinations[destination]
        reason = _disabled_reason(lake, router, destination, disabled)
        if reason:
            record(lake, rows, FAILED, run_id=run_id, error=f"destination {destination} is disabled: {reason}")
            _count(report, rows, "failed")
            report.errors.append(f"{destination}: disabled ({reason}); {rows.height} deliveries recorded as failed")
            continue
        missing = rows.filter(~pl.col("event_id").is_in(list(events)))
        if missing.height:  # the event left activity_log (retention) before it could be sent
            record(lake, missing, FAILED, run_id=run_id, error="event no longer in activity_log")
            _count(report, missing, "failed")
            rows = rows.filter(pl.col("event_id").is_in(list(events)))
        batch_size = router.batch_size(destination)
        for start in range(0, rows.height, batch_size):
            batch = rows.slice(start, batch_size)
            try:
                attempts = _deliver(router, destination, spec, subscription, templates[subscription], batch, events)
            except (DeliveryFailed, TemplateProblem) as exc:
                attempts = getattr(exc, "attempts", 0)
                record(lake, batch.with_columns(pl.lit(attempts, dtype=pl.Int32).alias("attempts")), FAILED,
                       run_id=run_id, error=str(exc))
                _count(report, batch, "failed")
                report.errors.append(f"{subscription} → {destination}: {exc}")
                log(f"delivery failed: {subscription} → {destination}: {exc}")
                if isinstance(exc, DeliveryFailed) and exc.permanent:
                    set_destination_state(lake, destination, disabled=True, reason=str(exc),
                                          url_sha256=url_fingerprint(router.url_of(destination) or ""))
                    disabled = disabled_destinations(lake)
                    report.disabled[destination] = str(exc)
                    log(f"destination {destination} DISABLED: {exc}. Fix its URL in the configuration (a new URL "
                        f"enables it again); then `activitylog notify --retry-failed`.")
                    rest = rows.slice(start + batch_size)
                    if rest.height:
                        record(lake, rest, FAILED, run_id=run_id, error=f"destination {destination} is disabled: {exc}")
                        _count(report, rest, "failed")
                    break
                continue
            if after_send is not None:
                after_send(batch["delivery_id"].to_list())
            record(lake, batch.with_columns(pl.lit(attempts, dtype=pl.Int32).alias("attempts")), SENT, run_id=run_id)
            _count(report, batch, "sent")


def _disabled_reason(lake: Lake, router: Router, destination: str, disabled: dict[str, tuple[str, str]]) -> str | None:
    if destination not in disabled:
        return None
    reason, fingerprint = disabled[destination]
    if url_fingerprint(router.url_of(destination) or "") != fingerprint:  # fixed: a new URL is configured
        set_destination_state(lake, destination, disabled=False, reason="URL changed", url_sha256=None)
        return None
    return reason


def _deliver(router: Router, destination: str, spec, subscription: str, template_path: str | None,
             batch: pl.DataFrame, events: dict[str, dict]) -> int:
    rows = [events[e] for e in batch["event_id"].to_list()]
    return channel_for(spec).send(router.client(destination), spec, destination, subscription, template_path,
                                  batch["delivery_id"].to_list(), rows)


def send_test(lake: Lake, notifications, subscription_name: str, *, log: Callable[[str], None] = print,
              policy: RetryPolicy | None = None) -> list[str]:
    """Send one sample message of a subscription to each of its destinations (not recorded in the
    ledger): its latest matching event, else the latest event of the lake. Returns problems."""
    from transforms.query import query

    subscription = notifications.subscription(subscription_name)
    sample = query(lake, subscription.filter, limit=1)
    rows = sample.collect() if sample is not None else pl.DataFrame()
    if rows.height == 0:
        fallback = query(lake, type(subscription.filter)(), limit=1)
        rows = fallback.collect() if fallback is not None else pl.DataFrame()
    if rows.height == 0:
        return ["the lake has no events to send as a sample: run `activitylog ingest` first"]
    row = rows.row(0, named=True)
    events = {row["id"]: row}
    router = Router(notifications, policy)
    problems = []
    try:
        for destination in subscription.destinations:
            batch = pl.DataFrame([{"delivery_id": f"test_{route_id()}", "day": row["day"], "subscription": subscription.name,
                                   "destination": destination, "event_id": row["id"],
                                   "event_created_at": row["created_at"], "attempts": 0}])
            try:
                _deliver(router, destination, notifications.destinations[destination], subscription.name,
                         subscription.template, batch, events)
                log(f"sent a sample of {subscription.name!r} to {destination}")
            except (DeliveryFailed, TemplateProblem) as exc:
                problems.append(f"{destination}: {exc}")
    finally:
        router.close()
    return problems


def route_id() -> str:
    import uuid

    return uuid.uuid4().hex[:16]
