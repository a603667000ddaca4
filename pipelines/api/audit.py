"""What the server records about its own use (:mod:`transforms.audit`; the configuration file's
``audit:`` section): reads of every route and page that answers rows (``reads``, off by default),
exports accepted and files downloaded (``exports``), viewer tokens issued (``keys``).

Records are spooled into the landing area (the publisher API's spool, ``publish/<day>/``), so the
ingest takes them into the log of the tenant they are about. Export and token records are written
before the response (a failure answers 503 and nothing is handed out); read records within
``audit.flush_seconds``, and at shutdown.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request

from pipelines.api.deps import Access, ApiError
from transforms.audit import AuditLog, audit_event, filter_parameters, read_event
from transforms.spool import SpoolError, write_spool

LOG = logging.getLogger("activitylog.audit")


def build_auditor(landing: str) -> AuditLog:
    """The app's recorder, with the ``audit:`` section of the configuration file (only that section)."""
    from pipelines.config import AuditConfig
    from pipelines.config.loader import load_section

    section = load_section("audit", AuditConfig)
    return AuditLog(section.settings(), lambda lines: write_spool(landing, lines), on_error=LOG.warning)


def _auditor(request: Request) -> AuditLog | None:
    return getattr(request.app.state, "auditor", None)


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or request.url.path


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def record_read(request: Request, access: Access, rows: int | None, *, cached: bool = False) -> None:
    """A read that answered ``rows`` rows (None: filter choices, not rows)."""
    auditor = _auditor(request)
    if auditor is None or not auditor.enabled("reads"):
        return
    auditor.record("reads", read_event(
        organization_id=access.organization_id, project_id=access.project_id, route=_route(request),
        key_id=access.key.key_id, parameters=filter_parameters(request.query_params.multi_items()), rows=rows,
        cached=cached, ip_address=_ip(request)))


def record_durably(request: Request, access: Access, activity: str, item_id: str, context: dict[str, Any]) -> None:
    """An export, a download or a token: written before the caller answers (503 if it cannot be)."""
    auditor = _auditor(request)
    kind = "keys" if activity == "viewer_token_issued" else "exports"
    if auditor is None or not auditor.enabled(kind):
        return
    event = audit_event(activity, organization_id=access.organization_id, project_id=access.project_id,
                        item_id=item_id, name=_route(request), ip_address=_ip(request),
                        context={"route": _route(request), "key_id": access.key.key_id, **context})
    try:
        auditor.record(kind, event, durable=True)
    except (SpoolError, OSError) as exc:
        raise ApiError(503, f"the audit record of this request cannot be written ({exc}); try again later",
                       headers={"Retry-After": "30"}) from None
