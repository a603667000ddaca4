"""The digest chain: each day's hash over its events, each digest linked to the day before, and the
append-only ``activity_digests`` rows (a new version per change, an ``expired`` row per day deleted)."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone
from typing import Iterable

import polars as pl

from transforms.integrity.signing import _sign
from transforms.lake import Lake

ACTIVITY_DIGESTS = "activity_digests"
GENESIS = "0" * 64
DIGEST_SCHEMA = {
    "day": pl.Date, "version": pl.Int32, "events": pl.Int64, "day_hash": pl.String, "previous_day": pl.Date,
    "previous_digest": pl.String, "digest": pl.String, "reason": pl.String, "expired": pl.Boolean,
    "signature": pl.String, "signature_kind": pl.String, "computed_at": pl.Datetime("us", "UTC"),
}


def day_hashes(raw: pl.DataFrame) -> dict[date, tuple[str, int]]:
    """day → (day_hash, events) for rows with ``day, id, payload``."""
    out: dict[date, tuple[str, int]] = {}
    for (day,), rows in raw.sort("day", "id").group_by("day", maintain_order=True):
        digest = hashlib.sha256()
        for event_id, payload in zip(rows["id"].to_list(), rows["payload"].to_list()):
            digest.update(f"{event_id}\t{hashlib.sha256(payload.encode()).hexdigest()}\n".encode())
        out[day] = (digest.hexdigest(), rows.height)
    return out


def chain_digest(day: date, version: int, events: int, day_hash: str, previous_digest: str) -> str:
    return hashlib.sha256(f"{day.isoformat()}|{version}|{events}|{day_hash}|{previous_digest}".encode()).hexdigest()


def digests(lake: Lake) -> pl.DataFrame:
    frame = lake.scan(ACTIVITY_DIGESTS)
    return pl.DataFrame(schema=DIGEST_SCHEMA) if frame is None else frame.collect()


def latest(rows: pl.DataFrame) -> pl.DataFrame:
    """The latest row of each day."""
    return rows.sort("day", "version", "computed_at").group_by("day", maintain_order=True).last()


def update_digests(lake: Lake, days: Iterable[date], reason: str | dict[date, str] = "ingest", *,
                   expire: Iterable[date] = ()) -> list[dict]:
    """Append a new digest version for each of ``days`` whose content changed (and an ``expired`` row
    for each of ``expire``), in day order, chaining each to the latest digest of the day before.
    ``reason`` is one reason for every day, or one per day. Commands call this through
    :func:`transforms.recovery.finish_digests`, which adds what interrupted runs owe."""
    from transforms.lake import ACTIVITY_RAW

    day_list = sorted(set(days))
    expired = sorted(set(expire))
    if not day_list and not expired:
        return []
    existing = digests(lake)
    current = {row["day"]: row for row in latest(existing).iter_rows(named=True)} if existing.height else {}
    raw = lake.read_days(ACTIVITY_RAW, day_list, columns=["day", "id", "payload"]) if day_list else None
    hashes = day_hashes(raw) if raw is not None and raw.height else {}
    now = datetime.now(timezone.utc)
    new_rows = []
    for day in sorted(set(day_list) | set(expired)):
        before = current.get(day)
        if day in expired:
            if before is None or before["expired"]:
                continue
            # The same digest (and version, which it covers), marked expired: later days' links still hold.
            new_rows.append({**before, "reason": "retention (day deleted)", "expired": True, "computed_at": now})
            current[day] = new_rows[-1]
            continue
        day_hash, events = hashes.get(day, (hashlib.sha256(b"").hexdigest(), 0))
        if before is not None and before["day_hash"] == day_hash and not before["expired"]:
            continue  # unchanged
        earlier = [d for d in current if d < day]
        previous_day = max(earlier) if earlier else None
        previous_digest = current[previous_day]["digest"] if previous_day else GENESIS
        version = (before["version"] + 1) if before else 1
        digest = chain_digest(day, version, events, day_hash, previous_digest)
        signature, kind = _sign(digest)
        why = reason.get(day, "ingest") if isinstance(reason, dict) else reason
        row = {"day": day, "version": version, "events": events, "day_hash": day_hash, "previous_day": previous_day,
               "previous_digest": previous_digest, "digest": digest, "reason": why if before is None else
               ("late events" if why == "ingest" else why), "expired": False, "signature": signature,
               "signature_kind": kind, "computed_at": now}
        new_rows.append(row)
        current[day] = row
    if new_rows:
        lake.append(ACTIVITY_DIGESTS, pl.DataFrame(new_rows, schema=DIGEST_SCHEMA))
    return new_rows
