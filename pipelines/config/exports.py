"""``exports: [{name, schedule, format, window, filter, destination}]``: scheduled file exports."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from .base import Section, fail, kind_of
from .fields import NAME_PATTERN, DurationValue, activity_filter, cron_expression, directory_uri

__all__ = ["ExportSchedule", "exports_shape", "unique_export_names"]


class ExportSchedule(Section):
    """``{name, schedule, format, window, filter, destination}``: a scheduled export (cron in UTC)."""

    name: str
    schedule: str
    format: Literal["csv", "xlsx", "jsonl"]
    #: The span each run exports, ending at the scheduled time (``7d``, ``1mo``; ``forever``: everything).
    window: DurationValue
    filter: Any = Field(default=None, validate_default=True)
    #: A directory (local, relative to this file, or ``s3://bucket/prefix/``) that receives the files.
    destination: str

    @field_validator("name", mode="plain")
    @classmethod
    def _name(cls, value: Any) -> str:
        if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value.strip()):
            raise fail("must be a name of letters, digits, '-', '_' or '.'" +
                       (f", not {value!r}" if isinstance(value, str) else f", not {kind_of(value)}"))
        return value.strip()

    @field_validator("schedule", mode="plain")
    @classmethod
    def _cron(cls, value: Any) -> str:
        return cron_expression(value)

    @field_validator("filter", mode="plain")
    @classmethod
    def _filter(cls, value: Any) -> Any:
        return activity_filter(value)

    @field_validator("destination", mode="plain")
    @classmethod
    def _destination(cls, value: Any, info: ValidationInfo) -> str:
        return directory_uri(value, info)


def exports_shape(value: Any) -> Any:
    """A ``before`` validator for the whole section: a list (``None``: no exports)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise fail(f"must be a list of exports, not {kind_of(value)}")
    return value


def unique_export_names(value: list[ExportSchedule]) -> list[ExportSchedule]:
    """An ``after`` validator for the whole section: no two exports share a name."""
    names = [e.name for e in value]
    for position, name in enumerate(names):
        if name in names[:position]:
            raise fail(f"[{position}].name: {name!r} is used twice")
    return value
