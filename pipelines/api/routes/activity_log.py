"""``GET /api/projects/{project_id}/activity_log/``: PostHog's activity log of a project, page-numbered
(``include_organization_scoped=1``: with its organization's organization-level rows, as PostHog's
``receive_org_level_activity_logs`` team setting)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from pipelines.api import params
from pipelines.api.deps import Access, ApiError, require_access
from pipelines.api.routes.slashes import route
from pipelines.api.rows import native_row
from pipelines.api.schemas import ActivityPage
from pipelines.api.state import ServerState, server
from transforms.filters import FilterError, query_bool
from transforms.query import query

router = APIRouter(tags=["activity_log"])


def organization_scoped(request: Request) -> bool:
    """PostHog's ``include_organization_scoped`` (true/1/yes, false/0/no; else 400 naming it)."""
    try:
        return bool(query_bool(request.query_params.get("include_organization_scoped"), "include_organization_scoped"))
    except FilterError as exc:
        raise ApiError(400, exc.problem.message, "include_organization_scoped") from None


@route(router, "GET", "/api/projects/{project_id}/activity_log/", response_model=ActivityPage)
async def activity_log(request: Request, project_id: int, user: str | None = None, scope: str | None = None,
                       scopes: list[str] | None = Query(default=None), item_id: str | None = None,
                       ordering: str = "-created_at", page: int = 1,
                       page_size_: int = Query(100, alias="page_size"),
                       access: Access = Depends(require_access), state: ServerState = Depends(server)):
    if ordering not in ("-created_at", "created_at"):
        raise ApiError(400, "must be -created_at or created_at", "ordering")
    if page < 1 or page > params.MAX_PAGE_NUMBER:
        raise ApiError(400, f"must be between 1 and {params.MAX_PAGE_NUMBER:,}", "page")
    size = params.page_size(page_size_)
    data: dict[str, Any] = {"team_ids": [access.project_id]}
    if organization_scoped(request):
        data["include_organization"] = True
    wanted_scopes = params.values(scopes, "scopes") + ([params.text(scope, "scope")] if scope else [])
    if wanted_scopes:
        data["scopes"] = wanted_scopes
    if user:
        data["users"] = [params.text(user, "user")]
    if item_id:
        data["item_ids"] = [params.text(item_id, "item_id")]
    activity_filter = params.to_filter(data, {"users": "user", "item_ids": "item_id"})

    def compute() -> dict:
        frame = query(state.lake, activity_filter, where=access.rows)
        if frame is None:
            return {"results": [], "next": None, "previous": None}
        if ordering == "created_at":
            frame = frame.sort(["created_at", "id"])
        rows = frame.slice((page - 1) * size, size + 1).collect()
        more = rows.height > size

        def page_url(number: int) -> str:
            kept = [(k, v) for k, v in request.query_params.multi_items() if k != "page"] + [("page", str(number))]
            return state.link(request, kept)

        return {"results": [native_row(r) for r in rows.head(size).iter_rows(named=True)],
                "next": page_url(page + 1) if more else None,
                "previous": page_url(page - 1) if page > 1 else None}

    return await state.cached(request, access, compute)
