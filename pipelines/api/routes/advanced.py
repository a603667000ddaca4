"""``advanced_activity_logs/`` of a project or an organization: the filter language with cursor pages
(native rows or OCSF; ``?page=N``: PostHog's page-number pages, with ``count``), and ``available_filters/``. On a project, ``include_organization_scoped=1`` adds
its organization's organization-level rows (PostHog's viewsets)."""

from __future__ import annotations

import polars as pl
from fastapi import APIRouter, Depends, Query, Request

from pipelines.api import params
from pipelines.api.deps import Access, ApiError, require_access
from pipelines.api.routes.activity_log import organization_scoped
from pipelines.api.routes.slashes import route
from pipelines.api.rows import native_row
from pipelines.api.schemas import ActivityPage, AvailableFilters
from pipelines.api.state import ServerState, server
from transforms.field_discovery import detail_fields
from transforms.filters import ActivityFilter, FilterError
from transforms.lake import ACTIVITY_LOG
from transforms.query import available_filters, query, query_page
from transforms.ocsf import ocsf_record

router = APIRouter(tags=["advanced_activity_logs"])


def include_values(request: Request) -> bool:
    """``?include_values=true``: OCSF records carry the before and after values of the changed fields
    (``entity.data``, ``entity_result.data``); without it only the field names (PostHog's opt-in)."""
    given = request.query_params.get("include_values")
    if given is None or given.lower() in ("false", "0", "no", ""):
        return False
    if given.lower() in ("true", "1", "yes"):
        return True
    raise ApiError(400, f"must be true or false, not {given[:40]!r}", "include_values")


def shaped(request: Request, rows: pl.DataFrame, schema: str) -> list[dict]:
    """The page's rows as the API's native rows or as OCSF records."""
    if schema == "ocsf":
        values = include_values(request)
        return [ocsf_record(r, include_values=values) for r in rows.iter_rows(named=True)]
    return [native_row(r) for r in rows.iter_rows(named=True)]


def page_number(request: Request) -> int | None:
    """``?page=N``: PostHog's page-number mode (``{count, next, previous, results}``); absent: cursor pages."""
    given = request.query_params.get("page")
    if given is None:
        return None
    try:
        number = int(given)
    except ValueError:
        raise ApiError(400, f"must be an integer, not {given[:40]!r}", "page") from None
    if not 1 <= number <= params.MAX_PAGE_NUMBER:
        raise ApiError(400, f"must be between 1 and {params.MAX_PAGE_NUMBER:,}", "page")
    return number


def numbered_page(request: Request, state: ServerState, access: Access, activity_filter: ActivityFilter, size: int,
                  schema: str, number: int) -> dict:
    try:
        frame = query(state.lake, activity_filter, where=access.rows,
                      ordering=request.query_params.get("ordering", "-created_at"))
    except FilterError as exc:  # "ordering: …"
        raise ApiError(400, exc.problem.message, exc.problem.where) from None
    if frame is None:
        return {"count": 0, "next": None, "previous": None, "results": []}
    count, rows = pl.collect_all([frame.select(pl.len()), frame.slice((number - 1) * size, size)])
    total = count.item()

    def link(page: int) -> str:
        kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("page", "after")]
        return state.link(request, kept + [("page", str(page))])

    return {"count": total, "next": link(number + 1) if number * size < total else None,
            "previous": link(number - 1) if number > 1 else None,
            "results": shaped(request, rows, schema)}


def cursor_page(request: Request, state: ServerState, access: Access, activity_filter: ActivityFilter, size: int,
                schema: str) -> dict:
    if schema not in ("native", "ocsf"):
        raise ApiError(400, "must be native or ocsf", "schema")
    include_values(request)  # a bad value is refused before the query runs
    number = page_number(request)
    if number is not None:
        if request.query_params.get("after"):
            raise ApiError(400, "page and after cannot be combined (page numbers or a cursor)", "page")
        return numbered_page(request, state, access, activity_filter, size, schema, number)
    after = params.text(request.query_params.get("after"), "after") or None
    try:
        page = query_page(state.lake, activity_filter, limit=size, after=after, where=access.rows,
                          ordering=request.query_params.get("ordering", "-created_at"))
    except FilterError as exc:  # "after: …" or "ordering: …"
        raise ApiError(400, exc.problem.message, exc.problem.where) from None
    rows, cursor = (page.rows, page.next_cursor) if page is not None else (pl.DataFrame(), None)
    results = shaped(request, rows, schema)
    next_url = None
    if cursor:
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "after"] + [("after", cursor)]
        next_url = state.link(request, kept)
    return {"results": results, "next": next_url, "previous": None}


@route(router, "GET", "/api/projects/{project_id}/advanced_activity_logs/", response_model=ActivityPage)
async def project_advanced(request: Request, project_id: int, page_size_: int = Query(100, alias="page_size"),
                           schema: str = "native", access: Access = Depends(require_access),
                           state: ServerState = Depends(server)):
    size = params.page_size(page_size_)
    fixed = {"team_ids": [access.project_id]}
    if organization_scoped(request):
        fixed["include_organization"] = True
    return await state.cached(request, access, lambda: cursor_page(
        request, state, access, params.advanced_filter(request, **fixed), size, schema))


@route(router, "GET", "/api/organizations/{org_id}/advanced_activity_logs/", response_model=ActivityPage)
async def organization_advanced(request: Request, org_id: str, page_size_: int = Query(100, alias="page_size"),
                                schema: str = "native", access: Access = Depends(require_access),
                                state: ServerState = Depends(server)):
    size = params.page_size(page_size_)
    return await state.cached(request, access, lambda: cursor_page(
        request, state, access, params.advanced_filter(request), size, schema))


def filters_body(state: ServerState, where: pl.Expr) -> dict:
    """What the rows matching ``where`` hold: the plain lists (users, scopes, activities, clients, detail
    paths, changed fields) and PostHog's shape of the same, ``static_filters`` ({value, label} entries;
    a user's value is its uuid) and ``detail_fields`` (discovered from a bounded sample of the details)."""
    body = available_filters(state.lake, where)
    frame = state.lake.scan(ACTIVITY_LOG)
    body["detail_fields"] = detail_fields(frame.filter(where)) if frame is not None else {}
    users = [{"value": u["uuid"], "label": f"{u['first_name'] or ''} {u['last_name'] or ''}".strip() or u["email"]}
             for u in body["users"]]
    body["static_filters"] = {"users": users, **{name: [{"value": v, "label": v} for v in body[name]]
                                                 for name in ("scopes", "activities", "clients")}}
    return body


@route(router, "GET", "/api/projects/{project_id}/advanced_activity_logs/available_filters/",
       response_model=AvailableFilters)
async def project_filters(request: Request, project_id: int, access: Access = Depends(require_access),
                          state: ServerState = Depends(server)):
    where = access.rows & (pl.col("team_id") == access.project_id).fill_null(False)
    return await state.cached(request, access, lambda: filters_body(state, where))


@route(router, "GET", "/api/organizations/{org_id}/advanced_activity_logs/available_filters/",
       response_model=AvailableFilters)
async def organization_filters(request: Request, org_id: str, access: Access = Depends(require_access),
                               state: ServerState = Depends(server)):
    return await state.cached(request, access, lambda: filters_body(state, access.rows))
