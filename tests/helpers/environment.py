"""The test session's environment: the lake backend of the pass and the throwaway
DAGSTER_HOME, lake, landing area and configuration file every session runs with (``isolate``, called by
``tests/conftest.py``'s ``pytest_configure`` before any test module is imported), so tests never touch
./data, the demo's configuration or a developer's settings."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import postgres

# ACTIVITYLOG_TEST_LAKE=s3 gives every test's `lake` a fresh s3:// prefix on a moto_server subprocess
# (`make test-s3`): the same tests, the lake on S3.
TEST_LAKE = os.environ.get("ACTIVITYLOG_TEST_LAKE", "local")
TEST_LAKES = ("local", "s3")


def isolate(session_dir: Path) -> str | None:
    """Point the environment at a throwaway instance and lake under ``session_dir``; in the PostgreSQL
    pass, create the session's database for that DAGSTER_HOME and return its name (else None)."""
    home = session_dir / "dagster"
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir()
    # The instance file `make demo` and the CLI create (its batched SQLite event log included).
    from pipelines.runner import instance_file

    (home / "dagster.yaml").write_text(instance_file(home))
    # ACTIVITYLOG_TEST_POSTGRES=postgresql://user:password@127.0.0.1:5432/postgres runs the Dagster tests on
    # that server with the production instance file (deploy/dagster.yaml): a database for the session's
    # DAGSTER_HOME and a fresh one for every `instance` fixture (`make test-postgres`).
    database = postgres.create_database() if postgres.URL else None
    if database:
        postgres.use_for_dagster_home(home, database)
    os.environ.setdefault("ACTIVITYLOG_LAKE", str(session_dir / "lake"))
    os.environ.setdefault("ACTIVITYLOG_LANDING", str(session_dir / "landing"))
    # An empty configuration file: tests never pick up the demo's (the Makefile exports it) or ./activitylog.yaml.
    (session_dir / "activitylog.yaml").write_text("")
    os.environ["ACTIVITYLOG_CONFIG"] = str(session_dir / "activitylog.yaml")
    os.environ.pop("ACTIVITYLOG_READ_WINDOW", None)
    # The demo's first day (data/demo.mk, exported by the Makefile) is not the tests' partition start.
    os.environ.pop("ACTIVITYLOG_START_DATE", None)
    return database
