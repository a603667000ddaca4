"""The read API: PostHog's activity-log endpoints over the lake, with scoped keys (``activitylog serve``).

    GET /api/projects/{project_id}/activity_log/                    user, scope, scopes, item_id, ordering, page, page_size
    GET /api/projects/{project_id}/advanced_activity_logs/          the filter language + after, page_size, schema
    GET /api/organizations/{org_id}/advanced_activity_logs/         organization-admin keys only
    GET .../advanced_activity_logs/available_filters/               users, scopes, activities, clients, detail paths

Keys (``Authorization: Bearer alk_…``, see :mod:`transforms.keys`) read their organization's projects they
name (admin keys: all of them, and the organization endpoint). Anything else answers 404, so existence
does not leak; a missing, wrong or revoked key answers 401. Bad input answers 400 naming the parameter.
Each key may make ``ACTIVITYLOG_API_RATE`` requests per minute (default 600); beyond that, 429 with
``Retry-After``. Non-admin keys do not see impersonated ``logged_in``/``logged_out`` events
(``ACTIVITYLOG_API_HIDE_IMPERSONATED_LOGINS=false`` shows them), as in PostHog.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import OrderedDict, defaultdict, deque
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import polars as pl
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from transforms import jsontext
from transforms.filters import ActivityFilter, FilterError
from transforms.keys import ApiKey, authenticate
from transforms.lake import ACTIVITY_LOG, Lake
from transforms.query import available_filters, query, query_page, team_organizations
from transforms.streams import ocsf_record

MAX_PAGE = 1000
# Swagger UI and ReDoc are served from the package (pipelines/static/, see its README.md), never from a
# CDN: the docs work on a machine without internet access.
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/static"
# The docs pages may load from their own server only: ReDoc 2 shows a logo from cdn.redoc.ly in its
# menu, which this blocks before any request (the image hides itself when it cannot load).
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
            "frame-ancestors 'self'")
MAX_DETAIL_FILTERS = 100
MAX_PATH = 500


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


def _row(row: dict[str, Any]) -> dict[str, Any]:
    detail = jsontext.embed(row.get("detail"))  # the exact JSON text, placed as is by jsontext.encode
    user = None
    if row.get("actor_uuid") or row.get("actor_email"):
        user = {"first_name": row.get("actor_first_name"), "last_name": row.get("actor_last_name"),
                "email": row.get("actor_email"), "uuid": row.get("actor_uuid"), "id": row.get("actor_id")}
    return {"id": row["id"], "user": user, "activity": row["activity"], "scope": row["scope"],
            "item_id": row.get("item_id"), "detail": detail,
            "created_at": row["created_at"].isoformat().replace("+00:00", "Z"), "is_system": row.get("is_system"),
            "was_impersonated": row.get("was_impersonated"), "organization_id": row.get("organization_id"),
            "project_id": row.get("team_id"), "summary": row.get("summary")}


def _list(values: list[str] | None) -> list[str]:
    """Repeated parameters and comma-separated ones alike (``scopes=A,B`` or ``scopes=A&scopes=B``)."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _bool(value: str | None, name: str) -> bool | None:
    if value is None or value == "":
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ApiError(400, f"must be true or false, not {value!r}", name)


def create_app(lake_root: str | None = None) -> FastAPI:
    app = FastAPI(title="activitylog", version="1.0",
                  description="PostHog-compatible activity-log endpoints over the activity_log Delta table.",
                  docs_url=None, redoc_url=None)
    _mount_docs(app)
    limiter = RateLimiter(int(os.environ.get("ACTIVITYLOG_API_RATE", "600")))
    hide_logins = os.environ.get("ACTIVITYLOG_API_HIDE_IMPERSONATED_LOGINS", "true").lower() != "false"
    use_cache = os.environ.get("ACTIVITYLOG_API_CACHE", "1") != "0"
    query_slots = threading.BoundedSemaphore(int(os.environ.get("ACTIVITYLOG_API_QUERY_SLOTS", "2")))

    store = Lake.at(lake_root or os.environ.get("ACTIVITYLOG_LAKE") or "./data/lake")
    seen_version = {"at": 0.0, "version": None}

    def lake() -> Lake:
        return store

    def log_version() -> int | None:
        """activity_log's version, looked up at most twice a second (a new version shows within 0.5 s)."""
        now = time.monotonic()
        if now - seen_version["at"] > 0.5:
            seen_version.update(at=now, version=store.version(ACTIVITY_LOG))
        return seen_version["version"]

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        body = {"type": {400: "validation_error", 401: "authentication_error", 404: "invalid_request",
                         429: "throttled_error"}.get(exc.status, "server_error"), "detail": exc.detail}
        if exc.attr:
            body["attr"] = exc.attr
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": [], "msg": "invalid request"}
        attr = str(first["loc"][-1]) if first.get("loc") else None
        return JSONResponse({"type": "validation_error", "attr": attr, "detail": first["msg"]}, status_code=400)

    def key_for(request: Request) -> ApiKey:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        key = authenticate(lake(), token)
        if key is None:
            raise ApiError(401, "a valid API key is required (Authorization: Bearer alk_…)")
        limiter.check(key.key_id)
        return key

    project_organizations: dict[tuple[int | None, int], set[str]] = {}  # (log version, project) → orgs

    def organizations_of(project_id: int) -> set[str]:
        """The organizations a project belongs to (reference data + its events), once per table version."""
        store = lake()
        version = store.version(ACTIVITY_LOG)
        cache_key = (version, project_id)
        if cache_key not in project_organizations:
            if len(project_organizations) > 10_000:
                project_organizations.clear()
            frame = store.scan(ACTIVITY_LOG)
            project_organizations[cache_key] = (team_organizations(store, (project_id,), frame)[project_id]
                                                if frame is not None else set())
        return project_organizations[cache_key]

    def project_or_404(key: ApiKey, project_id: int) -> set[str]:
        # A key that names the project needs no lookup; an admin key's organization must own it.
        if project_id in key.projects and "activity_log:read" in key.scopes:
            return set()
        organizations = organizations_of(project_id) if key.admin else set()
        if not key.can_read_project(project_id, organizations):
            raise ApiError(404, "not found")
        return organizations

    def visibility(key: ApiKey) -> pl.Expr:
        if key.admin or not hide_logins:
            return pl.lit(True)
        return ~(pl.col("was_impersonated").fill_null(False) & pl.col("activity").is_in(["logged_in", "logged_out"]))

    def advanced_filter(request: Request, **fixed: Any) -> ActivityFilter:
        try:
            return ActivityFilter.from_query(request.query_params.multi_items(), **fixed)
        except FilterError as exc:
            message = str(exc).lstrip(": ")
            raise ApiError(400, message, message.split(":", 1)[0].split("[", 1)[0]) from None

    def page_size(value: int) -> int:
        if value < 1 or value > MAX_PAGE:
            raise ApiError(400, f"must be between 1 and {MAX_PAGE}", "page_size")
        return value

    # Pages of one snapshot never change: cache them per activity_log version (dashboards and SIEM
    # pollers repeat the same queries). The key decides nothing here beyond what the URL and the
    # key's visibility class say, and access was checked before the lookup.
    page_cache: OrderedDict[tuple, bytes] = OrderedDict()
    cache_lock = threading.Lock()

    async def cached(request: Request, key: ApiKey, compute) -> Response:
        """The page as JSON bytes (serialised once, with the standard library, not per request). A hit is
        answered on the event loop; a miss parses the filter and computes in the thread pool."""
        cache_key = (str(request.url), key.admin or not hide_logins, log_version())
        with cache_lock:
            body = page_cache.get(cache_key) if use_cache else None
            if body is not None:
                page_cache.move_to_end(cache_key)
        if body is None:
            def run() -> bytes:
                with query_slots:  # a few queries at a time: Polars already uses every core for each
                    return jsontext.encode(compute()).encode()

            body = await run_in_threadpool(run)
            with cache_lock:
                page_cache[cache_key] = body
                while len(page_cache) > 512:
                    page_cache.popitem(last=False)
        return Response(body, media_type="application/json")

    def _cursor_page(request: Request, key: ApiKey, activity_filter: ActivityFilter, size: int, schema: str,
                     extra: pl.Expr | None = None) -> dict:
        if schema not in ("native", "ocsf"):
            raise ApiError(400, "must be native or ocsf", "schema")
        try:
            condition = visibility(key) if extra is None else visibility(key) & extra
            page = query_page(lake(), activity_filter, limit=size, after=request.query_params.get("after") or None,
                              where=condition, ordering=request.query_params.get("ordering", "-created_at"))
        except FilterError as exc:
            raise ApiError(400, str(exc).split(": ", 1)[-1], str(exc).split(":", 1)[0]) from None
        rows, cursor = (page.rows, page.next_cursor) if page is not None else (pl.DataFrame(), None)
        results = [ocsf_record(r) if schema == "ocsf" else _row(r) for r in rows.iter_rows(named=True)]
        next_url = None
        if cursor:
            params = [(k, v) for k, v in request.query_params.multi_items() if k != "after"] + [("after", cursor)]
            next_url = str(request.url.replace(query=urlencode(params)))
        return {"results": results, "next": next_url, "previous": None}

    @app.get("/api/projects/{project_id}/activity_log/")
    async def activity_log(request: Request, project_id: int, user: str | None = None, scope: str | None = None,
                           scopes: list[str] | None = Query(default=None), item_id: str | None = None,
                           ordering: str = "-created_at", page: int = 1,
                           page_size_: int = Query(100, alias="page_size")):
        key = key_for(request)
        if project_id not in key.projects:
            await run_in_threadpool(project_or_404, key, project_id)
        if ordering not in ("-created_at", "created_at"):
            raise ApiError(400, "must be -created_at or created_at", "ordering")
        if page < 1:
            raise ApiError(400, "must be 1 or more", "page")
        size = page_size(page_size_)
        data: dict[str, Any] = {"team_ids": [project_id]}
        wanted_scopes = _list(scopes) + ([scope] if scope else [])
        if wanted_scopes:
            data["scopes"] = wanted_scopes
        if user:
            data["users"] = [user]
        if item_id:
            data["item_ids"] = [item_id]
        activity_filter = ActivityFilter.from_dict(data)

        def compute() -> dict:
            frame = query(lake(), activity_filter, where=visibility(key))
            if frame is None:
                return {"results": [], "next": None, "previous": None}
            if ordering == "created_at":
                frame = frame.sort(["created_at", "id"])
            rows = frame.slice((page - 1) * size, size + 1).collect()
            more = rows.height > size

            def page_url(number: int) -> str:
                params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"] + [("page", str(number))]
                return str(request.url.replace(query=urlencode(params)))

            return {"results": [_row(r) for r in rows.head(size).iter_rows(named=True)],
                    "next": page_url(page + 1) if more else None,
                    "previous": page_url(page - 1) if page > 1 else None}

        return await cached(request, key, compute)

    @app.get("/api/projects/{project_id}/advanced_activity_logs/")
    async def project_advanced(request: Request, project_id: int, page_size_: int = Query(100, alias="page_size"),
                               schema: str = "native"):
        key = key_for(request)
        if project_id not in key.projects:  # an admin key's project lookup may read the table: not on the loop
            await run_in_threadpool(project_or_404, key, project_id)
        size = page_size(page_size_)
        return await cached(request, key, lambda: _cursor_page(
            request, key, advanced_filter(request, team_ids=[project_id]), size, schema))

    @app.get("/api/organizations/{org_id}/advanced_activity_logs/")
    async def organization_advanced(request: Request, org_id: str, page_size_: int = Query(100, alias="page_size"),
                                    schema: str = "native"):
        key = key_for(request)
        if not key.can_read_organization(org_id):
            raise ApiError(404, "not found")
        size = page_size(page_size_)
        return await cached(request, key, lambda: _cursor_page(
            request, key, advanced_filter(request), size, schema,
            extra=(pl.col("organization_id") == org_id).fill_null(False)))

    def available(request: Request, condition: pl.Expr, key: ApiKey) -> dict:
        return available_filters(lake(), condition & visibility(key))

    @app.get("/api/projects/{project_id}/advanced_activity_logs/available_filters/")
    def project_filters(request: Request, project_id: int):
        key = key_for(request)
        project_or_404(key, project_id)
        return available(request, (pl.col("team_id") == project_id).fill_null(False), key)

    @app.get("/api/organizations/{org_id}/advanced_activity_logs/available_filters/")
    def organization_filters(request: Request, org_id: str):
        key = key_for(request)
        if not key.can_read_organization(org_id):
            raise ApiError(404, "not found")
        return available(request, (pl.col("organization_id") == org_id).fill_null(False), key)

    # -- exports: a Dagster run of export_job per request (visible in the UI) ----------------------

    def export_scope(key: ApiKey, project_id: int | None, org_id: str | None) -> dict[str, Any]:
        if project_id is not None:
            project_or_404(key, project_id)
            return {"team_ids": [project_id]}
        if not key.can_read_organization(org_id):
            raise ApiError(404, "not found")
        return {}

    async def start_export(request: Request, key: ApiKey, forced: dict[str, Any], scope_tag: str) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "the body must be JSON: {format: csv|xlsx, filters: {...}}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object: {format: csv|xlsx, filters: {...}}")
        export_format = body.get("format", "csv")
        if export_format not in ("csv", "xlsx", "jsonl"):
            raise ApiError(400, "must be csv, xlsx or jsonl", "format")
        filters = body.get("filters") or {}
        if not isinstance(filters, dict):
            raise ApiError(400, "must be an object in the filter language", "filters")
        filters = {k: v for k, v in filters.items() if k not in ("team_ids", "include_organization")}
        if not key.admin and hide_logins:
            filters["was_impersonated"] = False  # the rows this key may not see never reach its file
        try:
            activity_filter = ActivityFilter.from_dict({**filters, **forced}, where="")
        except FilterError as exc:
            message = str(exc).lstrip(": ")
            raise ApiError(400, message, "filters") from None
        export_id = uuid.uuid4().hex
        out = f"{lake().root}/exports/api/{export_id}/"
        start_export_run(export_id, activity_filter, export_format, out, {"activitylog/export_id": export_id,
                                                                          "activitylog/export_scope": scope_tag})
        return JSONResponse({"id": export_id, "status": "queued", "format": export_format}, status_code=202)

    def export_status(key: ApiKey, export_id: str, scope_tag: str, request: Request) -> dict:
        run = find_export_run(export_id)
        if run is None or run.tags.get("activitylog/export_scope") != scope_tag:
            raise ApiError(404, "not found")
        status = {"QUEUED": "queued", "NOT_STARTED": "queued", "STARTING": "running", "STARTED": "running",
                  "SUCCESS": "succeeded", "FAILURE": "failed", "CANCELED": "failed"}.get(run.status.value, "running")
        body: dict[str, Any] = {"id": export_id, "status": status, "run_id": run.run_id}
        if status == "succeeded":
            manifest = _manifest(f"{lake().root}/exports/api/{export_id}/")
            body["manifest"] = manifest
            body["file"] = str(request.url).rstrip("/") + "/file"
        return body

    @app.post("/api/projects/{project_id}/advanced_activity_logs/export", status_code=202)
    async def project_export(request: Request, project_id: int):
        key = key_for(request)
        return await start_export(request, key, export_scope(key, project_id, None), f"project:{project_id}")

    @app.post("/api/organizations/{org_id}/advanced_activity_logs/export", status_code=202)
    async def organization_export(request: Request, org_id: str):
        key = key_for(request)
        export_scope(key, None, org_id)
        return await start_export(request, key, {}, f"organization:{org_id}")

    @app.get("/api/projects/{project_id}/advanced_activity_logs/exports/{export_id}")
    def project_export_status(request: Request, project_id: int, export_id: str):
        key = key_for(request)
        export_scope(key, project_id, None)
        return export_status(key, export_id, f"project:{project_id}", request)

    @app.get("/api/projects/{project_id}/advanced_activity_logs/exports/{export_id}/file")
    def project_export_file(request: Request, project_id: int, export_id: str):
        key = key_for(request)
        export_scope(key, project_id, None)
        if export_status(key, export_id, f"project:{project_id}", request)["status"] != "succeeded":
            raise ApiError(404, "not found (the export is not finished)")
        return _file_response(f"{lake().root}/exports/api/{export_id}/")

    @app.get("/api/organizations/{org_id}/advanced_activity_logs/exports/{export_id}")
    def organization_export_status(request: Request, org_id: str, export_id: str):
        key = key_for(request)
        export_scope(key, None, org_id)
        return export_status(key, export_id, f"organization:{org_id}", request)

    return app


def _mount_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` with their scripts, styles and icon from ``/static``."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
    oauth2_redirect = "/docs/oauth2-redirect"

    def offline(page: HTMLResponse) -> HTMLResponse:
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return offline(get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} - Swagger UI", oauth2_redirect_url=oauth2_redirect,
            swagger_js_url=f"{STATIC_URL}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/swagger-ui/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None}))  # no badge fetched from validator.swagger.io

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return offline(get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} - ReDoc",
                                      redoc_js_url=f"{STATIC_URL}/redoc/redoc.standalone.js",
                                      redoc_favicon_url=f"{STATIC_URL}/swagger-ui/favicon-32x32.png",
                                      with_google_fonts=False))


def start_export_run(export_id: str, activity_filter: ActivityFilter, export_format: str, out: str,
                     tags: dict[str, str]) -> None:
    """Run export_job in a background thread, recorded in DAGSTER_HOME like every other run."""
    def run() -> None:
        from pipelines.definitions import build_definitions
        from pipelines.runner import instance

        defs = build_definitions()
        defs.resolve_job_def("export_job").execute_in_process(
            run_config={"ops": {"export": {"config": {"format": export_format, "out": out, "name": "export",
                                                      "filter": activity_filter.to_dict()}}}},
            instance=instance(), tags=tags, raise_on_error=False)

    threading.Thread(target=run, name=f"export-{export_id}", daemon=True).start()


def find_export_run(export_id: str):
    import dagster as dg

    from pipelines.runner import instance

    runs = instance().get_runs(filters=dg.RunsFilter(tags={"activitylog/export_id": export_id}), limit=1)
    return runs[0] if runs else None


def _manifest(directory: str) -> dict | None:
    from destinations.exports import _read_bytes

    try:
        return json.loads(b"".join(_read_bytes(directory + "export.manifest.json")))
    except Exception:  # noqa: BLE001 - not written yet
        return None


def _file_response(directory: str):
    from fastapi.responses import Response

    from destinations.exports import _read_bytes

    manifest = _manifest(directory)
    name = manifest["files"][0]["path"]
    media = {"csv": "text/csv", "jsonl": "application/x-ndjson",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}[manifest["format"]]
    return Response(b"".join(_read_bytes(directory + name)), media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
