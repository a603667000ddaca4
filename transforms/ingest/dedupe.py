"""Deduplication by id: which accepted rows are new, duplicates of stored (or earlier) events, or
conflicts (the same id with other content), compared by hash first and as JSON values only where
they differ."""

from __future__ import annotations

import polars as pl

from transforms.ingest.ledger import QUARANTINE_SCHEMA, RAW_COLUMNS
from transforms.lake import ACTIVITY_RAW, Lake


def _new_events(lake: Lake, accepted_frames: list[pl.DataFrame],
                ) -> tuple[pl.DataFrame, dict[str, dict], pl.DataFrame]:
    """Accepted rows not yet stored (first occurrence by id), per-source accepted/duplicates/quarantined/
    days, and the quarantine rows of ids already stored (or earlier in the batch) with other content.

    An id seen before is a duplicate when its payload equals the first occurrence's (the stored one,
    else the first in file/line order) byte for byte or as a JSON value (key order, spacing and number
    spelling aside: ``1.50`` is ``1.5``, ``1`` is ``1.0``, ``true`` is not ``1``); otherwise it is
    quarantined and the first occurrence stays. Stored ids are looked up on every day: the same id with
    another ``created_at`` (so on another day) is other content. Payloads are compared by hash and
    length first; only those that differ are read in full and parsed.
    """
    if not accepted_frames:
        return pl.DataFrame(schema={"day": pl.Date}), {}, pl.DataFrame(schema=QUARANTINE_SCHEMA)
    accepted = pl.concat(accepted_frames)
    ids = accepted["id"].unique()
    stored = _stored_hashes(lake, ids)
    if stored.height == 0 and ids.len() == accepted.height:
        # No id stored and none repeated (a first ingest): every row is new, nothing to compare.
        accepted = accepted.with_columns(pl.lit(True).alias("_first"), pl.lit(False).alias("_conflict"))
    else:
        # Duplicates within the batch: the first occurrence in file/line order is the reference.
        accepted = accepted.with_columns(pl.col("id").is_first_distinct().alias("_first"),
                                         pl.col("payload").hash().alias("_hash"),
                                         pl.col("payload").str.len_bytes().alias("_len"))
        reference = accepted.filter(pl.col("_first")).select("id", pl.col("_hash").alias("_ref_hash"),
                                                             pl.col("_len").alias("_ref_len"))
        reference = reference.join(stored, on="id", how="left").select(
            "id", pl.coalesce("_stored_hash", "_ref_hash").alias("_ref_hash"),
            pl.coalesce("_stored_len", "_ref_len").alias("_ref_len"), pl.col("_stored_day").is_not_null().alias("_stored"))
        accepted = accepted.join(reference, on="id", how="left", maintain_order="left").with_columns(
            (pl.col("_first") & ~pl.col("_stored")).alias("_first")).with_row_index("_row")
        # Not the first occurrence and not byte-identical to it (by hash and length): compared as JSON.
        accepted = accepted.with_columns((~pl.col("_first") & ((pl.col("_hash") != pl.col("_ref_hash"))
                                                               | (pl.col("_len") != pl.col("_ref_len")))).alias("_conflict"))
        differ = accepted.filter(pl.col("_conflict")).select("_row", "id", "payload", "_stored")
        if differ.height:
            texts = pl.concat([
                _stored_texts(lake, stored.join(differ.filter("_stored").select("id"), on="id", how="semi")),
                accepted.filter(pl.col("_first")).select("id", pl.col("payload").alias("_reference"))
                .join(differ.filter(~pl.col("_stored")).select("id"), on="id", how="semi"),
            ])
            differ = differ.join(texts, on="id", how="left")
            same = [_same_event(*row) for row in differ.select("payload", "_reference", "_stored").iter_rows()]
            equal = differ.filter(pl.Series(same, dtype=pl.Boolean)).select("_row", pl.lit(True).alias("_equal"))
            accepted = accepted.join(equal, on="_row", how="left", maintain_order="left").with_columns(
                pl.col("_conflict") & pl.col("_equal").is_null())
    fresh = accepted.filter(pl.col("_first")).select(RAW_COLUMNS)
    per_file = accepted.group_by("source").agg(
        pl.col("_first").sum().alias("accepted"),
        (~pl.col("_first") & ~pl.col("_conflict")).sum().alias("duplicates"),
        pl.col("_conflict").sum().alias("quarantined"),
        pl.col("day").filter(pl.col("_first")).unique().alias("days"),
    )
    conflicts = accepted.filter(pl.col("_conflict")).select(
        "source", "line", pl.format("id {} already stored with different content", "id").alias("quarantine_reason"),
        pl.col("payload").alias("raw_text"), "source_sha256", "ingested_at", "run_id")
    return fresh, {row["source"]: row for row in per_file.iter_rows(named=True)}, conflicts


def _stored_hashes(lake: Lake, ids: pl.Series) -> pl.DataFrame:
    """``id, _stored_day, _stored_hash, _stored_len`` of the given ids that ``activity_raw`` holds, on
    any day: a semi-join on the id column over the whole table, then the payloads of the matching days
    only, hashed as they are read (a re-sent batch does not hold its stored copy in memory)."""
    schema = {"id": pl.String, "_stored_day": pl.Date, "_stored_hash": pl.UInt64, "_stored_len": pl.UInt32}
    raw = lake.scan(ACTIVITY_RAW)
    if raw is None:
        return pl.DataFrame(schema=schema)
    # A join, not ``is_in``: Polars pushes an ``is_in`` filter into every file's scan (seconds for 100k ids).
    hits = raw.select("id", "day").join(pl.LazyFrame({"id": ids}), on="id", how="semi").collect()
    if hits.height == 0:
        return pl.DataFrame(schema=schema)
    # Hashed in the scan, before the join: the payloads are never held in memory.
    return (raw.filter(pl.col("day").is_in(hits["day"].unique().to_list()))
            .select("id", pl.col("day").alias("_stored_day"), pl.col("payload").hash().alias("_stored_hash"),
                    pl.col("payload").str.len_bytes().alias("_stored_len"))
            .join(hits.lazy().rename({"day": "_stored_day"}), on=["id", "_stored_day"], how="semi")
            .collect().unique("id", keep="first", maintain_order=True).cast(schema))  # type: ignore[arg-type]


def _stored_texts(lake: Lake, stored: pl.DataFrame) -> pl.DataFrame:
    """``id, _reference``: the stored payloads of ``stored`` (``id, _stored_day``) rows."""
    if stored.height == 0:
        return pl.DataFrame(schema={"id": pl.String, "_reference": pl.String})
    keys = stored.select("id", pl.col("_stored_day").alias("day"))
    return (lake.scan(ACTIVITY_RAW).filter(pl.col("day").is_in(keys["day"].unique().to_list()))
            .join(keys.lazy(), on=["id", "day"], how="semi")
            .select("id", pl.col("payload").cast(pl.String).alias("_reference"))
            .collect().unique("id", keep="first", maintain_order=True))


def _same_event(payload: str, reference: str, erased_ok: bool) -> bool:
    """Equal as JSON values: key order and spacing aside, numbers by exact decimal value (``1.50`` is
    ``1.5``, ``1`` is ``1.0``, ``0.1`` is not ``0.10000000000000001``), booleans apart from numbers
    (``true`` is not ``1``). A stored event that an erasure rewrote (``transforms.erasure``: it names an
    ``erased-…`` pseudonym) counts as the same event: a copy of the original line is a duplicate, never
    quarantined (its raw text would bring the erased personal data back)."""
    import json
    import re
    from decimal import Decimal

    if erased_ok and re.search(r"erased-[0-9a-f]{16}", reference):
        return True
    floats: list[bool] = []

    def same(left: object, right: object) -> bool:
        if isinstance(left, bool) or isinstance(right, bool) or left is None or right is None:
            return type(left) is type(right) and left == right
        if isinstance(left, (int, float, Decimal)) and isinstance(right, (int, float, Decimal)):
            if isinstance(left, float) or isinstance(right, float):
                floats.append(True)
            return left == right
        if isinstance(left, dict) and isinstance(right, dict):
            return left.keys() == right.keys() and all(same(left[key], right[key]) for key in left)
        if isinstance(left, list) and isinstance(right, list):
            return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right))
        return type(left) is type(right) and left == right

    try:  # floats first (fast): values that differ as floats differ as decimals too
        if not same(json.loads(payload), json.loads(reference)):
            return False
        if not floats:
            return True
        return same(json.loads(payload, parse_float=Decimal), json.loads(reference, parse_float=Decimal))
    except ValueError:
        return False
