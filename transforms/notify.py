"""Notifications without Dagster and without the network: which events go where, and the ledger.

* :func:`evaluate` — every subscription over one day of ``activity_log`` in one vectorized pass (one
  Polars ``select`` of one Boolean expression per subscription; no loop over events).
* ``deliveries`` — the ledger, a Delta table partitioned by the event's ``day``. Append-only: each
  state change of a delivery is a new row, the latest row per ``delivery_id`` is its state:

  ``pending``  intent recorded, about to be sent (a crash leaves it here: the next run resends it with
               the same ``delivery_id``, which receivers see as ``webhook-id``)
  ``sent``     delivered
  ``skipped``  older than ``max_event_age`` when first evaluated: recorded, never sent
  ``failed``   retries exhausted or destination disabled (dead letter, with the last error);
               ``activitylog notify --retry-failed`` sends them again

  One delivery per (subscription, event, destination): ``delivery_id`` is derived from the three, so a
  second evaluation of the same day finds it and never sends it again.
* ``notify_evaluations`` — which days were evaluated, against which version of ``activity_log``.
* ``notify_destination_state`` — destinations disabled by a permanent error (404/410), with a hash of
  the URL they had: when the configured URL changes, the destination is enabled again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Iterable, Mapping, Sequence

import polars as pl

from transforms.filters import ActivityFilter
from transforms.lake import Lake

DELIVERIES = "deliveries"
NOTIFY_EVALUATIONS = "notify_evaluations"
DESTINATION_STATE = "notify_destination_state"

PENDING, SENT, SKIPPED, FAILED = "pending", "sent", "skipped", "failed"

DELIVERY_SCHEMA = {
    "delivery_id": pl.String, "day": pl.Date, "subscription": pl.String, "destination": pl.String,
    "event_id": pl.String, "event_created_at": pl.Datetime("us", "UTC"), "status": pl.String,
    "attempts": pl.Int32, "error": pl.String, "recorded_at": pl.Datetime("us", "UTC"), "run_id": pl.String,
}
EVALUATION_SCHEMA = {
    "day": pl.Date, "log_version": pl.Int64, "evaluated_at": pl.Datetime("us", "UTC"), "run_id": pl.String,
    "matched": pl.Int64, "sent": pl.Int64, "skipped": pl.Int64, "failed": pl.Int64,
}
DESTINATION_STATE_SCHEMA = {
    "destination": pl.String, "disabled": pl.Boolean, "reason": pl.String, "url_sha256": pl.String,
    "recorded_at": pl.Datetime("us", "UTC"),
}


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


def evaluate(log: pl.DataFrame, subscriptions: Sequence[tuple[str, ActivityFilter]],
             team_organizations: Mapping[int, Iterable[str]] | None = None) -> pl.DataFrame:
    """``(subscription, event_id, day, event_created_at)`` for every match, in one pass over ``log``.

    Each subscription is one Boolean column of a single ``select`` (Polars evaluates them in parallel
    and shares common sub-expressions, e.g. the same scope test in many subscriptions); the matches are
    then read per column with ``arg_true``.
    """
    empty = pl.DataFrame(schema={"subscription": pl.String, "event_id": pl.String, "day": pl.Date,
                                 "event_created_at": pl.Datetime("us", "UTC")})
    if log.height == 0 or not subscriptions:
        return empty
    columns = [f.expression(team_organizations=team_organizations).fill_null(False).alias(f"_s{i}")
               for i, (_, f) in enumerate(subscriptions)]
    # with_columns, not select: a filter that matches everything is a literal, which select would
    # return as a single row.
    flags = log.lazy().with_columns(columns).select(f"_s{i}" for i in range(len(subscriptions))).collect()
    keys = log.select(pl.col("id").alias("event_id"), "day", pl.col("created_at").alias("event_created_at"))
    parts = []
    for i, (name, _) in enumerate(subscriptions):
        rows = flags.get_column(f"_s{i}").arg_true()
        if rows.len():
            parts.append(keys[rows].with_columns(pl.lit(name).alias("subscription")))
    if not parts:
        return empty
    return pl.concat(parts).select(empty.columns)


def route_key(subscription: str, destination: str) -> str:
    """A short, stable key of one (subscription, destination) route."""
    return hashlib.sha256(f"{subscription}\x00{destination}".encode()).hexdigest()[:16]


def deliveries_for(matches: pl.DataFrame, routes: Mapping[str, Sequence[str]]) -> pl.DataFrame:
    """Matches × each subscription's destinations, with their ``delivery_id`` (``msg_<route>_<event id>``)."""
    pairs = [(s, d, route_key(s, d)) for s, destinations in routes.items() for d in destinations]
    route_frame = pl.DataFrame(pairs, schema={"subscription": pl.String, "destination": pl.String,
                                              "_route": pl.String}, orient="row")
    return (
        matches.join(route_frame, on="subscription", how="inner")
        .with_columns(pl.concat_str(pl.lit("msg_"), pl.col("_route"), pl.lit("_"), pl.col("event_id"))
                      .alias("delivery_id"))
        .drop("_route")
    )


# ----------------------------------------------------------------------------------------------
# The ledger
# ----------------------------------------------------------------------------------------------


def ledger_state(lake: Lake, days: Iterable[date] | None = None) -> pl.DataFrame:
    """The latest row of every delivery on ``days`` (all days when None; partitions prune)."""
    frame = lake.scan(DELIVERIES)
    if frame is None:
        return pl.DataFrame(schema=DELIVERY_SCHEMA)
    if days is not None:
        day_list = sorted(set(days))
        if not day_list:
            return pl.DataFrame(schema=DELIVERY_SCHEMA)
        frame = frame.filter(pl.col("day").is_in(day_list))
    return (frame.sort("recorded_at", maintain_order=True)
            .group_by("delivery_id", maintain_order=True).last().collect())


def record(lake: Lake, rows: pl.DataFrame, status: str, *, run_id: str | None = None,
           error: str | None = None, attempts: int | None = None) -> None:
    """Append one ledger row per delivery in ``rows`` with the new ``status`` (one atomic commit)."""
    if rows.height == 0:
        return
    stamped = rows.with_columns(
        pl.lit(status).alias("status"),
        pl.lit(now_utc()).cast(pl.Datetime("us", "UTC")).alias("recorded_at"),
        pl.lit(run_id, dtype=pl.String).alias("run_id"),
        (pl.lit(error, dtype=pl.String) if error is not None or "error" not in rows.columns
         else pl.col("error")).alias("error"),
        (pl.lit(attempts, dtype=pl.Int32) if attempts is not None or "attempts" not in rows.columns
         else pl.col("attempts").cast(pl.Int32)).alias("attempts"),
    )
    lake.append(DELIVERIES, stamped.select([pl.col(c).cast(t) for c, t in DELIVERY_SCHEMA.items()]),
                partition_by=["day"])


@dataclass
class DeliveryPlan:
    to_send: pl.DataFrame       # new intents and resumed pending ones, with the ledger columns
    new_skipped: pl.DataFrame   # first evaluated after max_event_age: recorded as skipped
    already: pl.DataFrame       # delivered, skipped or failed before: nothing to do
    resumed: int                # pending rows left by an interrupted run (resent with the same id)


def plan_deliveries(candidates: pl.DataFrame, state: pl.DataFrame, *, max_event_age: timedelta | None,
                    now: datetime | None = None) -> DeliveryPlan:
    """Split ``candidates`` (from :func:`deliveries_for`) against the ledger ``state``."""
    now = now or now_utc()
    known = candidates.join(state.select("delivery_id", "status", "attempts"), on="delivery_id", how="left")
    fresh = known.filter(pl.col("status").is_null()).drop("status", "attempts")
    resumed = known.filter(pl.col("status") == PENDING).drop("status")
    already = known.filter(pl.col("status").is_in([SENT, SKIPPED, FAILED]))
    too_old = (pl.col("event_created_at") < (now - max_event_age)) if max_event_age is not None else pl.lit(False)
    new_skipped = fresh.filter(too_old)
    new_intents = fresh.filter(~too_old).with_columns(pl.lit(0, dtype=pl.Int32).alias("attempts"))
    to_send = pl.concat([new_intents, resumed.with_columns(pl.col("attempts").cast(pl.Int32))], how="diagonal_relaxed")
    return DeliveryPlan(to_send=to_send, new_skipped=new_skipped, already=already, resumed=resumed.height)


def failed_deliveries(lake: Lake) -> pl.DataFrame:
    """Every delivery whose latest state is ``failed`` (the dead letters)."""
    state = ledger_state(lake)
    return state.filter(pl.col("status") == FAILED)


def compact_ledger(lake: Lake, days: Iterable[date], max_files: int = 16) -> None:
    """One ledger commit per message leaves small files; compact the days that gathered many."""
    table = lake.table(DELIVERIES)
    actions = lake.add_actions(DELIVERIES)
    if table is None or "partition.day" not in actions.columns:
        return
    busy = (actions.filter(pl.col("partition.day").is_in(sorted(set(days))))
            .group_by("partition.day").len().filter(pl.col("len") > max_files)["partition.day"].to_list())
    for day in busy:
        try:
            table.optimize.compact(partition_filters=[("day", "=", day.isoformat())])
        except Exception:  # noqa: BLE001 - best effort; a concurrent writer wins, the next run compacts
            return


# ----------------------------------------------------------------------------------------------
# Evaluations and destination state
# ----------------------------------------------------------------------------------------------


def record_evaluation(lake: Lake, day: date, log_version: int | None, counts: Mapping[str, int],
                      run_id: str | None) -> None:
    row = pl.DataFrame([{
        "day": day, "log_version": log_version, "evaluated_at": now_utc(), "run_id": run_id,
        "matched": counts.get("matched", 0), "sent": counts.get("sent", 0), "skipped": counts.get("skipped", 0),
        "failed": counts.get("failed", 0),
    }], schema=EVALUATION_SCHEMA)
    lake.append(NOTIFY_EVALUATIONS, row)


def days_to_evaluate(lake: Lake) -> list[date]:
    """Days of ``activity_log`` written after their last evaluation (or never evaluated)."""
    from transforms.lake import ACTIVITY_LOG

    evaluations = lake.scan(NOTIFY_EVALUATIONS)
    checked = None if evaluations is None else evaluations.select(
        "day", pl.col("evaluated_at").alias("checked_at")).collect()
    return lake.days_written_after(ACTIVITY_LOG, checked)


def url_fingerprint(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def disabled_destinations(lake: Lake) -> dict[str, tuple[str, str]]:
    """destination → (reason, url_sha256) for destinations whose latest state is disabled."""
    frame = lake.scan(DESTINATION_STATE)
    if frame is None:
        return {}
    latest = frame.sort("recorded_at").group_by("destination", maintain_order=True).last().collect()
    return {d: (r, h) for d, disabled, r, h in latest.select("destination", "disabled", "reason", "url_sha256").iter_rows()
            if disabled}


def set_destination_state(lake: Lake, destination: str, *, disabled: bool, reason: str | None, url_sha256: str | None) -> None:
    lake.append(DESTINATION_STATE, pl.DataFrame([{
        "destination": destination, "disabled": disabled, "reason": reason, "url_sha256": url_sha256,
        "recorded_at": now_utc()}], schema=DESTINATION_STATE_SCHEMA))
