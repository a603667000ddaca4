"""``retention: {default, organizations, projects, vacuum_grace, schedule}``: how long events are kept."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from transforms.durations import Duration

from .base import Section
from .fields import DurationValue, cron_expression, fixed_length

__all__ = ["RetentionConfig"]


class RetentionConfig(Section):
    """``{default, organizations: {ORG_ID: window}, projects: {TEAM_ID: window}, vacuum_grace, schedule}``.

    Windows: ``7d``, ``2mo``, ``5y`` or ``forever``. A project's window wins over its organization's,
    which wins over the default. Without a ``retention:`` section nothing is ever deleted.
    """

    default: DurationValue = None
    organizations: dict[str, DurationValue] = Field(default_factory=dict)
    projects: dict[int, DurationValue] = Field(default_factory=dict)
    #: How long deleted data files stay on storage (time-travel, concurrent readers) before vacuum removes them.
    vacuum_grace: DurationValue = Duration(days=7)
    #: When the retention job runs (cron, UTC).
    schedule: str = "30 3 * * *"

    @field_validator("vacuum_grace", mode="after")
    @classmethod
    def _fixed(cls, value: Duration | None) -> Duration | None:
        return fixed_length(value)

    @field_validator("schedule", mode="plain")
    @classmethod
    def _cron(cls, value: Any) -> str:
        return cron_expression(value)

    @property
    def configured(self) -> bool:
        return self.default is not None or bool(self.organizations) or bool(self.projects)
