"""Rows of ``activity_log`` as the API answers them (PostHog's activity-log row)."""

from __future__ import annotations

from typing import Any

from transforms import jsontext


def native_row(row: dict[str, Any]) -> dict[str, Any]:
    detail = jsontext.embed(row.get("detail"))  # the exact JSON text, placed as is by jsontext.encode
    user = None
    if row.get("actor_uuid") or row.get("actor_email"):
        # PostHog's UserBasicSerializer; what the events do not carry is null.
        user = {"first_name": row.get("actor_first_name"), "last_name": row.get("actor_last_name"),
                "email": row.get("actor_email"), "uuid": row.get("actor_uuid"), "id": row.get("actor_id"),
                "distinct_id": None, "is_email_verified": None, "role_at_organization": None}
    # PostHog's ActivityLogSerializer fields; ``unread`` is relative to a PostHog user's notification
    # bookmark, which keys do not have: null.
    return {"id": row["id"], "user": user, "unread": None, "activity": row["activity"], "scope": row["scope"],
            "item_id": row.get("item_id"), "detail": detail,
            "created_at": row["created_at"].isoformat().replace("+00:00", "Z"), "is_system": row.get("is_system"),
            "was_impersonated": row.get("was_impersonated"), "client": row.get("client"),
            "ip_address": row.get("ip_address"), "organization_id": row.get("organization_id"),
            "project_id": row.get("team_id"), "summary": row.get("summary")}
