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
# ACTIVITYLOG_TEST_POSTGRES=postgresql://user:password@127.0.0.1:5432/postgres runs the Dagster tests on
# that server with the production instance file (deploy/dagster.yaml): a database for the session's
# DAGSTER_HOME and a fresh one for every `instance` fixture (`make test-postgres`).
import pgtest  # noqa: E402

_SESSION_DATABASE = pgtest.create_database() if pgtest.URL else None
if _SESSION_DATABASE:
    pgtest.use_for_dagster_home(_SESSION_DIR / "dagster", _SESSION_DATABASE)


def pytest_sessionfinish(session, exitstatus):
    if _SESSION_DATABASE:
        from pipelines.runner import dispose_instances

        dispose_instances()
        pgtest.drop_database(_SESSION_DATABASE)
os.environ.setdefault("ACTIVITYLOG_LAKE", str(_SESSION_DIR / "lake"))
os.environ.setdefault("ACTIVITYLOG_LANDING", str(_SESSION_DIR / "landing"))
# An empty configuration file: tests never pick up the demo's (the Makefile exports it) or ./activitylog.yaml.
(_SESSION_DIR / "activitylog.yaml").write_text("")
os.environ["ACTIVITYLOG_CONFIG"] = str(_SESSION_DIR / "activitylog.yaml")
os.environ.pop("ACTIVITYLOG_READ_WINDOW", None)
# The demo's first day (data/demo.mk, exported by the Makefile) is not the tests' partition start.
os.environ.pop("ACTIVITYLOG_START_DATE", None)

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


# ACTIVITYLOG_TEST_LAKE=s3 gives every test's `lake` a fresh s3:// prefix on a moto_server subprocess
# (`make test-s3`): the same tests, the lake on S3.
TEST_LAKE = os.environ.get("ACTIVITYLOG_TEST_LAKE", "local")
if TEST_LAKE not in ("local", "s3"):
    raise pytest.UsageError(f"ACTIVITYLOG_TEST_LAKE must be 'local' or 's3', not {TEST_LAKE!r}")


def pytest_collection_modifyitems(config, items):
    if TEST_LAKE == "s3":
        skip = pytest.mark.skip(reason="reads or tampers with the lake's files on the local disk")
        for item in items:
            if "local_lake" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def s3_lake_server():
    """moto_server for the S3 pass, with this process's AWS settings pointed at it (and nowhere else)."""
    from s3test import MotoServer

    with MotoServer.start() as server, pytest.MonkeyPatch.context() as patch:
        for name in [k for k in os.environ if k.startswith("AWS_")]:
            patch.delenv(name)
        for name, value in server.env().items():
            patch.setenv(name, value)
        yield server


@pytest.fixture
def lake(request, tmp_path):
    from transforms.lake import Lake

    if TEST_LAKE == "s3":
        server = request.getfixturevalue("s3_lake_server")
        return Lake.at(f"s3://{server.bucket}/{uuid.uuid4().hex}")
    return Lake.at(tmp_path / "lake")


@pytest.fixture
def instance(tmp_path, monkeypatch):
    """A Dagster instance of its own: ephemeral, or on PostgreSQL with deploy/dagster.yaml in the
    PostgreSQL pass."""
    import dagster as dg

    if not pgtest.URL:
        with dg.instance_for_test() as test_instance:
            yield test_instance
        return
    database = pgtest.create_database()
    home = tmp_path / "dagster_home"
    pgtest.use_for_dagster_home(home, database, setenv=monkeypatch.setenv)
    test_instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield test_instance
    finally:
        test_instance.dispose()
        pgtest.drop_database(database)
