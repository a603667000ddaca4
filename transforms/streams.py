"""SIEM streams without the network: what is due, the acknowledgement ledger, and the record shapes.

Progress is kept per stream and per day, so late events and days refreshed in any order are never
skipped (a single "last timestamp" cursor would skip a day refreshed after a later one):

* ``stream_ledger`` (Delta, partitioned by ``day``): one row per event a sink acknowledged —
  ``stream, day, event_id, batch_id, acked_at``. A run sends only the day's matching events that are not
  in it, in batches, and records each batch after the sink accepted it: at-least-once, with the event
  id as the receiver's dedupe key; a run after a failure resends only the unacknowledged batch.
* ``stream_progress``: ``stream, day, checked_at`` — when a stream last went through a day; a day is
  due again when ``activity_log`` wrote that day's files after it (new or late events).

* ``stream_health``: ``stream, state, since, last_error, recorded_at`` — one row per stream run; the
  latest row of a stream is its state: ``ok`` (the run delivered everything due), ``degraded`` (the
  run stopped on an error, for less than ``failing_after`` seconds since the incident began),
  ``failing`` (longer, or the sink refused a batch: a 4xx), ``paused`` (the configuration says
  ``paused: true``: nothing is sent, the days stay due). ``since`` is when the state began.

Schemas: ``native`` is the enriched event (the webhook's ``data``); ``ocsf`` is the OCSF 1.5.0 record
of ``transforms.ocsf`` (PostHog's mapping; values of changed fields only with ``include_values``);
``ocsf_api_activity`` is OCSF 1.1 API Activity (class 6003).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Iterable

import polars as pl

from transforms import jsontext
from transforms.lake import ACTIVITY_LOG, Lake
from transforms.ocsf import api_activity_record, ocsf_record

STREAM_LEDGER = "stream_ledger"
STREAM_PROGRESS = "stream_progress"
LEDGER_SCHEMA = {"stream": pl.String, "day": pl.Date, "event_id": pl.String, "batch_id": pl.String,
                 "acked_at": pl.Datetime("us", "UTC")}
STREAM_HEALTH = "stream_health"
HEALTH_SCHEMA = {"stream": pl.String, "state": pl.String, "since": pl.Datetime("us", "UTC"),
                 "last_error": pl.String, "recorded_at": pl.Datetime("us", "UTC")}
OK, DEGRADED, FAILING, PAUSED = "ok", "degraded", "failing", "paused"
PROGRESS_SCHEMA = {"stream": pl.String, "day": pl.Date, "checked_at": pl.Datetime("us", "UTC")}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def due_days(lake: Lake, stream: str) -> list[date]:
    """Days of ``activity_log`` written after this stream last went through them (or never)."""
    progress = lake.scan(STREAM_PROGRESS)
    checked = None if progress is None else progress.filter(pl.col("stream") == stream).select(
        "day", "checked_at").collect()
    return lake.days_written_after(ACTIVITY_LOG, checked)


def acknowledged(lake: Lake, stream: str, day: date) -> pl.Series:
    frame = lake.scan(STREAM_LEDGER)
    if frame is None:
        return pl.Series("event_id", [], dtype=pl.String)
    return frame.filter((pl.col("day") == day) & (pl.col("stream") == stream)).select("event_id").collect()["event_id"]


def record_acks(lake: Lake, stream: str, day: date, event_ids: list[str], batch_id: str) -> None:
    lake.append(STREAM_LEDGER, pl.DataFrame({
        "stream": [stream] * len(event_ids), "day": [day] * len(event_ids), "event_id": event_ids,
        "batch_id": [batch_id] * len(event_ids), "acked_at": [_now()] * len(event_ids)}, schema=LEDGER_SCHEMA),
        partition_by=["day"])


def record_progress(lake: Lake, stream: str, day: date, checked_at: datetime) -> None:
    lake.append(STREAM_PROGRESS, pl.DataFrame({"stream": [stream], "day": [day], "checked_at": [checked_at]},
                                              schema=PROGRESS_SCHEMA))


# ----------------------------------------------------------------------------------------------
# Record shapes
# ----------------------------------------------------------------------------------------------


def stream_health(lake: Lake) -> dict[str, dict[str, Any]]:
    """The latest health row of every stream that ran: stream → {state, since, last_error, recorded_at}."""
    frame = lake.scan(STREAM_HEALTH)
    if frame is None:
        return {}
    latest = frame.sort("recorded_at").group_by("stream").last().collect()
    return {row["stream"]: row for row in latest.iter_rows(named=True)}


def next_health(previous: dict[str, Any] | None, error: str | None, *, held: bool, failing_after: float,
                now: datetime) -> dict[str, Any]:
    """The state after a run: ``error`` is the run's error (``None``: it delivered everything due;
    :data:`PAUSED`: the configuration paused the stream); ``held``: the sink refused a batch (4xx),
    which is ``failing`` at once."""
    if error == PAUSED:  # paused by the configuration: not an error, nothing sent
        since = previous["since"] if previous and previous["state"] == PAUSED else now
        return {"state": PAUSED, "since": since, "last_error": previous["last_error"] if previous else None}
    if error is None:
        since = previous["since"] if previous and previous["state"] == OK else now
        return {"state": OK, "since": since, "last_error": previous["last_error"] if previous else None}
    began = previous["since"] if previous and previous["state"] != OK else now
    state = FAILING if held or (now - began).total_seconds() >= failing_after else DEGRADED
    return {"state": state, "since": began, "last_error": error}


def health_event(stream: str, previous: dict[str, Any] | None, health: dict[str, Any],
                 now: datetime) -> dict[str, Any] | None:
    """The system event of a stream entering ``failing`` (``stream_failing``) or leaving it for ``ok``
    (``stream_recovered``); None for any other change. It belongs to the system organization (scope
    ``ActivityLog``, ``item_id`` the stream), its one change is ``state`` before → after, and its id is
    derived from the stream, the activity and when the state began: the same transition spooled twice
    (a run killed between the spool and the health record) is one event to the ingest."""
    import hashlib

    from transforms.retention import system_event

    before, after = (previous or {}).get("state"), health["state"]
    if after == FAILING and before != FAILING:
        activity = "stream_failing"
    elif after == OK and before == FAILING:
        activity = "stream_recovered"
    else:
        return None
    since = _iso(health["since"])
    digest = hashlib.sha256(f"{stream}\0{activity}\0{since}".encode()).hexdigest()[:32]
    event = system_event(activity, {
        "name": stream, "short_id": None, "type": "stream",
        "changes": [{"type": "Stream", "action": "changed", "field": "state", "before": before, "after": after}],
        "trigger": None,
        "context": {"stream": stream, "since": since, "last_error": health.get("last_error")},
    }, health["since"] if activity == "stream_failing" else now, f"stream-{digest}")
    event["item_id"] = stream[:72]
    return event


def record_health(lake: Lake, stream: str, health: dict[str, Any], now: datetime) -> None:
    lake.append(STREAM_HEALTH, pl.DataFrame({"stream": [stream], "state": [health["state"]],
                                             "since": [health["since"]], "last_error": [health["last_error"]],
                                             "recorded_at": [now]}, schema=HEALTH_SCHEMA))


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if moment else None


def native_record(row: dict[str, Any]) -> dict[str, Any]:
    """The enriched event, JSON-ready (the same shape as a webhook's ``data``)."""
    detail = jsontext.embed(row.get("detail"))  # the exact JSON text, placed as is by jsontext.encode
    user = None
    if row.get("actor_uuid") is not None or row.get("actor_email") is not None:
        user = {"uuid": row.get("actor_uuid"), "email": row.get("actor_email"), "first_name": row.get("actor_first_name"),
                "last_name": row.get("actor_last_name"), "name": row.get("actor_name"), "role": row.get("actor_role")}
    return {
        "id": row["id"], "activity": row["activity"], "scope": row["scope"], "item_id": row.get("item_id"),
        "detail": detail, "user": user, "created_at": _iso(row.get("created_at")),
        "is_system": row.get("is_system"), "was_impersonated": row.get("was_impersonated"), "level": row.get("level"),
        "organization_id": row.get("organization_id"), "project_id": row.get("team_id"),
        "project_name": row.get("project_name"), "organization_name": row.get("organization_name"),
        "resource_name": row.get("resource_name"), "changed_fields": row.get("changed_fields"),
        "client": row.get("client"), "ip_address": row.get("ip_address"), "summary": row.get("summary"),
    }


def records(rows: pl.DataFrame, schema: str, include_values: bool = False) -> list[dict[str, Any]]:
    if schema == "ocsf":
        return [ocsf_record(row, include_values=include_values) for row in rows.iter_rows(named=True)]
    if schema == "ocsf_api_activity":
        return [api_activity_record(row) for row in rows.iter_rows(named=True)]
    return [native_record(row) for row in rows.iter_rows(named=True)]


def stream_rows(lake: Lake, activity_filter, day: date, done: Iterable[str], team_organizations=None) -> pl.DataFrame:
    """The day's rows matching the filter that the stream has not delivered, oldest first."""
    frame = lake.scan(ACTIVITY_LOG)
    if frame is None:
        return pl.DataFrame()
    rows = (frame.filter((pl.col("day") == day) & activity_filter.expression(team_organizations=team_organizations))
            .sort("created_at", "id").collect())
    done_ids = list(done)
    return rows.filter(~pl.col("id").is_in(done_ids)) if done_ids else rows


def stream_lag(lake: Lake, stream: str, activity_filter, now: datetime | None = None) -> dict[str, Any]:
    """What a stream has not delivered yet: ``days`` due, ``events`` matching and unacknowledged on them,
    ``oldest_age_seconds`` of the oldest such event (``None`` without one)."""
    now = now or _now()
    days = due_days(lake, stream)
    events, oldest = 0, None
    for day in days:
        rows = stream_rows(lake, activity_filter, day, acknowledged(lake, stream, day).to_list())
        if rows.height:
            events += rows.height
            first = rows["created_at"].min()
            oldest = first if oldest is None or first < oldest else oldest
    return {"days": len(days), "events": events,
            "oldest_age_seconds": None if oldest is None else round((now - oldest).total_seconds(), 3)}


def status_rows(lake: Lake, streams: dict, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every configured stream's health and lag (a stream that never ran reads ``ok`` with no ``since``)."""
    health = stream_health(lake)
    rows = []
    for name in sorted(streams):
        state = health.get(name) or {"state": OK, "since": None, "last_error": None}
        if getattr(streams[name], "paused", False) and state["state"] != PAUSED:  # paused since its last run
            state = {**state, "state": PAUSED}
        rows.append({"stream": name, "state": state["state"], "since": state["since"],
                     "last_error": state["last_error"], **stream_lag(lake, name, streams[name].filter, now)})
    return rows
