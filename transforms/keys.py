"""Scoped API keys, stored hashed in the ``api_keys`` table of the lake.

A key reads as ``alk_<key id>_<secret>``. Only SHA-256 of the secret is stored; a presented key is looked
up by its id and its secret compared in constant time. The table is append-only: revoking appends a
row, and the latest row of a key decides (the server re-reads the table on every request — one
``update_incremental`` of a small Delta table — so a revocation takes effect at once).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
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


def create_key(lake: Lake, organization_id: str, projects: list[int] | None = None, *, admin: bool = False,
               scopes: list[str] | None = None, label: str | None = None) -> tuple[str, ApiKey]:
    """A new key: (the token, shown once; the key's record)."""
    if not organization_id:
        raise ValueError("a key belongs to an organization")
    if not projects and not admin:
        raise ValueError("a key names at least one project (--project), or is an organization admin key (--admin)")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = {"key_id": key_id, "secret_sha256": _hash(secret), "organization_id": organization_id,
           "projects": sorted(set(projects or [])), "admin": admin, "scopes": sorted(set(scopes or [READ_SCOPE])),
           "label": label, "created_at": datetime.now(timezone.utc), "revoked_at": None}
    lake.append(API_KEYS, pl.DataFrame([row], schema=KEY_SCHEMA))
    return f"{PREFIX}_{key_id}_{secret}", _key(row)


def list_keys(lake: Lake) -> list[ApiKey]:
    return [_key(row) for row in _latest(lake).iter_rows(named=True)]


def revoke_key(lake: Lake, key_id: str) -> bool:
    """Revoke by id (or by a whole token). False when no such active key exists."""
    if key_id.startswith(f"{PREFIX}_"):
        key_id = key_id.split("_")[1]
    current = _latest(lake).filter(pl.col("key_id") == key_id)
    if current.height == 0 or current["revoked_at"][0] is not None:
        return False
    row = current.row(0, named=True)
    row["revoked_at"] = datetime.now(timezone.utc)
    row["created_at"] = row["revoked_at"]  # the newest row decides
    lake.append(API_KEYS, pl.DataFrame([row], schema=KEY_SCHEMA))
    return True


_BY_ID: dict[tuple[str, int], dict[str, tuple[str, ApiKey]]] = {}  # per table version: key id → (hash, key)


def _by_id(lake: Lake) -> dict[str, tuple[str, ApiKey]]:
    table = lake.table(API_KEYS)
    if table is None:
        return {}
    cache_key = (lake.uri(API_KEYS), table.version())
    if cache_key not in _BY_ID:
        _BY_ID.clear()
        _BY_ID[cache_key] = {row["key_id"]: (row["secret_sha256"], _key(row))
                             for row in _latest(lake).iter_rows(named=True)}
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
