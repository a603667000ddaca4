"""The read API: PostHog's activity-log endpoints over the lake, with scoped keys (``activitylog serve``).

    GET /api/projects/{project_id}/activity_log/                    user, scope, scopes, item_id, ordering, page, page_size
    GET /api/projects/{project_id}/advanced_activity_logs/          the filter language + after, page_size, schema
    GET /api/organizations/{org_id}/advanced_activity_logs/         organization-admin keys only
    GET .../advanced_activity_logs/available_filters/               users, scopes, activities, clients, detail paths
    POST .../advanced_activity_logs/export                          202; the export runs in a process of its own
    GET .../advanced_activity_logs/exports/{id}  (and .../file)     status, manifest; the file

Every ``/api/`` route depends on one access rule (:func:`pipelines.deps.require_access`): the key, its
scopes, its organization and projects decide the rows a route may touch, and nothing else reads the
lake. A missing, wrong or revoked key answers 401 (with ``WWW-Authenticate``), a key without the
``activity_log:read`` scope 403, anything the key may not read 404 (existence does not leak). Bad
input answers 400 naming the parameter. Each key may make ``ACTIVITYLOG_API_RATE`` requests per minute
(default 600); beyond that, 429 with ``Retry-After``. Non-admin keys do not see impersonated
``logged_in``/``logged_out`` events (``ACTIVITYLOG_API_HIDE_IMPERSONATED_LOGINS=false`` shows them), as
in PostHog. Private responses carry ``Cache-Control: no-store``; ``next`` links start with
``ACTIVITYLOG_PUBLIC_URL`` (or the address ``serve`` listens on), never with the request's ``Host``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import polars as pl
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from pipelines.api_exports import ExportRunner, ExportStore, QuotaExceeded, exports_root
from pipelines.deps import Access, AccessRule, ApiError, RateLimiter, require_access
from pipelines.schemas import ActivityPage, AvailableFilters, ExportStarted, ExportStatus
from transforms import jsontext
from transforms.filters import ActivityFilter, FilterError
from transforms.lake import ACTIVITY_LOG, Lake
from transforms.query import available_filters, query, query_page
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
# Bounds on user input: each breach is a 400 naming the parameter, never a 500.
MAX_PAGE_NUMBER = 100_000       # activity_log/?page=
MAX_TEXT = 1_000                # search_text, user, scope, item_id … (characters of one value)
MAX_VALUES = 1_000              # values of one list parameter
MAX_JSON_DEPTH = 32             # nesting of detail_filters and of an export's body
MAX_PARAMETER_JSON = 65_536     # characters of detail_filters
MAX_BODY = 65_536               # bytes of an export's body
PUBLIC_URL_ENV = "ACTIVITYLOG_PUBLIC_URL"
FILE_RESPONSES = {200: {"description": "the export's file (CSV, XLSX or JSONL)", "content": {
    "text/csv": {}, "application/x-ndjson": {},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}}}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def json_depth(text: str) -> int:
    """How deeply a JSON text nests (strings skipped), without parsing it: a parser recurses."""
    depth = deepest = 0
    for char in _STRING.sub("", text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


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


def _text(value: str | None, name: str) -> str | None:
    if value is not None and len(value) > MAX_TEXT:
        raise ApiError(400, f"at most {MAX_TEXT:,} characters, not {len(value):,}", name)
    return value


def _list(values: list[str] | None, name: str = "") -> list[str]:
    """Repeated parameters and comma-separated ones alike (``scopes=A,B`` or ``scopes=A&scopes=B``)."""
    found = [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
    if len(found) > MAX_VALUES:
        raise ApiError(400, f"at most {MAX_VALUES:,} values, not {len(found):,}", name)
    for value in found:
        _text(value, name)
    return found


def _bool(value: str | None, name: str) -> bool | None:
    if value is None or value == "":
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ApiError(400, f"must be true or false, not {value[:40]!r}", name)


def _filter(data: dict[str, Any], attr_of: dict[str, str] | None = None, where: str = "") -> ActivityFilter:
    """``ActivityFilter.from_dict`` with every failure a 400: a date out of range (``9999-12-31T23:59:59-23:59``
    lies past year 9999 in UTC) names its parameter too."""
    attr_of = attr_of or {}
    for field, value in data.items():
        if field in ("start", "end"):
            try:
                ActivityFilter.from_dict({field: value}, where="")
            except (OverflowError, ValueError) as exc:
                if not isinstance(exc, FilterError):
                    raise ApiError(400, f"{str(value)[:60]!r} is out of range (years 1 to 9999, in UTC)",
                                   attr_of.get(field, field)) from None
    try:
        return ActivityFilter.from_dict(data, where=where)
    except FilterError as exc:
        message = str(exc).lstrip(": ")
        name = message.split(":", 1)[0].split("[", 1)[0]
        raise ApiError(400, message, attr_of.get(name, name)) from None
    except (OverflowError, ValueError, RecursionError, TypeError) as exc:
        raise ApiError(400, f"not a valid filter ({type(exc).__name__})", attr_of.get("", "filters")) from None


def create_app(lake_root: str | None = None, public_url: str | None = None) -> FastAPI:
    """The app. ``public_url``: what ``next`` and download links start with (default
    ``$ACTIVITYLOG_PUBLIC_URL``; without either, links are relative: ``/api/…``)."""
    app = FastAPI(title="activitylog", version="1.0",
                  description="PostHog-compatible activity-log endpoints over the activity_log Delta table.",
                  docs_url=None, redoc_url=None)
    _mount_docs(app)
    limiter = RateLimiter(int(os.environ.get("ACTIVITYLOG_API_RATE", "600")))
    hide_logins = os.environ.get("ACTIVITYLOG_API_HIDE_IMPERSONATED_LOGINS", "true").lower() != "false"
    use_cache = os.environ.get("ACTIVITYLOG_API_CACHE", "1") != "0"
    query_slots = threading.BoundedSemaphore(int(os.environ.get("ACTIVITYLOG_API_QUERY_SLOTS", "2")))
    base_url = (public_url or os.environ.get(PUBLIC_URL_ENV) or "").rstrip("/")

    store = Lake.at(lake_root or os.environ.get("ACTIVITYLOG_LAKE") or "./data/lake")
    app.state.access_rule = AccessRule(store, limiter, hide_logins)
    exports = ExportStore(exports_root(store.root))
    runner = ExportRunner(exports, store.root, slots=int(os.environ.get("ACTIVITYLOG_API_EXPORT_SLOTS", "2")),
                          quota=int(os.environ.get("ACTIVITYLOG_API_EXPORT_QUOTA", "10")))
    app.state.exports, app.state.export_runner = exports, runner
    seen_version = {"at": 0.0, "version": None}

    def lake() -> Lake:
        return store

    def log_version() -> int | None:
        """activity_log's version, looked up at most twice a second (a new version shows within 0.5 s)."""
        now = time.monotonic()
        if now - seen_version["at"] > 0.5:
            seen_version.update(at=now, version=store.version(ACTIVITY_LOG))
        return seen_version["version"]

    def link(request: Request, params: list[tuple[str, str]], path: str | None = None) -> str:
        """A link to this server: the configured base URL (never the request's Host header) + path."""
        query_text = urlencode(params)
        return base_url + (path or request.url.path) + (f"?{query_text}" if query_text else "")

    @app.middleware("http")
    async def _private(request: Request, call_next):
        response = await call_next(request)
        if request.url.path.startswith("/api/"):  # keys' data: never stored by a browser or a proxy
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        body = {"type": {400: "validation_error", 401: "authentication_error", 403: "permission_denied",
                         404: "invalid_request", 429: "throttled_error"}.get(exc.status, "server_error"),
                "detail": exc.detail}
        if exc.attr:
            body["attr"] = exc.attr
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": [], "msg": "invalid request"}
        attr = str(first["loc"][-1]) if first.get("loc") else None
        return JSONResponse({"type": "validation_error", "attr": attr, "detail": first["msg"]}, status_code=400)

    def advanced_filter(request: Request, **fixed: Any) -> ActivityFilter:
        params = request.query_params
        data: dict[str, Any] = {}
        attr_of = {"start": "start", "end": "end", "search": "search_text"}
        for name, field in (("start_date", "start"), ("end_date", "end"), ("search_text", "search")):
            if params.get(name):
                data[field] = _text(params[name], name)
        for name in ("users", "scopes", "activities", "item_ids", "clients", "ip_addresses"):
            values = _list(params.getlist(name), name)
            if values:
                data[name] = values
        for name in ("was_impersonated", "is_system", "include_organization"):
            value = _bool(params.get(name), name)
            if value is not None:
                data[name] = value
        if params.get("detail_filters"):
            text = params["detail_filters"]
            if len(text) > MAX_PARAMETER_JSON:
                raise ApiError(400, f"at most {MAX_PARAMETER_JSON:,} characters", "detail_filters")
            if json_depth(text) > MAX_JSON_DEPTH:
                raise ApiError(400, f"nested deeper than {MAX_JSON_DEPTH} levels", "detail_filters")
            try:
                detail = json.loads(text)
            except (ValueError, RecursionError):
                raise ApiError(400, "must be a JSON object of {path: {operation, value}}", "detail_filters") from None
            if not isinstance(detail, dict):
                raise ApiError(400, "must be a JSON object of {path: {operation, value}}", "detail_filters")
            if len(detail) > MAX_DETAIL_FILTERS:
                raise ApiError(400, f"at most {MAX_DETAIL_FILTERS} detail filters", "detail_filters")
            if any(len(str(path)) > MAX_PATH for path in detail):
                raise ApiError(400, f"a path is at most {MAX_PATH} characters", "detail_filters")
            data["detail_filters"] = detail
        data.update(fixed)
        return _filter(data, {**attr_of, "": "detail_filters"})

    def page_size(value: int) -> int:
        if value < 1 or value > MAX_PAGE:
            raise ApiError(400, f"must be between 1 and {MAX_PAGE}", "page_size")
        return value

    # Pages of one snapshot never change: cache them per activity_log version (dashboards and SIEM
    # pollers repeat the same queries). Access was checked before the lookup; the cache key holds
    # the path, the query and the access's visibility (organization, project, hidden logins), never
    # the Host header.
    page_cache: OrderedDict[tuple, bytes] = OrderedDict()
    cache_lock = threading.Lock()

    async def cached(request: Request, access: Access, compute) -> Response:
        """The page as JSON bytes (serialised once, with the standard library, not per request). A hit is
        answered on the event loop; a miss parses the filter and computes in the thread pool."""
        cache_key = (request.url.path, request.url.query, access.visibility, log_version())
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

    def _cursor_page(request: Request, access: Access, activity_filter: ActivityFilter, size: int,
                     schema: str) -> dict:
        if schema not in ("native", "ocsf"):
            raise ApiError(400, "must be native or ocsf", "schema")
        after = _text(request.query_params.get("after"), "after") or None
        try:
            page = query_page(lake(), activity_filter, limit=size, after=after, where=access.rows)
        except FilterError as exc:
            raise ApiError(400, str(exc).split(": ", 1)[-1], "after") from None
        rows, cursor = (page.rows, page.next_cursor) if page is not None else (pl.DataFrame(), None)
        results = [ocsf_record(r) if schema == "ocsf" else _row(r) for r in rows.iter_rows(named=True)]
        next_url = None
        if cursor:
            params = [(k, v) for k, v in request.query_params.multi_items() if k != "after"] + [("after", cursor)]
            next_url = link(request, params)
        return {"results": results, "next": next_url, "previous": None}

    access_dependency = Depends(require_access)

    @app.get("/api/projects/{project_id}/activity_log/", response_model=ActivityPage)
    async def activity_log(request: Request, project_id: int, user: str | None = None, scope: str | None = None,
                           scopes: list[str] | None = Query(default=None), item_id: str | None = None,
                           ordering: str = "-created_at", page: int = 1,
                           page_size_: int = Query(100, alias="page_size"), access: Access = access_dependency):
        if ordering not in ("-created_at", "created_at"):
            raise ApiError(400, "must be -created_at or created_at", "ordering")
        if page < 1 or page > MAX_PAGE_NUMBER:
            raise ApiError(400, f"must be between 1 and {MAX_PAGE_NUMBER:,}", "page")
        size = page_size(page_size_)
        data: dict[str, Any] = {"team_ids": [access.project_id]}
        wanted_scopes = _list(scopes, "scopes") + ([_text(scope, "scope")] if scope else [])
        if wanted_scopes:
            data["scopes"] = wanted_scopes
        if user:
            data["users"] = [_text(user, "user")]
        if item_id:
            data["item_ids"] = [_text(item_id, "item_id")]
        activity_filter = _filter(data, {"users": "user", "item_ids": "item_id"})

        def compute() -> dict:
            frame = query(lake(), activity_filter, where=access.rows)
            if frame is None:
                return {"results": [], "next": None, "previous": None}
            if ordering == "created_at":
                frame = frame.sort(["created_at", "id"])
            rows = frame.slice((page - 1) * size, size + 1).collect()
            more = rows.height > size

            def page_url(number: int) -> str:
                params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"] + [("page", str(number))]
                return link(request, params)

            return {"results": [_row(r) for r in rows.head(size).iter_rows(named=True)],
                    "next": page_url(page + 1) if more else None,
                    "previous": page_url(page - 1) if page > 1 else None}

        return await cached(request, access, compute)

    @app.get("/api/projects/{project_id}/advanced_activity_logs/", response_model=ActivityPage)
    async def project_advanced(request: Request, project_id: int, page_size_: int = Query(100, alias="page_size"),
                               schema: str = "native", access: Access = access_dependency):
        size = page_size(page_size_)
        return await cached(request, access, lambda: _cursor_page(
            request, access, advanced_filter(request, team_ids=[access.project_id]), size, schema))

    @app.get("/api/organizations/{org_id}/advanced_activity_logs/", response_model=ActivityPage)
    async def organization_advanced(request: Request, org_id: str, page_size_: int = Query(100, alias="page_size"),
                                    schema: str = "native", access: Access = access_dependency):
        size = page_size(page_size_)
        return await cached(request, access, lambda: _cursor_page(request, access, advanced_filter(request), size,
                                                                  schema))

    @app.get("/api/projects/{project_id}/advanced_activity_logs/available_filters/", response_model=AvailableFilters)
    def project_filters(project_id: int, access: Access = access_dependency):
        return available_filters(lake(), access.rows & (pl.col("team_id") == access.project_id).fill_null(False))

    @app.get("/api/organizations/{org_id}/advanced_activity_logs/available_filters/",
             response_model=AvailableFilters)
    def organization_filters(org_id: str, access: Access = access_dependency):
        return available_filters(lake(), access.rows)

    # -- exports: recorded, then run by export_job in a process of its own (never in this one) --------

    async def start_export(request: Request, access: Access) -> JSONResponse:
        body_bytes = await request.body()
        if len(body_bytes) > MAX_BODY:
            raise ApiError(400, f"the body is at most {MAX_BODY:,} bytes, not {len(body_bytes):,}", "body")
        try:
            text = body_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "the body must be UTF-8 JSON: {format: csv|xlsx|jsonl, filters: {...}}", "body") from None
        if json_depth(text) > MAX_JSON_DEPTH:
            raise ApiError(400, f"the body is nested deeper than {MAX_JSON_DEPTH} levels", "body")
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            raise ApiError(400, "the body must be JSON: {format: csv|xlsx|jsonl, filters: {...}}", "body") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object: {format: csv|xlsx|jsonl, filters: {...}}", "body")
        export_format = body.get("format", "csv")
        if export_format not in ("csv", "xlsx", "jsonl"):
            raise ApiError(400, "must be csv, xlsx or jsonl", "format")
        filters = body.get("filters") or {}
        if not isinstance(filters, dict):
            raise ApiError(400, "must be an object in the filter language", "filters")
        filters = {k: v for k, v in filters.items() if k not in ("team_ids", "include_organization")}
        if not access.sees_hidden_logins:
            filters["was_impersonated"] = False  # the rows this key may not see never reach its file
        forced = {"team_ids": [access.project_id]} if access.project_id is not None else {}
        try:
            activity_filter = _filter({**filters, **forced}, {"": "filters"})
        except ApiError as exc:
            raise ApiError(400, exc.detail, "filters") from None
        export_id = uuid.uuid4().hex
        record = {"id": export_id, "status": "queued", "format": export_format,
                  "created_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                  "key_id": access.key.key_id, "organization_id": access.organization_id,
                  "project_id": access.project_id, "scope": access.scope_tag,
                  "sees_hidden_logins": access.sees_hidden_logins, "access": access.export_access(),
                  "filter": activity_filter.to_dict(), "run_id": str(uuid.uuid4())}
        await run_in_threadpool(exports.create, record)  # recorded before the 202: status never 404s
        try:
            runner.submit(export_id, access.key.key_id)
        except QuotaExceeded as exc:
            await run_in_threadpool(exports.discard, export_id)  # never queued: no record stays behind
            raise ApiError(429, str(exc), headers={"Retry-After": "30"}) from None
        return JSONResponse({"id": export_id, "status": "queued", "format": export_format}, status_code=202)

    def export_record(access: Access, export_id: str) -> dict:
        """The export, if this request's access is the one it was made with: the same project or
        organization, the same organization of the key, the same visibility of impersonated logins."""
        record = exports.status(export_id)
        if (record is None or record.get("scope") != access.scope_tag
                or record.get("organization_id") != access.organization_id
                or record.get("sees_hidden_logins") != access.sees_hidden_logins):
            raise ApiError(404, "not found")
        return record

    def export_manifest(export_id: str) -> dict | None:
        try:
            return json.loads((exports.directory(export_id) / "export.manifest.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def export_status(request: Request, access: Access, export_id: str) -> dict:
        record = export_record(access, export_id)
        body: dict[str, Any] = {"id": export_id, "status": record["status"], "run_id": record.get("run_id"),
                                "format": record["format"], "created_at": record["created_at"]}
        if record.get("error"):
            body["error"] = record["error"]
        if record["status"] == "succeeded":
            manifest = export_manifest(export_id)
            if manifest is not None:
                # Where the server keeps its lake, and the integrity digests (whole days, every
                # tenant's events counted), are the operator's: not in the answer.
                manifest = {k: v for k, v in manifest.items() if k not in ("lake", "integrity")}
            body["manifest"] = manifest
            body["file"] = link(request, [], path=request.url.path.rstrip("/") + "/file")
        return body

    def export_file(access: Access, export_id: str) -> Response:
        record = export_record(access, export_id)
        manifest = export_manifest(export_id) if record["status"] == "succeeded" else None
        if manifest is None:
            raise ApiError(404, "not found (the export is not finished)")
        name = Path(manifest["files"][0]["path"]).name
        media = {"csv": "text/csv", "jsonl": "application/x-ndjson",
                 "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}[manifest["format"]]
        return FileResponse(exports.directory(export_id) / name, media_type=media, filename=name)

    @app.post("/api/projects/{project_id}/advanced_activity_logs/export", status_code=202,
              response_model=ExportStarted)
    async def project_export(request: Request, project_id: int, access: Access = access_dependency):
        return await start_export(request, access)

    @app.post("/api/organizations/{org_id}/advanced_activity_logs/export", status_code=202,
              response_model=ExportStarted)
    async def organization_export(request: Request, org_id: str, access: Access = access_dependency):
        return await start_export(request, access)

    @app.get("/api/projects/{project_id}/advanced_activity_logs/exports/{export_id}", response_model=ExportStatus,
             response_model_exclude_unset=True)
    def project_export_status(request: Request, project_id: int, export_id: str, access: Access = access_dependency):
        return export_status(request, access, export_id)

    @app.get("/api/projects/{project_id}/advanced_activity_logs/exports/{export_id}/file",
             response_class=FileResponse, responses=FILE_RESPONSES)
    def project_export_file(project_id: int, export_id: str, access: Access = access_dependency):
        return export_file(access, export_id)

    @app.get("/api/organizations/{org_id}/advanced_activity_logs/exports/{export_id}", response_model=ExportStatus,
             response_model_exclude_unset=True)
    def organization_export_status(request: Request, org_id: str, export_id: str,
                                   access: Access = access_dependency):
        return export_status(request, access, export_id)

    @app.get("/api/organizations/{org_id}/advanced_activity_logs/exports/{export_id}/file",
             response_class=FileResponse, responses=FILE_RESPONSES)
    def organization_export_file(org_id: str, export_id: str, access: Access = access_dependency):
        return export_file(access, export_id)

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


