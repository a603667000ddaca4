import json
import os
import sys
import tempfile
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Before anything imports Dagster or the definitions: a throwaway instance and lake for the session,
# so tests never touch ./data.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="activitylog-tests-"))
os.environ["DAGSTER_HOME"] = str(_SESSION_DIR / "dagster")
(_SESSION_DIR / "dagster").mkdir()
(_SESSION_DIR / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
os.environ.setdefault("ACTIVITYLOG_LAKE", str(_SESSION_DIR / "lake"))
os.environ.setdefault("ACTIVITYLOG_LANDING", str(_SESSION_DIR / "landing"))
# An empty configuration file: tests never pick up the demo's (the Makefile exports it) or ./activitylog.yaml.
(_SESSION_DIR / "activitylog.yaml").write_text("")
os.environ["ACTIVITYLOG_CONFIG"] = str(_SESSION_DIR / "activitylog.yaml")
os.environ.pop("ACTIVITYLOG_READ_WINDOW", None)

from transforms.validate import ValidationSettings  # noqa: E402

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


@pytest.fixture
def settings() -> ValidationSettings:
    return ValidationSettings(start_date=date(2020, 1, 1), now=NOW)


@pytest.fixture
def landing(tmp_path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


@pytest.fixture
def lake(tmp_path):
    from transforms.lake import Lake

    return Lake.at(tmp_path / "lake")
