"""Erasure of one actor's personal data (GDPR art. 17), keeping their events and the integrity chain.

What is personal data here: the actor's email, first and last name, IP address, and their identifiers
(``user.uuid``, ``user.id``). Erasing a user:

1. finds their events (by uuid or email, in ``activity_events``);
2. rewrites those events' payloads in ``activity_raw``: ``user`` becomes ``{"uuid": PSEUDONYM,
   "first_name": "Erased user"}`` (the same random pseudonym on every event, stored nowhere else, so
   their events stay linked to one another and to no one), ``ip_address`` becomes null, and the email
   is replaced by ``<pseudonym>@erased.invalid`` wherever else it appears in the payload (e.g. in a
   membership change's before/after);
3. removes them from ``activity_quarantine`` lines and from reference ``users`` tables under the lake;
4. rebuilds the derived tables of those days from the rewritten raw rows (events, changes, log,
   resource history), and adds a new digest version for each day (reason ``erasure``), so
   ``activitylog verify`` still passes;
5. after the vacuum grace, :func:`transforms.retention.vacuum` removes the old data files and the old
   Delta log entries (which held column statistics), so no file in the lake holds the erased values.

Outside the lake — landing files, exported files, messages already delivered — is the operator's to
erase; the notification and stream ledgers hold event ids only.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from transforms import jsontext
from transforms.lake import ACTIVITY_EVENTS, ACTIVITY_LOG, ACTIVITY_QUARANTINE, ACTIVITY_RAW, Lake

ERASED_NAME = "Erased user"


class ErasureError(ValueError):
    """The user cannot be erased (not found, ambiguous input)."""


@dataclass
class ErasureReport:
    pseudonym: str
    events: int = 0
    days: list[date] = field(default_factory=list)
    quarantine_lines: int = 0
    reference_rows: int = 0
    identifiers: dict[str, int] = field(default_factory=dict)  # kinds of values found (counts, never values)


def find_user_events(lake: Lake, user: str) -> tuple[pl.DataFrame, set[str]]:
    """(the user's events: id, day; every email/uuid/name/IP value that belongs to them)."""
    events = lake.scan(ACTIVITY_EVENTS)
    if events is None:
        raise ErasureError(f"no activity_events table in {lake.root}: run `activitylog ingest` first")
    needle = user.strip()
    if not needle:
        raise ErasureError("give the user's uuid or email")
    columns = ["id", "day", "actor_uuid", "actor_email", "actor_first_name", "actor_last_name", "ip_address"]

    def matching(frame: pl.LazyFrame) -> pl.DataFrame:
        return frame.filter((pl.col("actor_uuid") == needle)
                            | (pl.col("actor_email").str.to_lowercase() == needle.lower())).select(columns).collect()

    rows = matching(events)
    # An erasure killed while the derived tables were being rebuilt leaves the user in activity_log
    # (rebuilt last) though no longer in activity_events: found there, the erasure is run again.
    log = lake.scan(ACTIVITY_LOG)
    if log is not None and set(columns) <= set(log.collect_schema().names()):
        rows = pl.concat([rows, matching(log)], how="vertical_relaxed").unique("id", keep="first", maintain_order=True)
    values: set[str] = {needle}
    for column in ("actor_uuid", "actor_email"):
        values |= {v for v in rows[column].drop_nulls().unique().to_list() if v}
    return rows, values


def _replace_emails(text: str, pseudonym: str, emails: set[str]) -> str:
    for email in emails:
        text = re.sub(re.escape(email), f"{pseudonym}@erased.invalid", text, flags=re.IGNORECASE)
    return text


def _scrub_payload(text: str, pseudonym: str, emails: set[str], own: bool = True) -> str:
    """The payload without the actor's personal data (``own``: it is their event) and with their email
    replaced wherever else it appears. The other members keep their exact JSON text."""
    if own:
        text = jsontext.replace_members(text, {
            "user": {"uuid": pseudonym, "first_name": ERASED_NAME},
            **({"ip_address": None} if jsontext.has_member(text, "ip_address") else {}),
        })
    # The email elsewhere in the event too (a membership change, an invite).
    return _replace_emails(text, pseudonym, emails)


def erase_user(lake: Lake, user: str, *, run_id: str | None = None) -> ErasureReport:
    """Rewrite the raw rows of ``user``'s events, and of other events that name their email, without
    their personal data (see the module docs). The caller then refreshes ``report.days`` downstream
    and updates their digests (:func:`transforms.recovery.finish_digests`).

    Crash safety: the digest intent of the days is recorded before ``activity_raw`` is rewritten (one
    atomic commit), the quarantine's redaction is one merge, and a run killed anywhere is finished by
    running the erasure again (the user is still found in a derived table until it is rebuilt) or by
    the next command that changes the lake (stale days, owed digests: transforms.recovery)."""
    from transforms.recovery import open_intent

    rows, values = find_user_events(lake, user)
    if rows.height == 0:
        raise ErasureError(f"no events of {user!r} (matched against actor uuid and email)")
    emails = {v for v in values if "@" in v}
    names = {v for c in ("actor_first_name", "actor_last_name") for v in rows[c].drop_nulls().unique().to_list() if v}
    ips = set(rows["ip_address"].drop_nulls().unique().to_list())
    pseudonym = f"erased-{uuid.uuid4().hex[:16]}"
    own = set(rows["id"].to_list())
    mentions = pl.DataFrame(schema={"id": pl.String, "day": pl.Date})
    if emails:  # other actors' events that name the user (one scan of the payloads)
        pattern = "(?i)" + "|".join(re.escape(e) for e in emails)
        mentions = (lake.scan(ACTIVITY_RAW).filter(pl.col("payload").str.contains(pattern))
                    .select("id", "day").collect().filter(~pl.col("id").is_in(list(own))))
    report = ErasureReport(pseudonym=pseudonym, events=rows.height,
                           identifiers={"emails": len(emails), "uuids": len(values - emails), "names": len(names),
                                        "ip_addresses": len(ips), "mentions": mentions.height})
    days = sorted(set(rows["day"].to_list()) | set(mentions["day"].to_list()))
    mentioned = set(mentions["id"].to_list())
    raw = lake.read_days(ACTIVITY_RAW, days)
    # Only the affected payloads go through Python (a when/then would run the UDF on every row).
    affected = raw.filter(pl.col("id").is_in(list(own | mentioned))).select("id", "payload")
    rewritten = pl.DataFrame({"id": affected["id"], "_scrubbed": [
        _scrub_payload(text, pseudonym, emails) if event_id in own else _replace_emails(text, pseudonym, emails)
        for event_id, text in affected.iter_rows()]}, schema={"id": pl.String, "_scrubbed": pl.String})
    scrubbed = (raw.join(rewritten, on="id", how="left", maintain_order="left")
                .with_columns(pl.coalesce("_scrubbed", "payload").alias("payload")).drop("_scrubbed"))
    open_intent(lake, "erasure", digest=days, run_id=run_id)
    lake.replace_days(ACTIVITY_RAW, days, scrubbed)
    report.days = days
    report.quarantine_lines = _scrub_quarantine(lake, emails | (values - emails), pseudonym)
    report.reference_rows = _scrub_reference_users(lake, values)
    return report


def _scrub_quarantine(lake: Lake, values: set[str], pseudonym: str) -> int:
    """Rejected lines that mention the user are redacted (their text stays, minus the user)."""
    frame = lake.scan(ACTIVITY_QUARANTINE)
    if frame is None or not values:
        return 0
    pattern = "(?i)" + "|".join(re.escape(v) for v in values)
    hits = frame.filter(pl.col("raw_text").str.contains(pattern)).collect()
    if hits.height == 0:
        return 0
    redacted = hits.with_columns(pl.col("raw_text").str.replace_all(pattern, f"{pseudonym}@erased.invalid"))
    # One merge (one atomic commit): a delete then an append would lose the lines if killed between.
    table = lake.table(ACTIVITY_QUARANTINE)
    columns = frame.collect_schema().names()
    (table.merge(redacted.select(columns).unique(["source", "line"], keep="first").to_arrow(), predicate="t.source = s.source AND t.line = s.line",
                 source_alias="s", target_alias="t")
     .when_matched_update_all().execute())
    return hits.height


def _scrub_reference_users(lake: Lake, values: set[str]) -> int:
    """The user's row leaves reference ``users`` files and tables kept under the lake."""
    from transforms.reference import lake_reference_uris

    uri = lake_reference_uris(lake.root).get("users")
    if uri is None:
        return 0
    lowered = {v.lower() for v in values}
    match = (pl.col("uuid").cast(pl.String).is_in(list(values))
             | pl.col("email").cast(pl.String).str.to_lowercase().is_in(list(lowered)))
    if uri.endswith(".csv") or uri.endswith(".parquet"):
        path = Path(uri)
        frame = pl.read_csv(path, infer_schema_length=0) if uri.endswith(".csv") else pl.read_parquet(path)
        if "email" not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("email"))
            keep = frame.filter(~match.fill_null(False)).drop("email")
        else:
            keep = frame.filter(~match.fill_null(False))
        removed = frame.height - keep.height
        if removed:
            keep.write_csv(path) if uri.endswith(".csv") else keep.write_parquet(path)
        return removed
    from deltalake import DeltaTable

    table = DeltaTable(uri, storage_options=lake.storage_options or None)
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    result = table.delete(f"uuid IN ({quoted}) OR lower(email) IN ({', '.join(repr(v) for v in lowered)})")
    return int(result.get("num_deleted_rows", 0) or 0)
