"""``activity_raw`` → ``activity_events``: one typed row per event, read back from the verbatim payload.

Payloads are decoded by msgspec (``transforms.jsontext``), the reader ingest validated them with:
``detail`` is cut out of the payload verbatim (its exact JSON text), the other columns are the
values' text.
"""

from __future__ import annotations

from typing import Iterable

import msgspec
import polars as pl

from transforms import jsontext
from transforms.jsontext import ABSENT

EVENT_COLUMNS = [
    "id", "day", "created_at", "level", "team_id", "organization_id", "scope", "activity", "item_id",
    "is_system", "was_impersonated", "actor_id", "actor_uuid", "actor_email", "actor_first_name",
    "actor_last_name", "detail", "detail_name", "detail_short_id", "detail_type", "trigger_job_type",
    "client", "ip_address", "ingested_at",
]


class _User(msgspec.Struct, gc=False):
    id: int | str | None = None
    uuid: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class _Payload(msgspec.Struct, gc=False):
    user: _User | None = None
    detail: msgspec.Raw = ABSENT
    is_system: bool | None = None
    was_impersonated: bool | None = None
    client: str | None = None
    ip_address: str | None = None


class _Trigger(msgspec.Struct, gc=False):
    job_type: str | None = None


class _DetailFields(msgspec.Struct, gc=False):
    name: str | None = None
    short_id: str | None = None
    type: str | None = None
    trigger: _Trigger | None = None


def _raw_twin(struct: type) -> type:
    """The same fields, each as a raw value: decodes whatever types the values have."""
    return msgspec.defstruct(f"_Raw{struct.__name__}", [(n, msgspec.Raw, ABSENT) for n in struct.__struct_fields__],
                             gc=False)


_RawUser, _RawPayload, _RawTrigger, _RawDetailFields = (_raw_twin(s) for s in (_User, _Payload, _Trigger, _DetailFields))
_PAYLOAD = jsontext.decoders(_Payload)
_DETAIL = jsontext.decoders(_DetailFields)
_RAW_PAYLOAD, _RAW_DETAIL = msgspec.json.Decoder(_RawPayload), msgspec.json.Decoder(_RawDetailFields)
_RAW_USER, _RAW_TRIGGER = msgspec.json.Decoder(_RawUser), msgspec.json.Decoder(_RawTrigger)

USER_FIELDS = ("id", "uuid", "email", "first_name", "last_name")


class NormalizeError(ValueError):
    """An accepted event that cannot be read (never expected: ingest applies the same reader)."""


def _raw_value(obj: object, name: str, prepared: str | None) -> str | None:
    raw = bytes(getattr(obj, name))
    return jsontext.raw_json(raw, prepared) if jsontext.raw_kind(raw) in ("object", "array") else \
        jsontext.raw_text(raw, prepared)


def _raw_object(obj: object, name: str, decoder: msgspec.json.Decoder) -> object | None:
    raw = bytes(getattr(obj, name))
    return decoder.decode(raw) if jsontext.raw_kind(raw) == "object" else None


def _texts(values: list) -> pl.Series:
    """Values of a text field as a String column (a number, e.g. a user id, as its text)."""
    return pl.Series(values, dtype=pl.String, strict=False)


def _fix_prepared(columns: dict[str, list], prepared: list[str | None], names: Iterable[str]) -> None:
    """Text fields of texts that held unpaired surrogates: each reads as U+FFFD."""
    for index in (i for i, p in enumerate(prepared) if p):
        for name in names:
            value = columns[name][index]
            if isinstance(value, str):
                columns[name][index] = jsontext.as_text(value, prepared[index])


def _payload_columns(payloads: pl.Series, ids: pl.Series) -> tuple[dict[str, list], list[bytes | None], list[str | None]]:
    """Per payload: the user, flags, client and IP columns, and the raw ``detail`` (bytes, None when
    absent or null), with the prepared flags."""
    objects, reasons, prepared = jsontext.decode_many(payloads, _PAYLOAD, _RAW_PAYLOAD)
    for index, obj in enumerate(objects):
        if obj is None:
            raise NormalizeError(f"event {ids[index]}: payload cannot be read: {reasons[index]}")
    odd = [i for i, o in enumerate(objects) if not isinstance(o, _Payload)]
    fast = [None if i in set(odd) else o for i, o in enumerate(objects)] if odd else objects
    users = [None if o is None else o.user for o in fast]
    columns: dict[str, list] = {"user_present": [u is not None for u in users]}
    for name in USER_FIELDS:
        columns[f"user_{name}"] = [None if u is None else getattr(u, name) for u in users]
    for name in ("is_system", "was_impersonated", "client", "ip_address"):
        columns[name] = [None if o is None else getattr(o, name) for o in fast]
    details = [None if o is None else bytes(o.detail) for o in fast]
    for index in odd:
        obj, was_prepared = objects[index], prepared[index]
        user = _raw_object(obj, "user", _RAW_USER)
        columns["user_present"][index] = user is not None
        for name in USER_FIELDS:
            columns[f"user_{name}"][index] = None if user is None else _raw_value(user, name, was_prepared)
        for name in ("is_system", "was_impersonated"):
            value = _raw_value(obj, name, was_prepared)
            columns[name][index] = None if value is None else value == "true"
        for name in ("client", "ip_address"):
            columns[name][index] = _raw_value(obj, name, was_prepared)
        details[index] = bytes(obj.detail)
    details = [None if not d or d == b"null" else d for d in details]
    _fix_prepared(columns, prepared, [f"user_{n}" for n in USER_FIELDS] + ["client", "ip_address"])
    return columns, details, prepared


DETAIL_COLUMNS = ("detail_name", "detail_short_id", "detail_type", "trigger_job_type")


def _detail_columns(details: list[bytes | None], prepared: list[str | None]) -> dict[str, list]:
    """name, short_id, type and trigger.job_type of each raw detail (None where there is none)."""
    present = [i for i, d in enumerate(details) if d is not None]
    columns: dict[str, list] = {name: [None] * len(details) for name in DETAIL_COLUMNS}
    if not present:
        return columns
    careful = {position for position, i in enumerate(present) if prepared[i]}
    objects, _, _ = jsontext.decode_values([details[i] for i in present], _DETAIL, _RAW_DETAIL, careful)
    for index, obj in zip(present, objects):
        if obj is None:
            continue
        if isinstance(obj, _DetailFields):
            trigger = obj.trigger
            values = (obj.name, obj.short_id, obj.type, None if trigger is None else trigger.job_type)
        else:
            was_prepared = prepared[index]
            trigger = _raw_object(obj, "trigger", _RAW_TRIGGER)
            values = (_raw_value(obj, "name", was_prepared), _raw_value(obj, "short_id", was_prepared),
                      _raw_value(obj, "type", was_prepared),
                      None if trigger is None else _raw_value(trigger, "job_type", was_prepared))
        for name, value in zip(DETAIL_COLUMNS, values):
            columns[name][index] = value
    _fix_prepared(columns, prepared, DETAIL_COLUMNS)
    return columns


def normalize_events(raw: pl.DataFrame) -> pl.DataFrame:
    """Typed events from raw rows (any set of days). Pure: the same raw rows give the same events."""
    raw = raw.sort("created_at", "id")
    columns, details, prepared = _payload_columns(raw["payload"], raw["id"])
    columns.update(_detail_columns(details, prepared))
    detail_texts = [None if d is None else d.decode() for d in details]
    for index in (i for i, p in enumerate(prepared) if p and detail_texts[i] is not None):
        detail_texts[index] = jsontext.restore(detail_texts[index], prepared[index])
    fields = pl.DataFrame({
        **{name: (pl.Series(values, dtype=pl.Boolean) if name in ("is_system", "was_impersonated", "user_present")
                  else _texts(values)).alias(name) for name, values in columns.items()},
        "detail": pl.Series(detail_texts, dtype=pl.String),
    })
    frame = pl.concat([raw.drop("payload"), fields.rename({"is_system": "_is_system"})], how="horizontal")
    return frame.select(
        "id", "day", "created_at", "level", "team_id", "organization_id", "scope", "activity", "item_id",
        # README "Landing files and validation": is_system defaults to "user is null", was_impersonated to false.
        pl.coalesce(pl.col("_is_system"), ~pl.col("user_present")).alias("is_system"),
        pl.col("was_impersonated").fill_null(False),
        pl.col("user_id").str.to_integer(strict=False).alias("actor_id"),
        pl.col("user_uuid").alias("actor_uuid"),
        pl.col("user_email").alias("actor_email"),
        pl.col("user_first_name").alias("actor_first_name"),
        pl.col("user_last_name").alias("actor_last_name"),
        "detail", *DETAIL_COLUMNS, "client", "ip_address", "ingested_at",
    )
