"""``publish: {max_events, max_bytes, idempotency_ttl}``: limits of the publisher API (events in over HTTP)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import PlainValidator, field_validator

from transforms.durations import Duration
from transforms.landing import LandingSettingsError, parse_size

from .base import Section, fail, kind_of
from .fields import DurationValue, fixed_length

__all__ = ["PublishConfig"]

DEFAULT_MAX_EVENTS = 1_000
DEFAULT_MAX_BYTES = 5 * 1024 * 1024


def _positive_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(f"must be a whole number of at least 1, not {kind_of(value) if not isinstance(value, int) else value}")
    return value


def _size(value: Any) -> int:
    if isinstance(value, bool):
        raise fail(f"must be a size like 5MiB or 1000000, not {kind_of(value)}")
    if isinstance(value, int):
        if value < 1:
            raise fail(f"must be a size of at least 1 byte, not {value}")
        return value
    if isinstance(value, str):
        try:
            return parse_size(value, "size")
        except LandingSettingsError:
            raise fail(f"must be a size like 5MiB, 512KiB or 1000000, not {value!r}") from None
    raise fail(f"must be a size like 5MiB or 1000000, not {kind_of(value)}")


class PublishConfig(Section):
    """``publish: {max_events: 1000, max_bytes: 5MiB, idempotency_ttl: 24h}``.

    ``max_events``: events in one request; ``max_bytes``: bytes of one request body (``5MiB``,
    ``1000000``); ``idempotency_ttl``: how long an ``Idempotency-Key`` is remembered (hours, days or
    weeks; ``forever`` keeps them).
    """

    max_events: Annotated[int, PlainValidator(_positive_count)] = DEFAULT_MAX_EVENTS
    max_bytes: Annotated[int, PlainValidator(_size)] = DEFAULT_MAX_BYTES
    idempotency_ttl: DurationValue = Duration(hours=24)

    @field_validator("idempotency_ttl", mode="after")
    @classmethod
    def _fixed(cls, value: Duration | None) -> Duration | None:
        return fixed_length(value)

    @property
    def idempotency_seconds(self) -> float | None:
        """The TTL in seconds (None: forever)."""
        if self.idempotency_ttl is None:
            return None
        return self.idempotency_ttl.to_timedelta("publish.idempotency_ttl").total_seconds()
