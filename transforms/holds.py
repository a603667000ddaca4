"""Legal holds added at run time, in the ``legal_holds`` table of the lake (this module is its only writer).

A hold names an organization or a project; retention (:mod:`transforms.retention`) never deletes an
event of a held organization or project, whatever its window. The table is append-only: each row
adds or removes one hold, and the latest row of a (kind, id) decides whether it is active. Holds
listed in the configuration file (``retention.holds``) are added to these by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import polars as pl

from transforms.lake import Lake

LEGAL_HOLDS = "legal_holds"
ORGANIZATION, PROJECT = "organization", "project"
KINDS = (ORGANIZATION, PROJECT)
ADDED, REMOVED = "added", "removed"
HOLD_SCHEMA = {
    "kind": pl.String,           # organization | project
    "id": pl.String,             # the organization id, or the project's team id as decimal text
    "action": pl.String,         # added | removed
    "reason": pl.String,
    "recorded_at": pl.Datetime("us", "UTC"),
}


class HoldError(ValueError):
    """A hold cannot be added or removed as asked (already active, not active, a bad id)."""


@dataclass(frozen=True)
class Hold:
    kind: str                   # organization | project
    id: str | int               # organization ids are strings, project (team) ids integers
    reason: str | None = None
    added_at: datetime | None = None
    source: str = "lake"        # lake (activitylog hold) | configuration (retention.holds)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.id}"

    def as_detail(self) -> dict:
        return {"kind": self.kind, "id": self.id, "reason": self.reason,
                "added_at": self.added_at.isoformat() if self.added_at else None}


def hold_id(kind: str, value: str | int) -> str | int:
    """A hold's id in its own type: an organization id (non-empty text) or a project id (an integer)."""
    if kind == ORGANIZATION:
        if not isinstance(value, str) or not value.strip():
            raise HoldError("an organization id is a non-empty string")
        return value.strip()
    if kind == PROJECT:
        if isinstance(value, bool):
            raise HoldError(f"project {value!r} is not a project id (an integer team id)")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise HoldError(f"project {value!r} is not a project id (an integer team id)") from None
    raise HoldError(f"a hold is on an organization or a project, not {kind!r}")


def _log(lake: Lake) -> pl.DataFrame:
    frame = lake.scan(LEGAL_HOLDS)
    return pl.DataFrame(schema=HOLD_SCHEMA) if frame is None else frame.collect().sort("recorded_at")


def _latest(log: pl.DataFrame) -> pl.DataFrame:
    return log.group_by("kind", "id", maintain_order=True).last()


def _hold(row: dict, added_at: datetime | None = None) -> Hold:
    return Hold(kind=row["kind"], id=hold_id(row["kind"], row["id"]), reason=row["reason"],
                added_at=added_at or row["recorded_at"])


def active_holds(lake: Lake) -> list[Hold]:
    """The holds of the lake whose latest row adds them, organizations first, each since when it was added."""
    log = _log(lake)
    latest = _latest(log).filter(pl.col("action") == ADDED)
    holds = [_hold(row) for row in latest.iter_rows(named=True)]
    return sorted(holds, key=lambda h: (KINDS.index(h.kind), str(h.id)))


def held(lake: Lake) -> tuple[frozenset[str], frozenset[int]]:
    """The held organization ids and project ids of the lake (configured holds not included)."""
    holds = active_holds(lake)
    return (frozenset(h.id for h in holds if h.kind == ORGANIZATION),
            frozenset(h.id for h in holds if h.kind == PROJECT))


def _append(lake: Lake, log: pl.DataFrame, kind: str, key: str | int, action: str, reason: str | None) -> datetime:
    now = datetime.now(timezone.utc)
    if log.height:  # the latest row decides: never older than the one it follows, even on a skewed clock
        last = log["recorded_at"].max()
        if last is not None and now <= last:
            now = last + timedelta(microseconds=1)
    row = {"kind": kind, "id": str(key), "action": action, "reason": reason, "recorded_at": now}
    lake.append(LEGAL_HOLDS, pl.DataFrame([row], schema=HOLD_SCHEMA))
    return now


def add_hold(lake: Lake, kind: str, value: str | int, reason: str | None = None) -> Hold:
    """Put an organization or a project under a legal hold; :class:`HoldError` when it already is."""
    key = hold_id(kind, value)
    log = _log(lake)
    current = _latest(log).filter((pl.col("kind") == kind) & (pl.col("id") == str(key)))
    if current.height and current["action"][0] == ADDED:
        since = current["recorded_at"][0]
        raise HoldError(f"{kind} {key} is already under a legal hold (since {since:%Y-%m-%d %H:%M}Z)")
    reason = reason.strip() if reason and reason.strip() else None
    added_at = _append(lake, log, kind, key, ADDED, reason)
    return Hold(kind=kind, id=key, reason=reason, added_at=added_at)


def remove_hold(lake: Lake, kind: str, value: str | int) -> Hold:
    """Lift a hold of the lake: the hold as it was; :class:`HoldError` when it is not active."""
    key = hold_id(kind, value)
    log = _log(lake)
    current = _latest(log).filter((pl.col("kind") == kind) & (pl.col("id") == str(key)))
    if not current.height or current["action"][0] != ADDED:
        raise HoldError(f"{kind} {key} is not under a legal hold (activitylog hold list)")
    row = current.row(0, named=True)
    _append(lake, log, kind, key, REMOVED, row["reason"])
    return _hold(row)


def restore_hold(lake: Lake, hold: Hold) -> None:
    """Put back a hold just removed (its removal could not be recorded), with its reason."""
    _append(lake, _log(lake), hold.kind, hold.id, ADDED, hold.reason)


class HoldNotRecorded(RuntimeError):
    """A hold was changed but its system event could not be written: an addition stands (holding more
    than asked is the safe side), a removal is undone (nothing is lifted unrecorded)."""


def _record(lake: Lake, activity: str, hold: Hold, validation) -> None:
    from transforms.retention import record_system_event

    record_system_event(lake, activity, hold.as_detail(), validation)


def add_recorded(lake: Lake, kind: str, value: str | int, reason: str | None, validation) -> Hold:
    """:func:`add_hold`, logged as a ``legal_hold_added`` system event."""
    hold = add_hold(lake, kind, value, reason)
    try:
        _record(lake, "legal_hold_added", hold, validation)
    except Exception as exc:  # noqa: BLE001 - any failure to log leaves the hold standing, and says so
        raise HoldNotRecorded(f"{hold.label} is under a legal hold, but the hold could not be recorded as a "
                              f"system event ({exc})") from exc
    return hold


def remove_recorded(lake: Lake, kind: str, value: str | int, validation) -> Hold:
    """:func:`remove_hold`, logged as a ``legal_hold_removed`` system event; put back when it cannot be."""
    hold = remove_hold(lake, kind, value)
    try:
        _record(lake, "legal_hold_removed", hold, validation)
    except Exception as exc:  # noqa: BLE001 - nothing is lifted unrecorded
        restore_hold(lake, hold)
        raise HoldNotRecorded(f"the removal of the legal hold on {hold.label} could not be recorded as a system "
                              f"event ({exc}); the hold was put back") from exc
    return hold
