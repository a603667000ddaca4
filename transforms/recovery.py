"""Recovery: durable evidence of unfinished work, so that a run killed at any commit is finished by the next.

Two small Delta tables, written only by this module:

``refresh_state`` (one row per day and refresh stage, append-only; the latest row of a day wins)
    After a refresh has written a day's derived tables (``activity_events``, ``activity_changes``,
    ``activity_log``, ``activity_item_history``), the day's *fingerprint* is recorded: a SHA-256 over
    the paths and sizes of ``activity_raw``'s live files of that day, read from the Delta log (no data
    is read). The fingerprint is taken before the refresh reads the raw rows (stage ``events``) and
    copied to the final row (stage ``log``) once the day is written all the way through, so a raw
    change that lands while a refresh runs leaves the day stale, never falsely up to date.

    A day is **stale** when its raw fingerprint differs from the recorded one: no row yet, a raw commit
    since (an ingest killed before its refresh, an erasure, a retention), a failed refresh (a row with
    ``status = failed``), or a day that ``activity_raw`` no longer holds but a derived table does.
    Every command that changes the lake refreshes the stale days along with the days it changed
    (:func:`stale_days`), so a crash anywhere is repaired by the next run without anyone noticing.

``digest_intents`` (one row per day and intent, append-only)
    Written *before* every commit that changes ``activity_raw`` (ingest, retention, erasure): the days
    about to change and why (``digest``: a new version of the day's digest is owed; ``expire``: the day
    is about to be deleted, its digest is to be marked expired). The digest step
    (:func:`finish_digests`) does what every open intent owes along with its own days, then closes the
    intents. A change of ``activity_raw`` without an intent is never digested on its own: it stays a
    ``verify`` failure, as tampering must.

Failure isolation (:func:`run_isolated`): a refresh stage that fails on a batch of days is run again
day by day; a day that still fails is bisected to the event that makes it fail, recorded as failed in
``refresh_state`` (day, stage, event id, error), and left as it was; the other days go on.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Callable, Iterable

import polars as pl

from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_EVENTS, ACTIVITY_LOG, ACTIVITY_RAW, Lake

REFRESH_STATE = "refresh_state"
DIGEST_INTENTS = "digest_intents"

#: The fingerprint of a day that ``activity_raw`` does not hold.
EMPTY = "empty"

EVENTS_STAGE, CHANGES_STAGE, LOG_STAGE = "events", "changes", "log"
OK, FAILED, PENDING = "ok", "failed", "pending"
DIGEST, EXPIRE = "digest", "expire"
OPEN, CLOSED = "open", "closed"

STATE_SCHEMA = {
    "day": pl.Date, "stage": pl.String, "status": pl.String, "fingerprint": pl.String, "event_id": pl.String,
    "error": pl.String, "recorded_at": pl.Datetime("us", "UTC"), "run_id": pl.String,
}
INTENT_SCHEMA = {
    "intent_id": pl.String, "day": pl.Date, "action": pl.String, "reason": pl.String, "state": pl.String,
    "recorded_at": pl.Datetime("us", "UTC"), "run_id": pl.String,
}

#: Test only: ``YYYY-MM-DD`` makes every refresh stage fail on the events of that day whose id starts
#: with ``poison`` (to exercise failure isolation; never set it in production).
POISON_ENV = "ACTIVITYLOG_TEST_POISON_DAY"


def _now() -> datetime:
    return datetime.now(timezone.utc)


# ----------------------------------------------------------------------------------------------
# Fingerprints and stale days
# ----------------------------------------------------------------------------------------------

def raw_fingerprints(lake: Lake, days: Iterable[date] | None = None) -> dict[date, str]:
    """day → SHA-256 of the sorted ``path TAB size`` of ``activity_raw``'s live files of that day."""
    actions = lake.add_actions(ACTIVITY_RAW)
    if actions.height == 0 or "partition.day" not in actions.columns:
        return {}
    wanted = None if days is None else set(days)
    out: dict[date, str] = {}
    rows = actions.select(pl.col("partition.day").alias("day"), "path", "size_bytes" if "size_bytes" in
                          actions.columns else "size").sort("day", "path")
    for (day,), group in rows.group_by("day", maintain_order=True):
        if day is None or (wanted is not None and day not in wanted):
            continue
        digest = hashlib.sha256()
        for path, size in group.select(group.columns[1], group.columns[2]).iter_rows():
            digest.update(f"{path}\t{size}\n".encode())
        out[day] = digest.hexdigest()
    return out


def _state(lake: Lake) -> pl.DataFrame:
    frame = lake.scan(REFRESH_STATE)
    return pl.DataFrame(schema=STATE_SCHEMA) if frame is None else frame.collect()


def recorded_fingerprints(lake: Lake) -> dict[date, str | None]:
    """day → the fingerprint its derived tables were last built from (None: the last attempt failed)."""
    state = _state(lake)
    if state.height == 0:
        return {}
    final = state.filter((pl.col("stage") == LOG_STAGE) | (pl.col("status") == FAILED))
    latest = final.sort("recorded_at").group_by("day", maintain_order=True).last()
    return {day: (fp if status == OK else None)
            for day, status, fp in latest.select("day", "status", "fingerprint").iter_rows()}


def stale_days(lake: Lake) -> list[date]:
    """The days whose derived tables do not reflect ``activity_raw`` as it is now (see the module docs)."""
    raw = raw_fingerprints(lake)
    recorded = recorded_fingerprints(lake)
    derived: set[date] = set()
    for name in (ACTIVITY_EVENTS, ACTIVITY_CHANGES, ACTIVITY_LOG):
        derived |= set(lake.days(name))
    stale = []
    for day in sorted(set(raw) | set(recorded) | derived):
        now = raw.get(day, EMPTY)
        if day in recorded:
            if recorded[day] != now:
                stale.append(day)
        elif day in raw or day in derived:  # never recorded: a lake written before, or a crash
            stale.append(day)
    return stale


def record_refreshed(lake: Lake, stage: str, fingerprints: dict[date, str], run_id: str | None) -> None:
    """Record that ``stage`` built these days from raw with these fingerprints (one commit)."""
    if not fingerprints:
        return
    now = _now()
    lake.append(REFRESH_STATE, pl.DataFrame([
        {"day": day, "stage": stage, "status": OK, "fingerprint": fp, "event_id": None, "error": None,
         "recorded_at": now, "run_id": run_id} for day, fp in sorted(fingerprints.items())], schema=STATE_SCHEMA))


def record_failed(lake: Lake, failures: dict[date, "DayFailure"], run_id: str | None) -> None:
    """Record failed days (each with its stage, event id and error): they stay stale (one commit)."""
    if not failures:
        return
    now = _now()
    lake.append(REFRESH_STATE, pl.DataFrame([
        {"day": day, "stage": f.stage, "status": FAILED, "fingerprint": None, "event_id": f.event_id,
         "error": f.error, "recorded_at": now, "run_id": run_id} for day, f in sorted(failures.items())],
        schema=STATE_SCHEMA))


def mark_stale(lake: Lake, days: Iterable[date], why: str, run_id: str | None) -> None:
    """Record that the derived tables of ``days`` are about to diverge from ``activity_raw`` (retention
    deletes from them before it deletes raw rows): killed in between, the days are stale (one commit)."""
    day_list = sorted(set(days))
    if not day_list:
        return
    now = _now()
    lake.append(REFRESH_STATE, pl.DataFrame([
        {"day": day, "stage": LOG_STAGE, "status": PENDING, "fingerprint": None, "event_id": None, "error": why,
         "recorded_at": now, "run_id": run_id} for day in day_list], schema=STATE_SCHEMA))


def fingerprint_before(lake: Lake, days: Iterable[date]) -> dict[date, str]:
    """The fingerprints of ``days`` now (``EMPTY`` for days raw does not hold): taken before reading."""
    day_list = sorted(set(days))
    current = raw_fingerprints(lake, day_list)
    return {day: current.get(day, EMPTY) for day in day_list}


def run_stage_fingerprints(lake: Lake, run_id: str | None, days: Iterable[date]) -> tuple[dict[date, str], set[date]]:
    """(the ``events``-stage fingerprints this run recorded for ``days``, the days any stage of this run
    recorded as failed)."""
    state = _state(lake)
    wanted = set(days)
    if state.height == 0 or run_id is None:
        return {}, set()
    mine = state.filter(pl.col("run_id") == run_id)
    failed = {d for d in mine.filter(pl.col("status") == FAILED)["day"].to_list() if d in wanted}
    events = mine.filter((pl.col("stage") == EVENTS_STAGE) & (pl.col("status") == OK)).sort("recorded_at")
    fingerprints = {day: fp for day, fp in events.select("day", "fingerprint").iter_rows() if day in wanted}
    return fingerprints, failed


def failures_of_run(lake: Lake, run_id: str | None) -> pl.DataFrame:
    """The failed rows a run recorded: ``day, stage, event_id, error``."""
    state = _state(lake)
    if state.height == 0 or run_id is None:
        return state.select("day", "stage", "event_id", "error")
    return (state.filter((pl.col("run_id") == run_id) & (pl.col("status") == FAILED))
            .select("day", "stage", "event_id", "error").sort("day"))


def failed_days(lake: Lake) -> pl.DataFrame:
    """Days whose latest refresh failed and that no refresh has repaired since: ``day, stage, event_id, error``."""
    state = _state(lake)
    if state.height == 0:
        return state.select("day", "stage", "event_id", "error")
    final = state.filter((pl.col("stage") == LOG_STAGE) | (pl.col("status") == FAILED))
    latest = final.sort("recorded_at").group_by("day", maintain_order=True).last()
    return latest.filter(pl.col("status") == FAILED).select("day", "stage", "event_id", "error").sort("day")


# ----------------------------------------------------------------------------------------------
# Failure isolation
# ----------------------------------------------------------------------------------------------

@dataclass
class DayFailure:
    day: date
    stage: str
    event_id: str | None
    error: str

    def __str__(self) -> str:
        event = f" (event {self.event_id})" if self.event_id else ""
        return f"{self.day.isoformat()}: {self.stage} failed{event}: {self.error}"


def short_error(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:500]


def check_poison(frame: pl.DataFrame) -> None:
    """Test only (``ACTIVITYLOG_TEST_POISON_DAY``): fail on the poisoned events of the poisoned day."""
    day = os.environ.get(POISON_ENV)
    if not day or frame.height == 0 or "day" not in frame.columns or "id" not in frame.columns:
        return
    poisoned = frame.filter((pl.col("day") == date.fromisoformat(day)) & pl.col("id").str.starts_with("poison"))
    if poisoned.height:
        raise ValueError(f"poisoned event {poisoned['id'][0]} ({POISON_ENV}={day})")


def find_failing_event(rows: pl.DataFrame, probe: Callable[[pl.DataFrame], object]) -> str | None:
    """The id of an event of ``rows`` on which ``probe`` fails on its own (bisection), else None."""
    if rows.height == 0 or "id" not in rows.columns:
        return None

    def fails(part: pl.DataFrame) -> bool:
        try:
            probe(part)
            return False
        except Exception:  # noqa: BLE001 - any failure is what is looked for
            return True

    if not fails(rows):
        return None
    while rows.height > 1:
        half = rows.height // 2
        first, second = rows.head(half), rows.tail(rows.height - half)
        if fails(first):
            rows = first
        elif fails(second):
            rows = second
        else:  # fails only with both halves together: name the first event of the smallest such set
            break
    return str(rows["id"][0])


def run_isolated(days: list[date], step: Callable[[list[date]], pl.DataFrame], stage: str,
                 inputs: Callable[[date], pl.DataFrame | None] | None = None,
                 probe: Callable[[pl.DataFrame], object] | None = None,
                 ) -> tuple[pl.DataFrame | None, dict[date, DayFailure]]:
    """``step(days)``; when it fails, ``step([day])`` for each day, and for a day that still fails the
    event that makes it fail (``probe`` over ``inputs(day)``, bisected). Returns (the stats of the days
    that worked, the failures)."""
    try:
        return step(days), {}
    except Exception:  # noqa: BLE001 - isolated below, day by day
        if len(days) == 1 and inputs is None:
            raise
    stats, failures = [], {}
    for day in days:
        try:
            stats.append(step([day]))
        except Exception as exc:  # noqa: BLE001 - reported per day
            event_id = None
            if inputs is not None and probe is not None:
                try:
                    rows = inputs(day)
                    event_id = find_failing_event(rows, probe) if rows is not None else None
                except Exception:  # noqa: BLE001 - the report goes on without the event id
                    event_id = None
            failures[day] = DayFailure(day, stage, event_id, short_error(exc))
    return (pl.concat(stats) if stats else None), failures


# ----------------------------------------------------------------------------------------------
# Digest intents
# ----------------------------------------------------------------------------------------------

def open_intent(lake: Lake, reason: str, *, digest: Iterable[date] = (), expire: Iterable[date] = (),
                run_id: str | None = None) -> str | None:
    """Record, before ``activity_raw`` changes, which days' digests the change will owe (one commit)."""
    digest_days, expire_days = sorted(set(digest)), sorted(set(expire))
    if not digest_days and not expire_days:
        return None
    intent_id = uuid.uuid4().hex
    now = _now()
    rows = [{"intent_id": intent_id, "day": d, "action": DIGEST, "reason": reason, "state": OPEN,
             "recorded_at": now, "run_id": run_id} for d in digest_days]
    rows += [{"intent_id": intent_id, "day": d, "action": EXPIRE, "reason": reason, "state": OPEN,
              "recorded_at": now, "run_id": run_id} for d in expire_days]
    lake.append(DIGEST_INTENTS, pl.DataFrame(rows, schema=INTENT_SCHEMA))
    return intent_id


def open_intents(lake: Lake) -> pl.DataFrame:
    """Rows of the intents not closed yet: ``intent_id, day, action, reason``."""
    frame = lake.scan(DIGEST_INTENTS)
    if frame is None:
        return pl.DataFrame(schema=INTENT_SCHEMA).select("intent_id", "day", "action", "reason")
    rows = frame.collect()
    closed = rows.filter(pl.col("state") == CLOSED).select("intent_id").unique()
    return (rows.filter(pl.col("state") == OPEN).join(closed, on="intent_id", how="anti")
            .select("intent_id", "day", "action", "reason").sort("day"))


def close_intents(lake: Lake, intent_ids: Iterable[str], run_id: str | None = None) -> None:
    ids = sorted(set(intent_ids))
    if not ids:
        return
    now = _now()
    lake.append(DIGEST_INTENTS, pl.DataFrame([
        {"intent_id": i, "day": None, "action": None, "reason": None, "state": CLOSED, "recorded_at": now,
         "run_id": run_id} for i in ids], schema=INTENT_SCHEMA))


def finish_digests(lake: Lake, days: Iterable[date] = (), reason: str = "ingest", *, expire: Iterable[date] = (),
                   run_id: str | None = None, create: bool = True) -> list[dict]:
    """The digest step: new digest versions for ``days`` (and expiry of ``expire``) plus whatever the
    open intents owe, then the intents are closed. An ``expire`` intent whose day ``activity_raw`` still
    holds (the run died before deleting it) stays open: the day is not expired while its rows are there.
    With ``create`` false, a lake without ``activity_digests`` gets none. Returns the new digest rows."""
    from transforms.integrity import ACTIVITY_DIGESTS, update_digests

    owed = open_intents(lake)
    raw_days = set(lake.days(ACTIVITY_RAW))
    reasons: dict[date, str] = {d: reason for d in days}
    expired = set(expire)
    keep_open: set[str] = set()
    for intent_id, day, action, why in owed.iter_rows():
        if action == EXPIRE:
            if day in raw_days:
                keep_open.add(intent_id)
            else:
                expired.add(day)
        else:
            reasons.setdefault(day, why)
    expired -= raw_days
    for day in expired:
        reasons.pop(day, None)
    rows: list[dict] = []
    if reasons or expired:
        if lake.exists(ACTIVITY_DIGESTS) or (create and reasons):
            rows = update_digests(lake, sorted(reasons), reasons, expire=sorted(expired))
    close_intents(lake, set(owed["intent_id"].to_list()) - keep_open, run_id)
    return rows
