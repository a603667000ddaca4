"""Exports started from the page's filters: the API's export run, its progress and its file."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from fastapi.responses import RedirectResponse

from pipelines.api import params
from pipelines.api.deps import Access, ApiError, require_access
from pipelines.api.routes.exports import export_file, export_record, launch_export
from pipelines.api.state import ServerState, server
from pipelines.web.pages import Page, page_filter, read_form, render, session_only
from pipelines.web.sessions import csrf_matches

router = APIRouter(include_in_schema=False)


@router.post("/export", response_class=HTMLResponse)
async def export_start(request: Request, access: Access = Depends(require_access),
                       state: ServerState = Depends(server)):
    identity = session_only(request)
    form = await read_form(request)
    if not csrf_matches(identity.session.csrf, form.get("csrf")):
        raise ApiError(403, "the form's CSRF token does not match: reload the page and try again")
    export_format = form.get("format", "csv")
    if export_format not in ("csv", "xlsx"):
        raise ApiError(400, "must be csv or xlsx", "format")
    activity_filter = page_filter(request, access)
    filters = {k: v for k, v in activity_filter.to_dict().items() if k != "team_ids"}
    started = await launch_export(request, state, access, export_format, filters)
    export_id = json.loads(started.body)["id"]
    page = Page(request, access)
    if request.headers.get("hx-request"):
        return render(request, "export_state.html", {"page": page, "export": {
            "id": export_id, "status": "queued", "format": export_format}})
    return RedirectResponse(page.url(f"/export/{export_id}"), status_code=303)


def _export_view(state: ServerState, access: Access, export_id: str) -> dict:
    record = export_record(state, access, export_id)
    return {"id": export_id, "status": record["status"], "format": record["format"], "error": record.get("error")}


@router.get("/export/{export_id}", response_class=HTMLResponse)
async def export_progress(request: Request, export_id: str, access: Access = Depends(require_access),
                          state: ServerState = Depends(server)):
    session_only(request)
    view = await run_in_threadpool(_export_view, state, access, params.text(export_id, "export_id"))
    name = "export_state.html" if request.headers.get("hx-request") else "export.html"
    return render(request, name, {"page": Page(request, access), "export": view})


@router.get("/export/{export_id}/file")
def export_download(request: Request, export_id: str, access: Access = Depends(require_access),
                    state: ServerState = Depends(server)):
    session_only(request)
    return export_file(request, state, access, params.text(export_id, "export_id"))
