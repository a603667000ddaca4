"""``activity_raw`` → ``activity_events``: one typed row per event, read back from the verbatim payload."""

from __future__ import annotations

import io

import polars as pl

# How each payload is read: nested objects we only keep as JSON text are declared String.
PAYLOAD_SCHEMA = {
    "user": pl.Struct({
        "id": pl.String, "uuid": pl.String, "email": pl.String,
        "first_name": pl.String, "last_name": pl.String,
    }),
    "detail": pl.String,
    "is_system": pl.Boolean,
    "was_impersonated": pl.Boolean,
    "client": pl.String,
    "ip_address": pl.String,
}

EVENT_COLUMNS = [
    "id", "day", "created_at", "level", "team_id", "organization_id", "scope", "activity", "item_id",
    "is_system", "was_impersonated", "actor_id", "actor_uuid", "actor_email", "actor_first_name",
    "actor_last_name", "detail", "detail_name", "detail_short_id", "detail_type", "trigger_job_type",
    "client", "ip_address", "ingested_at",
]


def _read_payloads(payload: pl.Series) -> pl.DataFrame:
    if payload.len() == 0:
        return pl.DataFrame(schema=PAYLOAD_SCHEMA)
    data = payload.str.join("\n").item().encode()
    return pl.read_ndjson(io.BytesIO(data), schema=PAYLOAD_SCHEMA, infer_schema_length=None)


def normalize_events(raw: pl.DataFrame) -> pl.DataFrame:
    """Typed events from raw rows (any set of days). Pure: the same raw rows give the same events."""
    raw = raw.sort("created_at", "id")
    fields = _read_payloads(raw["payload"])
    detail = pl.col("detail")
    frame = pl.concat([raw.drop("payload"), fields.rename({"is_system": "_is_system"})], how="horizontal")
    return frame.select(
        "id", "day", "created_at", "level", "team_id", "organization_id", "scope", "activity", "item_id",
        # DESIGN: is_system defaults to "user is null", was_impersonated to false.
        pl.coalesce(pl.col("_is_system"), pl.col("user").is_null()).alias("is_system"),
        pl.col("was_impersonated").fill_null(False),
        pl.col("user").struct.field("id").str.to_integer(strict=False).alias("actor_id"),
        pl.col("user").struct.field("uuid").alias("actor_uuid"),
        pl.col("user").struct.field("email").alias("actor_email"),
        pl.col("user").struct.field("first_name").alias("actor_first_name"),
        pl.col("user").struct.field("last_name").alias("actor_last_name"),
        detail,
        detail.str.json_path_match("$.name").alias("detail_name"),
        detail.str.json_path_match("$.short_id").alias("detail_short_id"),
        detail.str.json_path_match("$.type").alias("detail_type"),
        detail.str.json_path_match("$.trigger.job_type").alias("trigger_job_type"),
        "client", "ip_address", "ingested_at",
    )
