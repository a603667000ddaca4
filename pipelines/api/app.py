"""The read API: PostHog's activity-log endpoints over the lake, with scoped keys (``activitylog serve``).

    GET /api/projects/{project_id}/activity_log/                    user, scope, scopes, item_id, ordering, page, page_size
    GET /api/projects/{project_id}/advanced_activity_logs/          the filter language + after, page_size, schema
    GET /api/organizations/{org_id}/advanced_activity_logs/         organization-admin keys only
    GET .../advanced_activity_logs/available_filters/               users, scopes, activities, clients, detail paths
    POST .../advanced_activity_logs/export                          202; the export runs in a process of its own
    GET .../advanced_activity_logs/exports/{id}  (and .../file)     status, manifest; the file

Every ``/api/`` route depends on one access rule (:func:`pipelines.api.deps.require_access`): the key, its
scopes, its organization and projects decide the rows a route may touch, and nothing else reads the
lake. A missing, wrong or revoked key answers 401 (with ``WWW-Authenticate``), a key without the
``activity_log:read`` scope 403, anything the key may not read 404 (existence does not leak). Bad
input answers 400 naming the parameter. Each key may make ``ACTIVITYLOG_API_RATE`` requests per minute
(default 600); beyond that, 429 with ``Retry-After``. No key is served the rows PostHog hides from
non-staff viewers (impersonated logins, user-account changes, ticket comments, …): the configuration
file's ``visibility:`` section, default PostHog's rules (:mod:`transforms.visibility`). Private
responses carry ``Cache-Control: no-store``; ``next`` links start with
``ACTIVITYLOG_PUBLIC_URL`` (or the address ``serve`` listens on), never with the request's ``Host``.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from pipelines.api.audit import build_auditor
from pipelines.api.deps import AccessRule, ApiError, RateLimiter
from pipelines.api.docs import mount_docs
from pipelines.api.exports import ExportRunner, ExportStore, exports_root
from pipelines.api.headers import PathHeaders
from pipelines.api.routes import activity_log, advanced, exports, publish
from pipelines.api.state import PUBLIC_URL_ENV, ServerState
from transforms.settings import Settings
from transforms.lake import Lake

ERROR_TYPES = {400: "validation_error", 401: "authentication_error", 403: "permission_denied",
               404: "invalid_request", 413: "validation_error", 422: "validation_error", 429: "throttled_error"}


def visibility_rules() -> tuple:
    """The rules of the configuration file's ``visibility:`` section (``ACTIVITYLOG_CONFIG``, default
    ./activitylog.yaml; without the file or the section, PostHog's). Only that section is read: the
    server needs no secret of the other sections."""
    from pipelines.config import VisibilityConfig
    from pipelines.config.loader import load_section

    return load_section("visibility", VisibilityConfig).effective()


NO_STORE = [(b"cache-control", b"no-store")]


def api_headers(path: str) -> list[tuple[bytes, bytes]]:
    """Keys' data (every ``/api/`` response) is never stored by a browser or a proxy."""
    return NO_STORE if path.startswith("/api/") else []


def create_app(lake_root: str | None = None, public_url: str | None = None) -> FastAPI:
    """The app. ``public_url``: what ``next`` and download links start with (default
    ``$ACTIVITYLOG_PUBLIC_URL``; without either, links are relative: ``/api/…``)."""
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await run_in_threadpool(app.state.auditor.close)  # read records still waiting are written

    app = FastAPI(title="activitylog", version="1.0",
                  description="PostHog-compatible activity-log endpoints over the activity_log Delta table.",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    mount_docs(app)
    store = Lake.at(lake_root or os.environ.get("ACTIVITYLOG_LAKE") or "./data/lake")
    limiter = RateLimiter(int(os.environ.get("ACTIVITYLOG_API_RATE", "600")))
    app.state.access_rule = AccessRule(store, limiter, visibility_rules())
    export_store = ExportStore(exports_root(store.root))
    runner = ExportRunner(export_store, store.root, slots=int(os.environ.get("ACTIVITYLOG_API_EXPORT_SLOTS", "2")),
                          quota=int(os.environ.get("ACTIVITYLOG_API_EXPORT_QUOTA", "10")))
    app.state.exports, app.state.export_runner = export_store, runner
    # The log's record of its own use (the audit: section), spooled into the landing area.
    app.state.auditor = build_auditor(Settings.from_env().landing)
    app.state.server = ServerState(
        lake=store, exports=export_store, runner=runner,
        base_url=(public_url or os.environ.get(PUBLIC_URL_ENV) or "").rstrip("/"),
        use_cache=os.environ.get("ACTIVITYLOG_API_CACHE", "1") != "0")

    app.add_middleware(PathHeaders, headers_for=api_headers)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        body = {"type": ERROR_TYPES.get(exc.status, "server_error"), "detail": exc.detail}
        if exc.attr:
            body["attr"] = exc.attr
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": [], "msg": "invalid request"}
        attr = str(first["loc"][-1]) if first.get("loc") else None
        return JSONResponse({"type": "validation_error", "attr": attr, "detail": first["msg"]}, status_code=400)

    for router in (activity_log.router, advanced.router, exports.router):
        app.include_router(router)
    publish.install(app)  # POST …/activity_log/events (scope activity_log:write)
    from pipelines.web import mount_web  # the page (/, /entry, /history, /embed/…): pipelines/web

    mount_web(app)
    return app
