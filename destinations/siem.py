"""The stream pass: every configured stream sends the events it has not sent yet to its sink
(:mod:`destinations.sinks`), batch by batch.

A sink either accepts a batch or raises :class:`DeliveryFailed`; the pass (:func:`run_streams`) records
the batch's event ids as acknowledged only after that. A stream whose sink fails stops where it is (its
progress stays) and resumes from there on the next run, losing nothing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from destinations.delivery import DeliveryFailed, RetryPolicy
from destinations.sinks import make_sink
from transforms.lake import Lake
from transforms.streams import (
    PAUSED, acknowledged, due_days, health_event, next_health, record_acks, record_health, record_progress, records,
    stream_health, stream_rows,
)


@dataclass
class StreamReport:
    streams: dict[str, Counter] = field(default_factory=dict)  # name → sent, batches, days
    errors: dict[str, str] = field(default_factory=dict)       # name → the error that paused it
    health: dict[str, dict] = field(default_factory=dict)      # name → state after this run (stream_health)
    alerts: list[dict] = field(default_factory=list)           # stream_failing / stream_recovered events

    def as_rows(self) -> list[dict[str, Any]]:
        def status(name: str) -> str:
            if name in self.errors:
                return "paused: " + self.errors[name]
            return "paused by the configuration" if self.health.get(name, {}).get("state") == PAUSED else "up to date"

        return [{"stream": n, "days": c["days"], "sent": c["sent"], "batches": c["batches"], "status": status(n)}
                for n, c in sorted(self.streams.items())]


def run_streams(lake: Lake, streams: dict, names: list[str] | None = None, *, log: Callable[[str], None] = print,
                policy: RetryPolicy | None = None, after_batch: Callable[[str, int], None] | None = None,
                alert: Callable[[dict], None] | None = None) -> StreamReport:
    """Deliver every due day of each stream (all, or ``names``). ``after_batch`` is a test hook called
    after each acknowledged batch. ``alert`` receives the system event of a stream entering or leaving
    ``failing`` (:func:`transforms.streams.health_event`) before the new state is recorded; if it
    raises, the state is not recorded, so the next run raises the alert again."""
    from transforms.query import team_organizations

    report = StreamReport()
    for name in names or sorted(streams):
        if name not in streams:
            raise KeyError(f"no stream named {name!r} (streams: {', '.join(sorted(streams)) or 'none configured'})")
        spec = streams[name]
        counts = report.streams.setdefault(name, Counter())
        if getattr(spec, "paused", False):
            now = datetime.now(timezone.utc)
            health = next_health(stream_health(lake).get(name), PAUSED, held=False, failing_after=0, now=now)
            record_health(lake, name, health, now)
            report.health[name] = health
            log(f"stream {name} is paused (paused: true): nothing sent, its days stay due")
            continue
        sink = make_sink(name, spec, policy)
        batch_size = getattr(spec.sink, "batch_size", 500)
        organizations = None
        if spec.filter.team_ids and spec.filter.include_organization:
            organizations = team_organizations(lake, spec.filter.team_ids, lake.scan("activity_log"))
        try:
            for day in due_days(lake, name):
                started = datetime.now(timezone.utc)
                rows = stream_rows(lake, spec.filter, day, acknowledged(lake, name, day).to_list(), organizations)
                for start in range(0, rows.height, batch_size):
                    batch = rows.slice(start, batch_size)
                    batch_id = uuid.uuid4().hex
                    where = sink.send(records(batch, spec.schema_name, spec.include_values), batch_id)
                    record_acks(lake, name, day, batch["id"].to_list(), batch_id)
                    counts["sent"] += batch.height
                    counts["batches"] += 1
                    if after_batch is not None:
                        after_batch(name, counts["batches"])
                    log(f"{name}: {day} batch of {batch.height} → {where}")
                record_progress(lake, name, day, started)
                counts["days"] += 1
        except DeliveryFailed as exc:
            report.errors[name] = str(exc)
            log(f"stream {name} paused: {exc} (nothing acknowledged is lost; the next run resumes here)")
            error, held = str(exc), not exc.retryable
        else:
            error, held = None, False
        now = datetime.now(timezone.utc)
        previous = stream_health(lake).get(name)
        health = next_health(previous, error, held=held, failing_after=getattr(spec, "failing_after", 900.0), now=now)
        event = health_event(name, previous, health, now)
        if event is not None:
            if alert is not None:
                alert(event)
            report.alerts.append(event)
            log(f"stream {name}: {event['activity']}")
        record_health(lake, name, health, now)
        report.health[name] = health
    return report
