"""The table catalog: every Delta table under the lake root, how it is partitioned, and the one module
that writes it. Everything else reads.

The names are part of the public contract (notebooks and auditors read these tables by name); each is
also a constant in its writer module (``ACTIVITY_RAW`` in :mod:`transforms.lake`, ``DELIVERIES`` in
:mod:`transforms.notify`…), which ``tests/test_tables.py`` checks against this list, and against the
tables a whole pipeline run leaves in a lake.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    name: str
    writer: str                 # the module that writes it (appends, merges, rewrites)
    partition_by: str | None    # the partition column, if any
    holds: str                  # what a row is
    # modules that delete rows (retention's partition predicates) or redact them (erasure rewrites raw
    # payloads; the refresh then rewrites the derived days): each change is chained into activity_digests
    also_changed_by: tuple[str, ...] = ()


_RETENTION = ("transforms.retention",)
_RETENTION_AND_ERASURE = ("transforms.retention", "transforms.erasure")

TABLES: tuple[Table, ...] = (
    # ingest
    Table("activity_raw", "transforms.ingest", "day", "one accepted event, its payload verbatim",
          _RETENTION_AND_ERASURE),
    Table("activity_quarantine", "transforms.ingest", None, "one rejected line, verbatim, with its reason",
          _RETENTION_AND_ERASURE),
    Table("ingest_ledger", "transforms.ingest", None, "one landing file read, with its counts"),
    Table("activity_digests", "transforms.integrity", None, "one version of a day's digest in the hash chain"),
    Table("digest_intents", "transforms.recovery", None, "days whose digests a change of activity_raw owes"),
    # the verifiable log
    Table("merkle_leaves", "transforms.merkle", None, "one event's leaf hash, in log order (never deleted)"),
    Table("merkle_nodes", "transforms.merkle", "level", "one interior node of the tree"),
    Table("merkle_salts", "transforms.commitments", "day", "one event's field salts", _RETENTION),
    Table("merkle_checkpoints", "transforms.checkpoints", None, "one signed tree head"),
    # the derived day tables
    Table("activity_events", "transforms.refresh", "day", "one event, typed and normalized", _RETENTION),
    Table("activity_changes", "transforms.refresh", "day", "one field change of an event", _RETENTION),
    Table("activity_log", "transforms.refresh", "day", "one event, enriched (what readers query)",
          _RETENTION),
    Table("refresh_state", "transforms.recovery", None, "the raw files a refreshed day was built from"),
    Table("activity_item_history", "transforms.history", "bucket", "one event in a resource's history",
          _RETENTION),
    # notifications and streams
    Table("deliveries", "transforms.notify", "day", "one state change of a (subscription, event, destination)",
          _RETENTION),
    Table("notify_evaluations", "transforms.notify", None, "one evaluation of a day's subscriptions", _RETENTION),
    Table("notify_destination_state", "transforms.notify", None, "a destination disabled or enabled again"),
    Table("stream_ledger", "transforms.streams", "day", "one batch sent to a SIEM stream", _RETENTION),
    Table("stream_progress", "transforms.streams", None, "how far a stream has sent", _RETENTION),
    Table("stream_health", "transforms.streams", None, "a stream's state (ok, failing, paused)"),
    # retention
    Table("legal_holds", "transforms.holds", None,
          "one legal hold added or lifted on an organization or project (the latest row of each decides)"),
    # access
    Table("api_keys", "transforms.keys", None, "one API key: its hash, scopes, projects, revocation"),
)

BY_NAME: dict[str, Table] = {table.name: table for table in TABLES}


def table(name: str) -> Table:
    """The catalog entry of ``name``; ``KeyError`` naming the known tables otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a table of the lake (known: {', '.join(sorted(BY_NAME))})") from None
