"""Erasure of one actor's personal data (GDPR art. 17), keeping their events and the integrity chain.

What is personal data here: the actor's email, first and last name, IP address, and their identifiers
(``user.uuid``, ``user.id``). Erasing a user:

1. finds their events (by uuid or email, in ``activity_events``) and from them every form of their
   identity (:class:`Identity`);
2. rewrites those events' payloads in ``activity_raw``: ``user`` becomes ``{"uuid": PSEUDONYM,
   "first_name": "Erased user"}`` (the same random pseudonym on every event, stored nowhere else, so
   their events stay linked to one another and to no one), ``ip_address`` becomes null;
3. rewrites every string of every payload that names them — their own events and other actors'
   (a membership change naming the member, ``changes[].before/after``) — key or value, at any depth,
   behind JSON escapes too: uuid → the pseudonym, email → ``<pseudonym>@erased.invalid``, name →
   "Erased user" (see :class:`Identity` for which forms go where). Every other byte is kept
   (:func:`transforms.jsontext.replace_strings`);
4. redacts them in ``activity_quarantine`` lines (text, bytes, reason) and removes them from reference
   ``users`` tables under the lake;
5. the caller rebuilds the derived tables of those days from the rewritten raw rows (events, changes,
   log, resource history), and adds a new digest version for each day (reason ``erasure``), so
   ``activitylog verify`` still passes;
6. after the vacuum grace, :func:`transforms.retention.vacuum` removes the old data files and the old
   Delta log entries (which held column statistics), so no file in the lake holds the erased values.

Outside the lake: API exports are deleted by the erase job (``pipelines.api.exports``); files written
by ``activitylog export --out``, landing files and messages already delivered are the operator's to
erase; the notification and stream ledgers hold event ids only.
"""

from __future__ import annotations

import functools
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
    identity: "Identity | None" = None  # kept in memory for the caller's other stores; never written
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


ERASED_IP = "erased"


@dataclass(frozen=True)
class Identity:
    """Every form of one user's identity, and what each form becomes.

    *Strong* forms name the user wherever they appear: their emails (any case: ``<pseudonym>@erased.invalid``),
    their uuids (with and without dashes, any case: the pseudonym) and their full name ("First Last",
    any case: "Erased user"). *Weak* forms — a first or last name alone, the IP address — are someone
    else's as often as theirs, so they are replaced only in the user's own events and in events and
    lines that name the user by a strong form (and there not in the other actor's ``user`` and
    ``ip_address``)."""

    pseudonym: str
    emails: frozenset[str] = frozenset()
    uuids: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()
    full_names: frozenset[str] = frozenset()
    ips: frozenset[str] = frozenset()

    @property
    def email(self) -> str:
        return f"{self.pseudonym}@erased.invalid"

    def uuid_forms(self) -> set[str]:
        forms = set()
        for value in self.uuids:
            forms.add(value)
            try:
                parsed = uuid.UUID(value)
            except ValueError:
                continue
            forms |= {str(parsed), parsed.hex}
        return {f for f in forms if f}

    def needles(self) -> list[str]:
        """The strong forms as plain lowercase text (a cheap first look at many rows)."""
        return sorted({v.lower() for v in (*self.emails, *self.uuid_forms(), *self.full_names) if v})

    @property
    def _strong(self) -> list[tuple[re.Pattern, str]]:
        return _patterns(self, weak=False)

    def replace(self, text: str, *, weak: bool) -> str:
        """Plain text with every form replaced (``weak``: the first/last names and the IP too)."""
        for pattern, replacement in _patterns(self, weak=weak):
            text = pattern.sub(lambda _m, r=replacement: r, text)
        return text

    def names_user(self, text: str) -> bool:
        """Whether a text names the user by a strong form, as written or behind JSON escapes
        (``\\u0040`` for ``@``) or XML character references."""
        if any(pattern.search(text) for pattern, _ in self._strong):
            return True
        unescaped = _unescape(text)
        return unescaped != text and any(pattern.search(unescaped) for pattern, _ in self._strong)

    def scrub_json(self, text: str, *, weak: bool = True, keep_weak: tuple[str, ...] = ()) -> str:
        """A JSON text with every form replaced in every string (keys and values, at any depth);
        ``keep_weak``: top-level members where only the strong forms go (another actor's ``user``).
        Every other byte stays as it was (:func:`transforms.jsontext.replace_strings`)."""
        return jsontext.replace_strings(
            text, lambda value, member: self.replace(value, weak=weak and member not in keep_weak))

    def scrub_line(self, text: str, *, weak: bool, raw_bytes: bool = False) -> str:
        """A line that may not be JSON: its JSON strings (escapes read), then the plain text
        (``raw_bytes``: decoded with ``surrogateescape``, see :func:`transforms.jsontext.replace_strings`)."""
        return self.replace(jsontext.replace_strings(text, lambda value, _m: self.replace(value, weak=weak),
                                                     raw_bytes=raw_bytes), weak=weak)


@functools.lru_cache(maxsize=16)
def _patterns(identity: Identity, *, weak: bool) -> list[tuple[re.Pattern, str]]:
    # Longest first: an email holding a name is replaced whole.
    found = [(re.compile(re.escape(e), re.IGNORECASE), identity.email)
             for e in sorted(identity.emails, key=len, reverse=True) if e]
    found += [(re.compile(re.escape(u), re.IGNORECASE), identity.pseudonym)
              for u in sorted(identity.uuid_forms(), key=len, reverse=True)]
    found += [(re.compile(rf"(?<!\w){re.escape(n)}(?!\w)", re.IGNORECASE), ERASED_NAME)
              for n in sorted(identity.full_names, key=len, reverse=True) if n]
    if weak:
        found += [(re.compile(rf"(?<!\w){re.escape(n)}(?!\w)", re.IGNORECASE), ERASED_NAME)
                  for n in sorted(identity.names, key=len, reverse=True) if n]
        found += [(re.compile(rf"(?<![0-9A-Za-z.:]){re.escape(ip)}(?![0-9A-Za-z:]|\.[0-9])", re.IGNORECASE), ERASED_IP)
                  for ip in sorted(identity.ips, key=len, reverse=True) if ip]
    return found


_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\/")


def _unescape(text: str) -> str:
    import html

    text = html.unescape(text) if "&" in text else text
    return _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1) else "/", text) if "\\" in text else text


def identity_of(rows: pl.DataFrame, values: set[str], pseudonym: str) -> Identity:
    """The identity of the user whose events are ``rows`` (:func:`find_user_events`)."""
    emails = {v for v in values if "@" in v}
    names = {v for c in ("actor_first_name", "actor_last_name") for v in rows[c].drop_nulls().unique().to_list() if v}
    full = {f"{first} {last}" for first, last in rows.select("actor_first_name", "actor_last_name").unique().iter_rows()
            if first and last}
    ips = {v for v in rows["ip_address"].drop_nulls().unique().to_list() if v}
    return Identity(pseudonym=pseudonym, emails=frozenset(emails), uuids=frozenset(values - emails),
                    names=frozenset(names), full_names=frozenset(full), ips=frozenset(ips))


def _scrub_payload(text: str, identity: Identity, own: bool) -> str:
    """The payload without the user. Their own event: ``user`` becomes the pseudonym, ``ip_address``
    null, and every form of them goes from every string. Another actor's event that names them: the
    strong forms go everywhere, the weak ones everywhere but that actor's ``user`` and ``ip_address``."""
    if own:
        text = jsontext.replace_members(text, {
            "user": {"uuid": identity.pseudonym, "first_name": ERASED_NAME},
            **({"ip_address": None} if jsontext.has_member(text, "ip_address") else {}),
        })
        return identity.scrub_json(text, keep_weak=("user",))
    return identity.scrub_json(text, keep_weak=("user", "ip_address"))


def erase_user(lake: Lake, user: str, *, run_id: str | None = None) -> ErasureReport:
    """Rewrite the raw rows of ``user``'s events, and of other events that name them, without their
    personal data (see the module docs). The caller then refreshes ``report.days`` downstream and
    updates their digests (:func:`transforms.recovery.finish_digests`).

    Crash safety: the digest intent of the days is recorded before ``activity_raw`` is rewritten (one
    atomic commit), the quarantine's redaction is one merge, and a run killed anywhere is finished by
    running the erasure again (the user is still found in a derived table until it is rebuilt) or by
    the next command that changes the lake (stale days, owed digests: transforms.recovery)."""
    from transforms.recovery import open_intent

    rows, values = find_user_events(lake, user)
    if rows.height == 0:
        raise ErasureError(f"no events of {user!r} (matched against actor uuid and email)")
    identity = identity_of(rows, values, f"erased-{uuid.uuid4().hex[:16]}")
    own = set(rows["id"].to_list())
    mentions = _mentions(lake, identity, own)
    report = ErasureReport(pseudonym=identity.pseudonym, identity=identity, events=rows.height,
                           identifiers={"emails": len(identity.emails), "uuids": len(identity.uuids),
                                        "names": len(identity.names), "ip_addresses": len(identity.ips),
                                        "mentions": mentions.height})
    days = sorted(set(rows["day"].to_list()) | set(mentions["day"].to_list()))
    mentioned = set(mentions["id"].to_list())
    raw = lake.read_days(ACTIVITY_RAW, days)
    # Only the affected payloads go through Python (a when/then would run the UDF on every row).
    affected = raw.filter(pl.col("id").is_in(list(own | mentioned))).select("id", "payload", "item_id")
    rewritten = pl.DataFrame({
        "id": affected["id"],
        "_scrubbed": [_scrub_payload(text, identity, event_id in own) for event_id, text, _ in affected.iter_rows()],
        "_item_id": [None if item is None else identity.replace(item, weak=True) for _, _, item in affected.iter_rows()],
    }, schema={"id": pl.String, "_scrubbed": pl.String, "_item_id": pl.String})
    scrubbed = (raw.join(rewritten, on="id", how="left", maintain_order="left")
                .with_columns(pl.coalesce("_scrubbed", "payload").alias("payload"),
                              pl.when(pl.col("_scrubbed").is_not_null()).then(pl.col("_item_id"))
                              .otherwise(pl.col("item_id")).alias("item_id"))
                .drop("_scrubbed", "_item_id"))
    open_intent(lake, "erasure", digest=days, run_id=run_id)
    lake.replace_days(ACTIVITY_RAW, days, scrubbed)
    report.days = days
    report.quarantine_lines = _scrub_quarantine(lake, identity)
    report.reference_rows = _scrub_reference_users(lake, values)
    return report


def _mentions(lake: Lake, identity: Identity, own: set[str]) -> pl.DataFrame:
    """``id, day`` of the other events whose payload names the user by a strong form: one scan of the
    payloads for the plain forms (or a JSON escape, which may hide one), then a precise look at those."""
    needles = identity.needles()
    candidates = (lake.scan(ACTIVITY_RAW)
                  .filter(pl.col("payload").str.to_lowercase().str.contains_any(needles)
                          | pl.col("payload").str.contains(r"\\[u/]"))
                  .select("id", "day", "payload").collect().filter(~pl.col("id").is_in(list(own))))
    named = [identity.names_user(text) or identity.scrub_json(text, weak=False) != text
             for text in candidates["payload"].to_list()]
    return candidates.filter(pl.Series(named, dtype=pl.Boolean)).select("id", "day")


def _scrub_quarantine(lake: Lake, identity: Identity) -> int:
    """Rejected lines that name the user are redacted (their text stays, minus the user): the text,
    the exact bytes kept of a line that is not UTF-8, and the reason (which may quote a value)."""
    frame = lake.scan(ACTIVITY_QUARANTINE)
    if frame is None:
        return 0
    columns = frame.collect_schema().names()
    texts = [c for c in ("raw_text", "quarantine_reason") if c in columns]
    needles = identity.needles()
    look = pl.lit(False)
    for column in texts:
        look = look | pl.col(column).str.to_lowercase().str.contains_any(needles).fill_null(False) \
            | pl.col(column).str.contains(r"[\\&]").fill_null(False)
    if "raw_bytes" in columns:
        look = look | pl.col("raw_bytes").is_not_null()
    candidates = frame.filter(look).collect()
    if candidates.height == 0:
        return 0

    def named(row: dict) -> bool:
        return any(identity.names_user(row[c]) for c in texts if row[c]) or \
            bool(row.get("raw_bytes") and identity.names_user(row["raw_bytes"].decode("utf-8", "surrogateescape")))

    hits = candidates.filter(pl.Series([named(r) for r in candidates.iter_rows(named=True)], dtype=pl.Boolean))
    if hits.height == 0:
        return 0
    redacted = hits.with_columns(
        *[pl.Series(c, [None if v is None else identity.scrub_line(v, weak=True) for v in hits[c]], dtype=pl.String)
          for c in texts],
        *([pl.Series("raw_bytes", [None if v is None else identity.scrub_line(v.decode("utf-8", "surrogateescape"), weak=True,
                                                                              raw_bytes=True).encode("utf-8", "surrogateescape")
                                   for v in hits["raw_bytes"]], dtype=pl.Binary)] if "raw_bytes" in columns else []))
    # One merge (one atomic commit): a delete then an append would lose the lines if killed between.
    table = lake.table(ACTIVITY_QUARANTINE)
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
