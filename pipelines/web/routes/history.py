"""A resource's history (``/history`` and ``/embed/history``): its entries with their changes as diffs."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from pipelines.api import params
from pipelines.api.audit import record_read
from pipelines.api.deps import Access, ApiError, require_access
from pipelines.api.state import ServerState, server
from pipelines.web.diff import describe, show
from pipelines.web.pages import PAGE_ROWS, Page, render, slot, view_row
from transforms.filters import FilterError, after_cursor, encode_cursor
from transforms.history import item_history

router = APIRouter(include_in_schema=False)


def _history(state: ServerState, access: Access, scope: str, item_id: str, after: str | None) -> tuple[list, str | None]:
    found = item_history(state.lake, scope, item_id, team_id=access.project_id)
    if found is None:
        return [], None
    rows = found.rows.filter(access.rows)
    if after:
        try:
            rows = rows.filter(after_cursor(after))
        except FilterError as exc:
            raise ApiError(400, exc.problem.message, "after") from None
    more = rows.height > PAGE_ROWS
    rows = rows.head(PAGE_ROWS)
    out = []
    for row in rows.iter_rows(named=True):
        view = view_row(row)
        view["changes"] = []
        for change in row.get("changes") or []:
            before, after_value = _json(change.get("before")), _json(change.get("after"))
            view["changes"].append({"field": change.get("field") or "", "action": change.get("action") or "",
                                    "diff": describe(before, after_value, masked=bool(change.get("masked"))),
                                    "before": None if before is None else show(before),
                                    "after": None if after_value is None else show(after_value)})
        out.append(view)
    cursor = None
    if more and out:
        last = rows.row(rows.height - 1, named=True)
        cursor = encode_cursor(last["created_at"], last["id"])
    return out, cursor


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _history_page(request: Request, access: Access, state: ServerState, embed: bool) -> HTMLResponse:
    scope = params.text(request.query_params.get("scope"), "scope") or ""
    item_id = params.text(request.query_params.get("item_id"), "item_id") or ""
    if not scope or not item_id:
        raise ApiError(400, "a history needs a scope and an item_id", "scope" if not scope else "item_id")
    after = params.text(request.query_params.get("after"), "after") or None
    rows, cursor = await slot(state, lambda: _history(state, access, scope, item_id, after))
    record_read(request, access, len(rows))
    page = Page(request, access, embed)
    path = "/embed/history" if embed else "/history"
    more = page.url(path, [("scope", scope), ("item_id", item_id)], after=cursor) if cursor else None
    return render(request, "history.html", {"page": page, "rows": rows, "more": more, "scope": scope,
                                            "item_id": item_id})


@router.get("/history", response_class=HTMLResponse)
async def history(request: Request, access: Access = Depends(require_access), state: ServerState = Depends(server)):
    return await _history_page(request, access, state, embed=False)


@router.get("/embed/history", response_class=HTMLResponse)
async def embed_history(request: Request, access: Access = Depends(require_access),
                        state: ServerState = Depends(server)):
    return await _history_page(request, access, state, embed=True)
