"""The PostgreSQL pass: ``ACTIVITYLOG_TEST_POSTGRES`` names a server (a libpq URL whose role may create
databases); each Dagster instance under test gets a database of its own there, configured by the
production instance file ``deploy/dagster.yaml``."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from tests.helpers import ROOT

URL = os.environ.get("ACTIVITYLOG_TEST_POSTGRES", "")
PREFIX = "activitylog_test_"


def _connect(url: str = URL):
    import psycopg2

    connection = psycopg2.connect(url)
    connection.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    return connection


def _execute(statement: str) -> None:
    connection = _connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def create_database() -> str:
    name = f"{PREFIX}{uuid.uuid4().hex[:16]}"
    _execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str, attempts: int = 20) -> None:
    """Drop ``name``, ending the test's own connections to it. An autovacuum worker that happens to be in
    the database runs as the server's superuser, which the test role may not end: wait for it (it is
    done within moments) and try again."""
    import psycopg2.errors

    for attempt in range(attempts):
        try:
            _execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.ObjectInUse):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


def dagster_env(database: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/dagster.yaml reads, for ``database`` on the test server."""
    url = urlparse(URL)
    return {"DAGSTER_PG_HOST": url.hostname or "127.0.0.1", "DAGSTER_PG_PORT": str(url.port or 5432),
            "DAGSTER_PG_USER": url.username or "postgres", "DAGSTER_PG_PASSWORD": url.password or "",
            "DAGSTER_PG_DB": database}


def use_for_dagster_home(home: Path, database: str, setenv: Callable[[str, str], None] | None = None) -> None:
    """Make ``home`` a DAGSTER_HOME on ``database`` with the production instance file, and set the
    variables it reads (in os.environ, or through ``setenv`` to undo them after a test)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    for name, value in dagster_env(database).items():
        (setenv or os.environ.__setitem__)(name, value)
