"""The feed (``/`` and ``/embed/feed``) and one entry (``/entry/<id>``)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import polars as pl
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from pipelines.api import params
from pipelines.api.audit import record_read
from pipelines.api.deps import Access, ApiError, require_access
from pipelines.api.state import ServerState, server
from pipelines.web.diff import changes_of, parse_detail
from pipelines.web.pages import (
    FILTER_PARAMETERS, PAGE_ROWS, PRESET_LABELS, Page, page_filter, pickers, render, slot, view_row,
)
from transforms.filters import ActivityFilter, FilterError
from transforms.query import query, query_page

router = APIRouter(include_in_schema=False)


def _feed(state: ServerState, request: Request, access: Access) -> dict:
    activity_filter = page_filter(request, access)
    after = params.text(request.query_params.get("after"), "after") or None

    def work():
        try:
            page = query_page(state.lake, activity_filter, limit=PAGE_ROWS, after=after, where=access.rows)
        except FilterError as exc:
            raise ApiError(400, exc.problem.message, exc.problem.where) from None
        if page is None:
            return [], None
        return [view_row(r) for r in page.rows.iter_rows(named=True)], page.next_cursor
    return {"filter": activity_filter, "work": work}


async def _feed_page(request: Request, access: Access, state: ServerState, embed: bool) -> HTMLResponse:
    feed = _feed(state, request, access)
    rows, cursor = await slot(state, feed["work"])
    record_read(request, access, len(rows))
    page = Page(request, access, embed)
    more = page.url("/embed/feed" if embed else "/", page.filter_items(), after=cursor) if cursor else None
    if request.headers.get("hx-request") and request.query_params.get("after"):
        return render(request, "rows.html", {"page": page, "rows": rows, "more": more})
    choices = await slot(state, lambda: pickers(state, access, request.app.state.page_pickers)) if not embed else None
    query = request.query_params
    return render(request, "feed.html", {
        "page": page, "rows": rows, "more": more, "pickers": choices, "presets": PRESET_LABELS,
        "chosen": {name: query.getlist(name) for name in ("users", "scopes", "activities")},
        "q": {name: query.get(name, "") for name in FILTER_PARAMETERS},
        "projects": list(access.key.projects), "export_query": urlencode(page.context_items() + page.filter_items())})


@router.get("/", response_class=HTMLResponse)
async def feed(request: Request, access: Access = Depends(require_access), state: ServerState = Depends(server)):
    return await _feed_page(request, access, state, embed=False)


@router.get("/embed/feed", response_class=HTMLResponse)
async def embed_feed(request: Request, access: Access = Depends(require_access),
                     state: ServerState = Depends(server)):
    return await _feed_page(request, access, state, embed=True)


@router.get("/entry/{entry_id:path}", response_class=HTMLResponse)
async def entry(request: Request, entry_id: str, access: Access = Depends(require_access),
                state: ServerState = Depends(server)):
    params.text(entry_id, "entry_id")

    def work():
        frame = query(state.lake, ActivityFilter(), where=access.rows & (pl.col("id") == entry_id))
        return frame.head(1).collect().to_dicts() if frame is not None else []
    found = await slot(state, work)
    record_read(request, access, len(found))
    if not found:
        raise ApiError(404, "not found")
    row = found[0]
    detail = parse_detail(row.get("detail"))
    raw = json.dumps(detail, indent=2, ensure_ascii=False, sort_keys=True)
    page = Page(request, access)
    return render(request, "entry.html", {"page": page, "row": view_row(row), "changes": changes_of(detail),
                                          "raw": raw, "context": detail.get("context"),
                                          "trigger": detail.get("trigger")})
