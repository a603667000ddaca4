"""Tamper evidence: a per-day SHA-256 digest chain over ``activity_raw``, like CloudTrail's digest files.

For each day: ``day_hash`` = SHA-256 over the day's events sorted by id, each contributing
``id TAB sha256(payload) LF`` (the payload is the verbatim line). The day's ``digest`` =
SHA-256 of ``day|version|events|day_hash|previous_digest``, where ``previous_digest`` is the latest
digest of the nearest earlier day when it was computed (64 zeros for the first). Optionally signed:
HMAC-SHA256 with ``ACTIVITYLOG_DIGEST_HMAC_KEY``, or Ed25519 with ``ACTIVITYLOG_DIGEST_ED25519_KEY``
(a PEM private key); verification then needs the same key (or, for Ed25519, the public key).

``activity_digests`` is append-only. A day that changes (late events, retention of some of its rows,
erasure) gets a new *version*, with a ``reason``; earlier versions stay, and the later days' links to
them stay valid. A day deleted by retention keeps its digest, in a new row marked ``expired``.

:func:`verify` recomputes every day from ``activity_raw`` and checks every digest row and link. It
names the first bad day and the kind of tampering: a row changed, removed or inserted; a day removed or
inserted; a digest altered, a link broken, a signature wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Iterable

import polars as pl

from transforms.lake import ACTIVITY_RAW, Lake

ACTIVITY_DIGESTS = "activity_digests"
GENESIS = "0" * 64
HMAC_ENV = "ACTIVITYLOG_DIGEST_HMAC_KEY"
ED25519_ENV = "ACTIVITYLOG_DIGEST_ED25519_KEY"
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


def _sign(digest: str) -> tuple[str | None, str]:
    if os.environ.get(ED25519_ENV):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = load_pem_private_key(os.environ[ED25519_ENV].encode(), password=None)
        return key.sign(digest.encode()).hex(), "ed25519"
    if os.environ.get(HMAC_ENV):
        return hmac.new(os.environ[HMAC_ENV].encode(), digest.encode(), hashlib.sha256).hexdigest(), "hmac-sha256"
    return None, "none"


def _signature_problem(row: dict) -> str | None:
    kind, signature = row["signature_kind"], row["signature"]
    if kind == "none":
        return None
    if kind == "hmac-sha256":
        key = os.environ.get(HMAC_ENV)
        if not key:
            return None  # cannot check without the key; the chain is still checked
        expected = hmac.new(key.encode(), row["digest"].encode(), hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(expected, signature or "") else "signature does not match (HMAC)"
    if kind == "ed25519":
        pem = os.environ.get(ED25519_ENV)
        if not pem:
            return None
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            load_pem_private_key(pem.encode(), password=None).public_key().verify(
                bytes.fromhex(signature or ""), row["digest"].encode())
        except (InvalidSignature, ValueError):
            return "signature does not match (Ed25519)"
        return None
    return f"unknown signature kind {kind!r}"


def digests(lake: Lake) -> pl.DataFrame:
    frame = lake.scan(ACTIVITY_DIGESTS)
    return pl.DataFrame(schema=DIGEST_SCHEMA) if frame is None else frame.collect()


def latest(rows: pl.DataFrame) -> pl.DataFrame:
    """The latest row of each day."""
    return rows.sort("day", "version", "computed_at").group_by("day", maintain_order=True).last()


def update_digests(lake: Lake, days: Iterable[date], reason: str = "ingest", *, expire: Iterable[date] = (),
                   ) -> list[dict]:
    """Append a new digest version for each of ``days`` whose content changed (and an ``expired`` row
    for each of ``expire``), in day order, chaining each to the latest digest of the day before."""
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
        row = {"day": day, "version": version, "events": events, "day_hash": day_hash, "previous_day": previous_day,
               "previous_digest": previous_digest, "digest": digest, "reason": reason if before is None else
               ("late events" if reason == "ingest" else reason), "expired": False, "signature": signature,
               "signature_kind": kind, "computed_at": now}
        new_rows.append(row)
        current[day] = row
    if new_rows:
        lake.append(ACTIVITY_DIGESTS, pl.DataFrame(new_rows, schema=DIGEST_SCHEMA))
    return new_rows


@dataclass
class Problem:
    day: date | None
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.day or '-'}: {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    days: int = 0
    events: int = 0
    digest_rows: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def first(self) -> Problem | None:
        return min(self.problems, key=lambda p: (p.day or date.min)) if self.problems else None


def verify(lake: Lake, days: Iterable[date] | None = None) -> VerifyReport:
    """Recompute the chain (every day, or only ``days`` plus every link) against ``activity_raw``."""
    from transforms.refresh import day_batches

    report = VerifyReport()
    lake.forget(ACTIVITY_RAW)
    lake.forget(ACTIVITY_DIGESTS)
    rows = digests(lake)
    report.digest_rows = rows.height
    known_digests: set[str] = set()
    # Every digest row: its digest recomputes, its signature holds, its link names an earlier digest.
    for row in rows.sort("computed_at", "day", "version").iter_rows(named=True):
        recomputed = chain_digest(row["day"], row["version"], row["events"], row["day_hash"], row["previous_digest"])
        if recomputed != row["digest"]:
            report.problems.append(Problem(row["day"], "digest altered",
                                           f"version {row['version']}: the stored digest does not match its fields"))
        problem = _signature_problem(row)
        if problem:
            report.problems.append(Problem(row["day"], "digest altered", f"version {row['version']}: {problem}"))
        if row["previous_digest"] != GENESIS and row["previous_digest"] not in known_digests:
            report.problems.append(Problem(row["day"], "chain broken",
                                           f"version {row['version']} links to a digest that is not in the chain"))
        known_digests.add(row["digest"])
    # Every day: the data recomputes to the latest digest.
    current = {row["day"]: row for row in latest(rows).iter_rows(named=True)} if rows.height else {}
    raw_days = lake.days(ACTIVITY_RAW)
    wanted = set(days) if days is not None else set(raw_days) | set(current)
    for day in sorted(set(raw_days) - set(current)):
        if day in wanted:
            report.problems.append(Problem(day, "day inserted", "activity_raw holds a day that has no digest"))
    unreadable: set[date] = set()
    for batch in day_batches(lake, ACTIVITY_RAW, sorted(wanted & set(raw_days))):
        hashes: dict[date, tuple[str, int]] = {}
        try:
            raw = lake.read_days(ACTIVITY_RAW, batch, columns=["day", "id", "payload"])
            hashes = day_hashes(raw) if raw is not None and raw.height else {}
        except Exception:  # noqa: BLE001 - a file changed behind the log's back may not read: find which day
            for day in batch:
                try:
                    raw = lake.read_days(ACTIVITY_RAW, [day], columns=["day", "id", "payload"])
                    hashes.update(day_hashes(raw) if raw is not None and raw.height else {})
                except Exception as exc:  # noqa: BLE001 - evidence, not a crash
                    unreadable.add(day)
                    report.problems.append(Problem(day, "data file unreadable",
                                                   f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"))
        for day in batch:
            if day in unreadable:
                continue
            day_hash, events = hashes.get(day, (hashlib.sha256(b"").hexdigest(), 0))
            report.days += 1
            report.events += events
            expected = current.get(day)
            if expected is None:
                continue
            if expected["expired"]:
                if events:
                    report.problems.append(Problem(day, "row inserted", f"{events} rows in a day retention deleted"))
                continue
            if day_hash != expected["day_hash"]:
                kind = ("row removed" if events < expected["events"] else
                        "row inserted" if events > expected["events"] else "row changed")
                report.problems.append(Problem(day, kind, f"{events} rows now, {expected['events']} when digested "
                                                          f"(version {expected['version']})"))
    for day, expected in sorted(current.items()):
        if day in wanted and day not in raw_days and not expected["expired"] and expected["events"]:
            report.problems.append(Problem(day, "day removed",
                                           f"activity_raw has no rows for it; its digest covers {expected['events']}"))
    return report
