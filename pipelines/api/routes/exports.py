"""Exports of a project or an organization: ``POST …/export`` records the export (status ``queued``)
before its 202 and hands it to the runner, which runs ``export_job`` in a process of its own, never in
the server's; status and file answer only the access the export was made with."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response

from pipelines.api import params
from pipelines.api.audit import record_durably
from pipelines.api.deps import Access, ApiError, require_access
from pipelines.api.exports import QuotaExceeded
from pipelines.api.routes.slashes import route
from pipelines.api.schemas import ExportStarted, ExportStatus
from pipelines.api.state import ServerState, server
from transforms import jsontext
from transforms.filters import export_body

router = APIRouter(tags=["exports"])

FILE_RESPONSES = {200: {"description": "the export's file (CSV, XLSX or JSONL)", "content": {
    "text/csv": {}, "application/x-ndjson": {},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}}}
BODY_SHAPE = "{format: csv|xlsx|jsonl, filters: {...}}"


async def start_export(request: Request, state: ServerState, access: Access) -> JSONResponse:
    body_bytes = await request.body()
    if len(body_bytes) > params.MAX_BODY:
        raise ApiError(400, f"the body is at most {params.MAX_BODY:,} bytes, not {len(body_bytes):,}", "body")
    try:
        text = body_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, f"the body must be UTF-8 JSON: {BODY_SHAPE}", "body") from None
    if jsontext.depth(text) > params.MAX_JSON_DEPTH:
        raise ApiError(400, f"the body is nested deeper than {params.MAX_JSON_DEPTH} levels", "body")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise ApiError(400, f"the body must be JSON: {BODY_SHAPE}", "body") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object: {BODY_SHAPE}", "body")
    return await launch_export(request, state, access, body.get("format", "csv"), body.get("filters") or {})


async def launch_export(request: Request, state: ServerState, access: Access, export_format: object,
                        filters: object) -> JSONResponse:
    """Record an export of ``filters`` (the filter language) limited to ``access`` and hand it to the
    runner: what ``POST …/export`` and the page's export button both do."""
    if export_format not in ("csv", "xlsx", "jsonl"):
        raise ApiError(400, "must be csv, xlsx or jsonl", "format")
    if not isinstance(filters, dict):
        raise ApiError(400, "must be an object in the filter language", "filters")
    try:  # the access decides the projects; end_date is PostHog's (``end`` keeps the whole day)
        activity_filter = params.to_filter(export_body(filters, access.project_id), {"": "filters"})
    except ApiError as exc:
        raise ApiError(400, exc.detail, "filters") from None
    export_id = uuid.uuid4().hex
    record = {"id": export_id, "status": "queued", "format": export_format,
              "created_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
              "key_id": access.key.key_id, "organization_id": access.organization_id,
              "project_id": access.project_id, "scope": access.scope_tag,
              "visibility": access.visibility_tag, "access": access.export_access(),
              "filter": activity_filter.to_dict(), "run_id": str(uuid.uuid4())}
    try:
        state.runner.reserve(access.key.key_id)
    except QuotaExceeded as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": "30"}) from None
    try:
        await run_in_threadpool(state.exports.create, record)  # recorded before the 202: status never 404s
        # The log's own record of the export (audit.exports), durable before anything runs.
        await run_in_threadpool(record_durably, request, access, "exported", export_id,
                                {"export_id": export_id, "format": export_format, "filter": record["filter"]})
    except BaseException:
        state.runner.release(access.key.key_id)
        await run_in_threadpool(state.exports.discard, export_id)  # never queued: no record stays behind
        raise
    state.runner.enqueue(export_id, access.key.key_id)
    return JSONResponse({"id": export_id, "export_format": export_format, "status": "queued",
                         "format": export_format}, status_code=202)


def export_record(state: ServerState, access: Access, export_id: str) -> dict:
    """The export, if this request's access is the one it was made with: the same project or
    organization, the same organization of the key, the same visibility rules."""
    record = state.exports.status(export_id)
    if (record is None or record.get("scope") != access.scope_tag
            or record.get("organization_id") != access.organization_id
            or record.get("visibility") != access.visibility_tag):
        raise ApiError(404, "not found")
    return record


def export_manifest(state: ServerState, export_id: str) -> dict | None:
    try:
        return json.loads((state.exports.directory(export_id) / "export.manifest.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def export_status(request: Request, state: ServerState, access: Access, export_id: str) -> dict:
    record = export_record(state, access, export_id)
    body: dict[str, Any] = {"id": export_id, "status": record["status"], "run_id": record.get("run_id"),
                            "format": record["format"], "created_at": record["created_at"]}
    if record.get("error"):
        body["error"] = record["error"]
    if record["status"] == "succeeded":
        manifest = export_manifest(state, export_id)
        if manifest is not None:
            # Where the server keeps its lake, and the integrity digests (whole days, every tenant's
            # events counted), are the operator's: not in the answer.
            manifest = {k: v for k, v in manifest.items() if k not in ("lake", "integrity")}
        body["manifest"] = manifest
        body["file"] = state.link(request, [], path=request.url.path.rstrip("/") + "/file")
    return body


def export_file(request: Request, state: ServerState, access: Access, export_id: str) -> Response:
    record = export_record(state, access, export_id)
    manifest = export_manifest(state, export_id) if record["status"] == "succeeded" else None
    if manifest is None:
        raise ApiError(404, "not found (the export is not finished)")
    name = Path(manifest["files"][0]["path"]).name
    record_durably(request, access, "downloaded", export_id,
                   {"export_id": export_id, "format": manifest["format"], "rows": manifest.get("rows")})
    media = {"csv": "text/csv", "jsonl": "application/x-ndjson",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}[manifest["format"]]
    return FileResponse(state.exports.directory(export_id) / name, media_type=media, filename=name)


@route(router, "POST", "/api/projects/{project_id}/advanced_activity_logs/export", status_code=202,
             response_model=ExportStarted)
async def project_export(request: Request, project_id: int, access: Access = Depends(require_access),
                         state: ServerState = Depends(server)):
    return await start_export(request, state, access)


@route(router, "POST", "/api/organizations/{org_id}/advanced_activity_logs/export", status_code=202,
             response_model=ExportStarted)
async def organization_export(request: Request, org_id: str, access: Access = Depends(require_access),
                              state: ServerState = Depends(server)):
    return await start_export(request, state, access)


@router.get("/api/projects/{project_id}/advanced_activity_logs/exports/{export_id}", response_model=ExportStatus,
            response_model_exclude_unset=True)
def project_export_status(request: Request, project_id: int, export_id: str,
                          access: Access = Depends(require_access), state: ServerState = Depends(server)):
    return export_status(request, state, access, export_id)


@router.get("/api/projects/{project_id}/advanced_activity_logs/exports/{export_id}/file",
            response_class=FileResponse, responses=FILE_RESPONSES)
def project_export_file(request: Request, project_id: int, export_id: str, access: Access = Depends(require_access),
                        state: ServerState = Depends(server)):
    return export_file(request, state, access, export_id)


@router.get("/api/organizations/{org_id}/advanced_activity_logs/exports/{export_id}", response_model=ExportStatus,
            response_model_exclude_unset=True)
def organization_export_status(request: Request, org_id: str, export_id: str,
                               access: Access = Depends(require_access), state: ServerState = Depends(server)):
    return export_status(request, state, access, export_id)


@router.get("/api/organizations/{org_id}/advanced_activity_logs/exports/{export_id}/file",
            response_class=FileResponse, responses=FILE_RESPONSES)
def organization_export_file(request: Request, org_id: str, export_id: str,
                             access: Access = Depends(require_access), state: ServerState = Depends(server)):
    return export_file(request, state, access, export_id)
