"""What a notification says about an event: the JSON record (webhook ``data``, file ``event``) and the
context templates render (Slack text, email subject and bodies)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from transforms import jsontext

MAX_VALUE_CHARS = 80


def _short(text: str | None) -> str:
    text = "null" if text is None else " ".join(text.split())
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def event_record(row: dict[str, Any]) -> dict[str, Any]:
    """The enriched event as JSON-ready data (the webhook body's ``data``, the file line's ``event``):
    the same shape as a SIEM stream's native schema."""
    from transforms.streams import native_record

    return native_record(row)


def template_context(row: dict[str, Any], subscription: str, link_template: str | None) -> dict[str, Any]:
    detail = jsontext.loads_shown(row["detail"]) if row.get("detail") else None
    changes = []
    for change in ((detail or {}).get("changes") or []) if isinstance(detail, dict) else []:
        if isinstance(change, dict):
            changes.append({"field": change.get("field"), "action": change.get("action"),
                            "before": _short(jsontext.display(change.get("before"))),
                            "after": _short(jsontext.display(change.get("after")))})
    link = ""
    if link_template:
        try:
            link = link_template.format(**{k: ("" if v is None else v) for k, v in row.items()})
        except (KeyError, IndexError, ValueError):
            link = ""
    created = row.get("created_at")
    return {**{k: v for k, v in row.items() if k != "created_at"}, "created_at": (
        created.strftime("%Y-%m-%d %H:%M UTC") if isinstance(created, datetime) else created),
        "changes": changes, "link": link, "subscription": subscription}
