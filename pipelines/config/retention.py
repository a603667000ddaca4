"""``retention: {default, organizations, projects, holds, vacuum_grace, schedule}``: how long events are kept,
and what is never deleted (legal holds)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, field_validator

from transforms.durations import Duration

from .base import Section, fail, kind_of, require_text
from .fields import DurationValue, cron_expression, fixed_length

__all__ = ["HoldsConfig", "RetentionConfig"]


class HoldsConfig(Section):
    """``{organizations: [ORG_ID, ...], projects: [TEAM_ID, ...]}``: legal holds. Retention never deletes
    an event of a held organization or project, whatever its window (``activitylog hold`` adds more at
    run time, in the lake's ``legal_holds`` table)."""

    organizations: tuple[str, ...] = ()
    projects: tuple[int, ...] = ()

    @field_validator("organizations", mode="plain")
    @classmethod
    def _organizations(cls, value: Any) -> tuple[str, ...]:
        return tuple(sorted({require_text(item, "must be an organization id (a non-empty string)")
                             for item in _items(value)}))

    @field_validator("projects", mode="plain")
    @classmethod
    def _projects(cls, value: Any) -> tuple[int, ...]:
        projects = set()
        for item in _items(value):
            if isinstance(item, str) and item.strip().isdigit():  # as the windows' keys: "7" is project 7
                item = int(item)
            if isinstance(item, bool) or not isinstance(item, int):
                shown = json.dumps(item) if isinstance(item, (bool, float, type(None))) else repr(item)
                raise fail(f"{shown} is not a project id: project ids are integers (team ids), not {kind_of(item)}")
            projects.add(item)
        return tuple(sorted(projects))

    @property
    def active(self) -> bool:
        return bool(self.organizations or self.projects)


def _items(value: Any) -> list:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise fail(f"must be a list, not {kind_of(value)}")
    return list(value)


class RetentionConfig(Section):
    """``{default, organizations: {ORG_ID: window}, projects: {TEAM_ID: window}, holds, vacuum_grace, schedule}``.

    Windows: ``7d``, ``2mo``, ``5y`` or ``forever``. A project's window wins over its organization's,
    which wins over the default. Without a ``retention:`` section nothing is ever deleted. ``holds``
    (:class:`HoldsConfig`) lists organizations and projects whose events are never deleted.
    """

    default: DurationValue = None
    organizations: dict[str, DurationValue] = Field(default_factory=dict)
    projects: dict[int, DurationValue] = Field(default_factory=dict)
    #: Legal holds: organizations and projects retention never deletes from.
    holds: HoldsConfig = Field(default_factory=HoldsConfig)
    #: How long deleted data files stay on storage (time-travel, concurrent readers) before vacuum removes them.
    vacuum_grace: DurationValue = Duration(days=7)
    #: When the retention job runs (cron, UTC).
    schedule: str = "30 3 * * *"

    @field_validator("vacuum_grace", mode="after")
    @classmethod
    def _fixed(cls, value: Duration | None) -> Duration | None:
        return fixed_length(value)

    @field_validator("holds", mode="before")
    @classmethod
    def _no_holds(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("schedule", mode="plain")
    @classmethod
    def _cron(cls, value: Any) -> str:
        return cron_expression(value)

    @property
    def configured(self) -> bool:
        return self.default is not None or bool(self.organizations) or bool(self.projects)
