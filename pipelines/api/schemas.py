"""Response models of the read API (``response_model`` of every route): PostHog's shapes, documented in
the OpenAPI document. Pages are served as cached JSON bytes, so the models describe them without
re-validating each response; extra fields are allowed (the shapes are extended, never narrowed)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ActivityUser(_Open):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    uuid: str | None = None
    id: int | None = None
    distinct_id: str | None = None
    is_email_verified: bool | None = None
    role_at_organization: str | None = None


class ActivityRow(_Open):
    id: str
    user: ActivityUser | None = None
    unread: bool | None = None
    activity: str
    scope: str
    item_id: str | None = None
    detail: Any = None
    created_at: str
    is_system: bool | None = None
    was_impersonated: bool | None = None
    client: str | None = None
    ip_address: str | None = None
    organization_id: str | None = None
    project_id: int | None = None
    summary: str | None = None


class ActivityPage(_Open):
    """A page of rows (``schema=ocsf``: OCSF records instead) and the links to the next and previous ones;
    ``count`` (all matching rows) only on page-number pages."""

    results: list[ActivityRow | dict[str, Any]]
    next: str | None = None
    previous: str | None = None
    count: int | None = None  # page-number pages only (?page=); cursor pages leave it out


class FilterUser(_Open):
    uuid: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class FilterOption(_Open):
    value: str | None = None
    label: str | None = None


class StaticFilters(_Open):
    users: list[FilterOption]
    scopes: list[FilterOption]
    activities: list[FilterOption]
    clients: list[FilterOption]


class DetailField(_Open):
    name: str
    types: list[str]


class ScopeFields(_Open):
    fields: list[DetailField]


class AvailableFilters(_Open):
    """PostHog's ``static_filters`` and ``detail_fields``, and the plain lists of the same."""

    static_filters: StaticFilters
    detail_fields: dict[str, ScopeFields]
    users: list[FilterUser]
    scopes: list[str]
    activities: list[str]
    clients: list[str]
    detail_paths: list[str]
    changed_fields: list[str]


class ExportStarted(_Open):
    id: str
    status: str
    format: str


class ExportStatus(_Open):
    id: str
    status: str  # queued, running, succeeded, failed
    run_id: str | None = None
    format: str
    created_at: str
    error: str | None = None
    manifest: dict[str, Any] | None = None
    file: str | None = None
