"""Scoped API keys, stored hashed in the ``api_keys`` table of the lake.

A key reads as ``alk_<key id>_<secret>``. Only SHA-256 of the secret is stored; a presented key is looked
up by its id and its secret compared in constant time. The table is append-only: revoking appends a
row, and the latest row of a key decides (the server re-reads the table on every request — one
``update_incremental`` of a small Delta table — so a revocation takes effect at once).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import polars as pl

from transforms.lake import Lake

API_KEYS = "api_keys"
PREFIX = "alk"
KEY_SCHEMA = {
    "key_id": pl.String, "secret_sha256": pl.String, "organization_id": pl.String,
    "projects": pl.List(pl.Int64), "admin": pl.Boolean, "scopes": pl.List(pl.String), "label": pl.String,
    "created_at": pl.Datetime("us", "UTC"), "revoked_at": pl.Datetime("us", "UTC"),
}
READ_SCOPE = "activity_log:read"
#: Publishing events (``POST …/activity_log/events``); a key needs both scopes to read and to write.
WRITE_SCOPE = "activity_log:write"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    organization_id: str
    projects: tuple[int, ...]
    admin: bool
    scopes: tuple[str, ...]
    label: str | None
    created_at: datetime
    revoked_at: datetime | None

    def can_read_project(self, project_id: int, project_organizations: set[str]) -> bool:
        """A named project; or, for an admin key, any project of its organization."""
        if READ_SCOPE not in self.scopes:
            return False
        if project_id in self.projects:
            return True
        return self.admin and self.organization_id in project_organizations

    def can_read_organization(self, organization_id: str) -> bool:
        return READ_SCOPE in self.scopes and self.admin and organization_id == self.organization_id


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


_LATEST: dict[tuple[str, int], pl.DataFrame] = {}  # (table uri, version) → latest rows: one read per version


def _latest(lake: Lake) -> pl.DataFrame:
    table = lake.table(API_KEYS)  # brought up to date on every call: a revocation is seen at once
    if table is None:
        return pl.DataFrame(schema=KEY_SCHEMA)
    cache_key = (lake.uri(API_KEYS), table.version())
    if cache_key not in _LATEST:
        _LATEST.clear()
        _LATEST[cache_key] = (pl.scan_delta(table).collect().sort("created_at")
                              .group_by("key_id", maintain_order=True).last())
    return _LATEST[cache_key]


def _key(row: dict) -> ApiKey:
    return ApiKey(key_id=row["key_id"], organization_id=row["organization_id"], projects=tuple(row["projects"] or ()),
                  admin=bool(row["admin"]), scopes=tuple(row["scopes"] or ()), label=row["label"],
                  created_at=row["created_at"], revoked_at=row["revoked_at"])


class KeyScopeError(ValueError):
    """A key would name an organization or project that does not exist, or a project of another
    organization; the message says which and suggests what was probably meant."""


@dataclass(frozen=True)
class Tenants:
    """Who owns what, as far as the lake knows: reference ``organizations`` and ``projects`` plus the
    events (``activity_log``, else ``activity_events``, else ``activity_raw``)."""

    organizations: dict[str, str | None]      # organization id → name (None when only events name it)
    project_organizations: dict[int, set[str]]  # team id → organization ids

    def projects_of(self, organization_id: str) -> list[int]:
        return sorted(t for t, orgs in self.project_organizations.items() if organization_id in orgs)


def tenants(lake: Lake, references: dict[str, pl.DataFrame] | None = None) -> Tenants:
    """The organizations and projects of the lake. ``references``: loaded reference tables (default:
    the ones under ``<lake>/reference/``)."""
    from transforms.lake import ACTIVITY_EVENTS, ACTIVITY_LOG, ACTIVITY_RAW
    from transforms.reference import lake_reference_uris, load_references

    if references is None:
        references = load_references(lake_reference_uris(lake.root))
    organizations: dict[str, str | None] = {}
    projects: dict[int, set[str]] = {}
    reference_orgs = references.get("organizations")
    if reference_orgs is not None:
        for organization_id, name in reference_orgs.select("organization_id", "name").iter_rows():
            organizations[organization_id] = name
    reference_projects = references.get("projects")
    if reference_projects is not None:
        for team_id, organization_id in reference_projects.select("team_id", "organization_id").iter_rows():
            projects.setdefault(team_id, set())
            if organization_id:
                projects[team_id].add(organization_id)
                organizations.setdefault(organization_id, None)
    for table in (ACTIVITY_LOG, ACTIVITY_EVENTS, ACTIVITY_RAW):
        frame = lake.scan(table)
        if frame is None:
            continue
        seen = frame.select("team_id", "organization_id").unique().collect()
        for team_id, organization_id in seen.iter_rows():
            if organization_id is not None:
                organizations.setdefault(organization_id, None)
            if team_id is not None:
                projects.setdefault(team_id, set())
                if organization_id is not None:
                    projects[team_id].add(organization_id)
        break
    return Tenants(organizations, projects)


def _closest_organization(known: dict[str, str | None], given: str) -> tuple[str, str | None] | None:
    """The known organization whose id or name is closest to ``given`` (a name given for an id, a typo)."""
    import difflib

    lowered = given.strip().lower()
    for organization_id, name in known.items():
        if name and name.strip().lower() == lowered:
            return organization_id, name
    candidates: dict[str, str] = {}
    for organization_id, name in known.items():
        candidates.setdefault(organization_id.lower(), organization_id)
        if name:
            candidates.setdefault(name.lower(), organization_id)
    found = difflib.get_close_matches(lowered, list(candidates), n=1, cutoff=0.6)
    if not found:
        return None
    organization_id = candidates[found[0]]
    return organization_id, known[organization_id]


def check_key_scope(lake: Lake, organization_id: str, projects: list[int] | None = None, *,
                    references: dict[str, pl.DataFrame] | None = None) -> None:
    """Refuse (:class:`KeyScopeError`) an organization the lake does not know and projects that are not
    that organization's (unknown ones, and those of another organization: a key must never reach
    across tenants)."""
    known = tenants(lake, references)
    if organization_id not in known.organizations:
        message = (f"organization {organization_id!r} is unknown: it is neither in the reference organizations "
                   "nor in any event")
        closest = _closest_organization(known.organizations, organization_id)
        if closest:
            found_id, name = closest
            message += f"; did you mean --organization {found_id}" + (f" ({name})" if name else "") + "?"
        elif not known.organizations:
            message += " (the lake knows no organization yet: run `activitylog ingest` first)"
        raise KeyScopeError(message)
    own = known.projects_of(organization_id)
    hint = (f" (projects of {organization_id}: {', '.join(map(str, own[:20]))}{' …' if len(own) > 20 else ''})"
            if own else f" (no project of {organization_id} is known)")
    for project in projects or []:
        owners = known.project_organizations.get(project)
        if owners is None:
            raise KeyScopeError(f"project {project} is unknown: it is neither in the reference projects nor in "
                                f"any event{hint}")
        if organization_id not in owners:
            whose = (f"it belongs to organization {', '.join(sorted(owners))}" if owners
                     else "no reference row or event says which organization it belongs to")
            raise KeyScopeError(f"project {project} is not a project of organization {organization_id}: "
                                f"{whose}{hint}")


def create_key(lake: Lake, organization_id: str, projects: list[int] | None = None, *, admin: bool = False,
               scopes: list[str] | None = None, label: str | None = None, check: bool = True,
               references: dict[str, pl.DataFrame] | None = None) -> tuple[str, ApiKey]:
    """A new key: (the token, shown once; the key's record). ``check``: refuse an unknown organization
    and projects that are not its own first (:func:`check_key_scope`)."""
    if not organization_id:
        raise ValueError("a key belongs to an organization")
    if not projects and not admin:
        raise ValueError("a key names at least one project (--project), or is an organization admin key (--admin)")
    if check:
        check_key_scope(lake, organization_id, projects, references=references)
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = {"key_id": key_id, "secret_sha256": _hash(secret), "organization_id": organization_id,
           "projects": sorted(set(projects or [])), "admin": admin, "scopes": sorted(set(scopes or [READ_SCOPE])),
           "label": label, "created_at": datetime.now(timezone.utc), "revoked_at": None}
    lake.append(API_KEYS, pl.DataFrame([row], schema=KEY_SCHEMA))
    return f"{PREFIX}_{key_id}_{secret}", _key(row)


def list_keys(lake: Lake) -> list[ApiKey]:
    return [_key(row) for row in _latest(lake).iter_rows(named=True)]


def revoke_key(lake: Lake, key_id: str) -> ApiKey | None:
    """Revoke by id (or by a whole token): the key as it was before, or None when no such active key exists."""
    if key_id.startswith(f"{PREFIX}_"):
        key_id = key_id.split("_")[1]
    current = _latest(lake).filter(pl.col("key_id") == key_id)
    if current.height == 0 or current["revoked_at"][0] is not None:
        return None
    row = current.row(0, named=True)
    revoked = _key(dict(row))
    row["revoked_at"] = datetime.now(timezone.utc)
    row["created_at"] = row["revoked_at"]  # the newest row decides
    lake.append(API_KEYS, pl.DataFrame([row], schema=KEY_SCHEMA))
    return revoked


_BY_ID: dict[tuple[str, int], dict[str, tuple[str, ApiKey]]] = {}  # per table version: key id → (hash, key)
#: Per table URI: when its version was last read, the commit log's marker then, and that version.
_SEEN: dict[str, tuple[float, int | None, int]] = {}
#: A lake without a local commit log to watch (S3) is asked for a new version at most this often.
REMOTE_CHECK_SECONDS = 0.5


def _log_marker(uri: str) -> int | None:
    """The local commit log's modification time (a new commit adds a file to it), or None (not local)."""
    if "://" in uri and not uri.startswith("file://"):
        return None
    try:
        return os.stat(os.path.join(uri.removeprefix("file://"), "_delta_log")).st_mtime_ns
    except OSError:
        return None


def _by_id(lake: Lake) -> dict[str, tuple[str, ApiKey]]:
    """The keys of the table's latest version. A server asks this for every request: the Delta log is
    read again only when the local commit log changed (a revocation takes effect at the next
    request) or, on S3, at most every ``REMOTE_CHECK_SECONDS``."""
    uri = lake.uri(API_KEYS)
    marker, now = _log_marker(uri), time.monotonic()
    seen = _SEEN.get(uri)
    if seen is not None and API_KEYS not in lake.versions and (uri, seen[2]) in _BY_ID and (
            (marker is not None and marker == seen[1] and now - seen[0] < 60)
            or (marker is None and now - seen[0] < REMOTE_CHECK_SECONDS)):
        return _BY_ID[(uri, seen[2])]
    table = lake.table(API_KEYS)
    if table is None:
        _SEEN.pop(uri, None)
        return {}
    cache_key = (uri, table.version())
    if cache_key not in _BY_ID:
        _BY_ID.clear()
        _BY_ID[cache_key] = {row["key_id"]: (row["secret_sha256"], _key(row))
                             for row in _latest(lake).iter_rows(named=True)}
    _SEEN[uri] = (now, marker, cache_key[1])
    return _BY_ID[cache_key]


def authenticate(lake: Lake, token: str | None) -> ApiKey | None:
    """The active key for a token, or None (unknown, malformed, wrong secret, revoked)."""
    if not token:
        return None
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        hmac.compare_digest("0" * 64, _hash(token))  # the same work as a real comparison
        return None
    _, key_id, secret = parts
    stored, key = _by_id(lake).get(key_id, ("0" * 64, None))
    matches = hmac.compare_digest(stored, _hash(secret))
    if key is None or not matches or key.revoked_at is not None:
        return None
    return key


# ------------------------------------------------------------------------------------------------
# What a key may read: one row condition, used by every API route and by the exports they start.

HIDDEN_LOGIN_ACTIVITIES = ("logged_in", "logged_out")


def access_condition(organization_id: str, project_id: int | None = None, *,
                     hide_impersonated_logins: bool = False) -> pl.Expr:
    """The rows of ``activity_log`` a request may touch, as a Polars condition.

    ``project_id`` None: the organization's rows (its projects' and its organization-level ones).
    A project: that project's rows, plus the organization-level rows of ``organization_id`` (what
    ``include_organization`` may add) — and in both cases only rows that carry ``organization_id`` or
    no organization at all, so a project that events also tie to another organization never shows
    that organization's rows. ``hide_impersonated_logins``: leave out impersonated
    ``logged_in``/``logged_out`` events (what keys that are not admin may not see)."""
    own_organization = (pl.col("organization_id") == organization_id).fill_null(False)
    if project_id is None:
        condition = own_organization
    else:
        condition = (((pl.col("team_id") == project_id).fill_null(False)
                      & (pl.col("organization_id").is_null() | own_organization))
                     | (pl.col("team_id").is_null() & own_organization))
    if hide_impersonated_logins:
        condition = condition & ~(pl.col("was_impersonated").fill_null(False)
                                  & pl.col("activity").is_in(list(HIDDEN_LOGIN_ACTIVITIES)).fill_null(False))
    return condition
