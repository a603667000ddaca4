"""Rows of ``activity_log`` as the API answers them (PostHog's activity-log row)."""

from __future__ import annotations

from typing import Any

from transforms import jsontext


def native_row(row: dict[str, Any]) -> dict[str, Any]:
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
