"""The one access rule of the read API: a FastAPI dependency every ``/api/`` route uses.

:func:`require_access` resolves the request's key (401 without a valid one), its rate limit (429), its
scopes (403 without the route's scope, on every route, a key's own projects included: ``activity_log:read``,
or ``activity_log:write`` on the routes that declare it, see :func:`required_scope`), and the
project or organization of the path (404 for anything the key may not read, so existence does not
leak). It returns an :class:`Access`: the key, what the route is about, and ``rows`` — the condition on
``activity_log`` (see :func:`transforms.keys.access_condition`) that every read, filter list and export
of the route is limited to. No route reads the lake except through it; a test enumerates the routes.

``rows`` also leaves out what the visibility rules hide (:mod:`transforms.visibility`, the configuration
file's ``visibility:`` section; default PostHog's restrictions): every key is a non-staff viewer, so a
restricted row is served by no route, to no key, admin or not, in no read, filter list or export.
"""

from __future__ import annotations

import threading
import time
import hashlib
import json
from collections import defaultdict, deque
from dataclasses import dataclass, field

import polars as pl
from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from transforms.keys import READ_SCOPE, ApiKey, access_condition, authenticate
from transforms.lake import ACTIVITY_LOG, Lake
from transforms.query import team_organizations
from transforms.visibility import DEFAULT_RULES, VisibilityRule, visible

INT64_MAX = 2**63 - 1
#: A route's ``openapi_extra`` member naming the scope it needs (default ``activity_log:read``).
SCOPE_EXTENSION = "x-required-scope"
WWW_AUTHENTICATE = 'Bearer realm="activitylog"'


class ApiError(Exception):
    def __init__(self, status: int, detail: str, attr: str | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.detail, self.attr, self.headers = status, detail, attr, headers or {}


class RateLimiter:
    """A sliding one-minute window per key."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.calls: dict[str, deque] = defaultdict(deque)
        self.lock = threading.Lock()

    def check(self, key_id: str) -> None:
        now = time.monotonic()
        with self.lock:
            window = self.calls[key_id]
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= self.per_minute:
                raise ApiError(429, "rate limit exceeded", headers={"Retry-After": str(int(60 - (now - window[0])) + 1)})
            window.append(now)


@dataclass(frozen=True)
class Access:
    """What one request may touch."""

    key: ApiKey
    organization_id: str                 # the key's organization (the route's, on organization routes)
    project_id: int | None               # None: an organization route
    hidden: tuple[VisibilityRule, ...]   # the visibility rules: rows no key is served
    rows: pl.Expr = field(compare=False, repr=False)

    @property
    def scope_tag(self) -> str:
        return f"project:{self.project_id}" if self.project_id is not None else f"organization:{self.organization_id}"

    @property
    def visibility_tag(self) -> str:
        """A fingerprint of the visibility rules (an export made under other rules is not handed out)."""
        text = json.dumps([rule.to_dict() for rule in self.hidden], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def visibility(self) -> tuple:
        """Two requests with equal visibility and the same URL see the same rows (the page cache key)."""
        return (self.organization_id, self.project_id, self.visibility_tag)

    def export_access(self) -> dict:
        """The rule, as an export run applies it (``export_job``'s ``access`` config)."""
        return {"organization_id": self.organization_id, "project_id": self.project_id,
                "visibility": [rule.to_dict() for rule in self.hidden]}


class AccessRule:
    """Resolves requests to :class:`Access` for one app (its lake, rate limit and visibility rules)."""

    def __init__(self, lake: Lake, limiter: RateLimiter, hidden: tuple[VisibilityRule, ...] = DEFAULT_RULES) -> None:
        self.lake, self.limiter, self.hidden = lake, limiter, tuple(hidden)
        self._visible = visible(self.hidden)
        self._organizations: dict[tuple[int | None, int], set[str]] = {}  # (log version, project) → orgs
        self._lock = threading.Lock()
        self._computing: dict[tuple[int | None, int], threading.Lock] = {}  # one computation per key at once
        self._version: tuple[float, int | None] = (0.0, None)

    def log_version(self) -> int | None:
        """activity_log's version, looked up at most twice a second (not a Delta lookup per request)."""
        at, version = self._version
        now = time.monotonic()
        if now - at > 0.5:
            version = self.lake.version(ACTIVITY_LOG)
            self._version = (now, version)
        return version

    def key(self, request: Request, scope: str = READ_SCOPE) -> ApiKey:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        key = authenticate(self.lake, token)
        if key is None:
            challenge = WWW_AUTHENTICATE + (', error="invalid_token"' if token else "")
            raise ApiError(401, "a valid API key is required (Authorization: Bearer alk_…)",
                           headers={"WWW-Authenticate": challenge})
        self.limiter.check(key.key_id)
        if scope not in key.scopes:
            raise ApiError(403, f"this key does not have the scope {scope}")
        return key

    def cached_organizations(self, project_id: int) -> set[str] | None:
        version = self.log_version()
        with self._lock:
            return self._organizations.get((version, project_id))

    def organizations_of(self, project_id: int) -> set[str]:
        """The organizations a project belongs to (reference data + its events), once per table version.
        Requests arriving together for a project not yet known wait for one computation (a scan of
        the table) instead of each running it."""
        version = self.log_version()
        cache_key = (version, project_id)
        with self._lock:
            found = self._organizations.get(cache_key)
            if found is not None:
                return found
            computing = self._computing.setdefault(cache_key, threading.Lock())
        with computing:
            with self._lock:
                found = self._organizations.get(cache_key)
            if found is None:
                frame = self.lake.scan(ACTIVITY_LOG)
                found = team_organizations(self.lake, (project_id,), frame)[project_id] if frame is not None else set()
                with self._lock:
                    if len(self._organizations) > 10_000:
                        self._organizations.clear()
                    self._organizations[cache_key] = found
        with self._lock:
            self._computing.pop(cache_key, None)
        return found

    def may_read_project(self, key: ApiKey, project_id: int, organizations: set[str]) -> bool:
        """A project the key names, unless the lake ties it to other organizations only; for an admin
        key, any project of its organization."""
        if project_id in key.projects:
            return not organizations or key.organization_id in organizations
        return key.admin and key.organization_id in organizations

    def access(self, key: ApiKey, project_id: int | None, organization_id: str | None) -> Access:
        if project_id is None:
            if not (key.admin and organization_id == key.organization_id):
                raise ApiError(404, "not found")
            organization = organization_id
        else:
            organization = key.organization_id
        return Access(key=key, organization_id=organization, project_id=project_id, hidden=self.hidden,
                      rows=access_condition(organization, project_id) & self._visible)


def _project_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"must be a project id (an integer), not {text[:40]!r}", "project_id") from None
    if not 0 <= value <= INT64_MAX:
        raise ApiError(404, "not found")
    return value


def required_scope(request: Request) -> str:
    """The scope the matched route declares (``openapi_extra={SCOPE_EXTENSION: ...}``), else read."""
    extra = getattr(request.scope.get("route"), "openapi_extra", None) or {}
    return str(extra.get(SCOPE_EXTENSION, READ_SCOPE))


async def require_access(request: Request) -> Access:
    """The access dependency (``Depends(require_access)``) of every ``/api/`` route and every page.

    An ``/api/`` route reads its key from the ``Authorization`` header and its project or organization
    from the path. A page (``pipelines/web``) reads neither: ``app.state.page_keys`` resolves its session
    cookie or viewer token to the same :class:`ApiKey` and to the project (``?project=``) or
    organization it asks for; from there the checks are the same."""
    rule: AccessRule = request.app.state.access_rule
    if request.url.path.startswith("/api/"):
        key = rule.key(request, required_scope(request))
        path = {name: str(value) for name, value in request.path_params.items()}
    else:  # a page: never the Authorization header, the session or ?token= only
        key, path = await run_in_threadpool(request.app.state.page_keys.resolve, request)
        rule.limiter.check(key.key_id)
        if READ_SCOPE not in key.scopes:
            raise ApiError(403, f"this key does not have the scope {READ_SCOPE}")
    if "project_id" in path:
        project_id = _project_id(str(path["project_id"]))
        if project_id not in key.projects and not key.admin:
            raise ApiError(404, "not found")
        organizations = rule.cached_organizations(project_id)
        if organizations is None:  # a lookup may read the table: not on the event loop
            organizations = await run_in_threadpool(rule.organizations_of, project_id)
        if not rule.may_read_project(key, project_id, organizations):
            raise ApiError(404, "not found")
        return rule.access(key, project_id, None)
    if "org_id" in path:
        return rule.access(key, None, str(path["org_id"]))
    raise ApiError(404, "not found")
