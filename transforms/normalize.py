"""``activity_raw`` → ``activity_events``: one typed row per event, read back from the verbatim payload."""

from __future__ import annotations


import polars as pl

from transforms.ndjson import ndjson_buffer

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
    return pl.read_ndjson(ndjson_buffer(payload), schema=PAYLOAD_SCHEMA, infer_schema_length=None)


DETAIL_FIELDS_SCHEMA = {
    "name": pl.String, "short_id": pl.String, "type": pl.String, "trigger": pl.Struct({"job_type": pl.String}),
}


def _detail_fields(detail: pl.Series) -> pl.DataFrame:
    """name, short_id, type and trigger.job_type of each detail (one parse of the detail texts)."""
    present = detail.is_not_null()
    if not present.any():
        return pl.DataFrame({k: pl.Series([None] * detail.len(), dtype=pl.String)
                             for k in ("detail_name", "detail_short_id", "detail_type", "trigger_job_type")})
    fields = pl.read_ndjson(ndjson_buffer(detail.filter(present)),
                            schema=DETAIL_FIELDS_SCHEMA, infer_schema_length=None, ignore_errors=True)
    fields = fields.select(
        pl.col("name").alias("detail_name"), pl.col("short_id").alias("detail_short_id"),
        pl.col("type").alias("detail_type"), pl.col("trigger").struct.field("job_type").alias("trigger_job_type"),
    )
    # Put the rows back in place: events without detail get nulls.
    positions = pl.Series(range(detail.len())).filter(present)
    return (
        pl.DataFrame({"_row": pl.Series(range(detail.len()))})
        .join(fields.with_columns(positions.alias("_row")), on="_row", how="left", maintain_order="left")
        .drop("_row")
    )


def normalize_events(raw: pl.DataFrame) -> pl.DataFrame:
    """Typed events from raw rows (any set of days). Pure: the same raw rows give the same events."""
    raw = raw.sort("created_at", "id")
    fields = _read_payloads(raw["payload"])
    detail = pl.col("detail")
    frame = pl.concat([raw.drop("payload"), fields.rename({"is_system": "_is_system"}),
                       _detail_fields(fields["detail"])], how="horizontal")
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
        detail, "detail_name", "detail_short_id", "detail_type", "trigger_job_type",
        "client", "ip_address", "ingested_at",
    )
