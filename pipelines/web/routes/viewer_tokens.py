"""Viewer tokens for host applications (an admin key of the organization): ``?token=`` on the feed and
the embeddable views, one project or the whole organization, for a few minutes."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict

from pipelines.api.audit import record_durably
from pipelines.api.deps import Access, ApiError, require_access
from pipelines.web import tokens
from pipelines.web.sessions import signing_secret

router = APIRouter(tags=["viewer_tokens"])


class ViewerTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project_id: int | None = None   # None: the whole organization
    ttl: str = "15m"


class ViewerToken(BaseModel):
    token: str
    expires_at: str
    organization_id: str
    project_id: int | None


@router.post("/api/organizations/{org_id}/viewer_tokens", response_model=ViewerToken, status_code=201)
async def viewer_token(request: Request, org_id: str, body: ViewerTokenRequest,
                       access: Access = Depends(require_access)):
    """A short-lived token for ``/``, ``/embed/feed`` and ``/embed/history`` (``?token=``) showing one
    project of the organization, or all of it."""
    try:
        ttl = tokens.parse_ttl(body.ttl)
    except ValueError as exc:
        raise ApiError(400, str(exc), "ttl") from None
    if body.project_id is not None:
        rule = request.app.state.access_rule
        if not 0 <= body.project_id < 2**63:
            raise ApiError(404, "not found")
        organizations = await run_in_threadpool(rule.organizations_of, body.project_id)
        if not rule.may_read_project(access.key, body.project_id, organizations):
            raise ApiError(404, "not found")
    token, expires = tokens.mint(signing_secret(request.app.state.page_secret), access.organization_id, body.project_id, ttl,
                                 issuer=access.key.key_id)
    await run_in_threadpool(record_durably, request, access, "viewer_token_issued", access.key.key_id,
                            {"project_id": body.project_id, "expires_at": expires, "ttl_seconds": ttl})
    return {"token": token, "expires_at": datetime.fromtimestamp(expires, timezone.utc).isoformat().replace(
        "+00:00", "Z"), "organization_id": access.organization_id, "project_id": body.project_id}
