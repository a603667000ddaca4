"""Events and landing files: ``make_event`` (a valid PostHog-format event), ``write_lines`` and ``NOW``,
the fixed clock of the ``settings`` fixture."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

NOW = datetime(2024, 2, 1, 12, 0, tzinfo=timezone.utc)


def make_event(**overrides) -> dict:
    """A valid PostHog-format project-level event; keyword arguments replace fields (None keeps null)."""
    event = {
        "id": str(uuid.uuid4()),
        "activity": "updated",
        "scope": "FeatureFlag",
        "item_id": "12345",
        "detail": {
            "name": "new-checkout-flow",
            "short_id": "checkout-v2",
            "type": None,
            "changes": [{"type": "FeatureFlag", "action": "changed", "field": "active", "before": False, "after": True}],
            "trigger": None,
            "context": None,
        },
        "user": {"id": 42, "uuid": "user-uuid-42", "email": "jane@example.com", "first_name": "Jane", "last_name": "Doe"},
        "created_at": "2024-01-15T10:30:00.000000Z",
        "is_system": False,
        "was_impersonated": False,
        "team_id": 1,
        "organization_id": "org-1",
        "client": "web",
        "ip_address": "203.0.113.7",
    }
    event.update(overrides)
    return event


def write_lines(path: Path, lines, *, newline: str = "\n", bom: bool = False) -> Path:
    """Write events (dicts → JSON) or raw strings, one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = newline.join(json.dumps(x) if isinstance(x, dict) else x for x in lines) + newline
    data = text.encode()
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path
