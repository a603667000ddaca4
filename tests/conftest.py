"""Fixtures and hooks for the whole suite (helpers that are not fixtures live in ``tests/helpers/``).

``pytest_configure`` isolates the session before any test module is imported (some read the environment
at import): a throwaway DAGSTER_HOME, lake, landing area and empty configuration file
(``tests.helpers.environment.isolate``), and in the PostgreSQL pass a database for that DAGSTER_HOME.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from datetime import date
from pathlib import Path

import pytest

from tests.helpers import postgres
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.environment import TEST_LAKE, TEST_LAKES, isolate
from tests.helpers.events import NOW

SESSION_DATABASE = pytest.StashKey["str | None"]()


def pytest_configure(config):
    if TEST_LAKE not in TEST_LAKES:
        raise pytest.UsageError(f"ACTIVITYLOG_TEST_LAKE must be 'local' or 's3', not {TEST_LAKE!r}")
    config.stash[SESSION_DATABASE] = isolate(Path(tempfile.mkdtemp(prefix="activitylog-tests-")))


def pytest_sessionfinish(session, exitstatus):
    database = session.config.stash.get(SESSION_DATABASE, None)
    if database:
        from pipelines.runner import dispose_instances

        dispose_instances()
        postgres.drop_database(database)


def pytest_collection_modifyitems(config, items):
    if TEST_LAKE == "s3":
        skip = pytest.mark.skip(reason="reads or tampers with the lake's files on the local disk")
        for item in items:
            if "local_lake" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def settings():
    from transforms.validate import ValidationSettings

    return ValidationSettings(start_date=date(2020, 1, 1), now=NOW)


@pytest.fixture
def landing(tmp_path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def s3_lake_server():
    """moto_server for the S3 pass, with this process's AWS settings pointed at it (and nowhere else)."""
    from tests.helpers.s3 import MotoServer

    with MotoServer.start() as server, pytest.MonkeyPatch.context() as patch:
        for name in [k for k in os.environ if k.startswith("AWS_")]:
            patch.delenv(name)
        for name, value in server.env().items():
            patch.setenv(name, value)
        yield server


@pytest.fixture
def lake(request, tmp_path):
    """A fresh lake: under tmp_path, or a fresh s3:// prefix on moto_server in the S3 pass."""
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

    if not postgres.URL:
        with dg.instance_for_test() as test_instance:
            yield test_instance
        return
    database = postgres.create_database()
    home = tmp_path / "dagster_home"
    postgres.use_for_dagster_home(home, database, setenv=monkeypatch.setenv)
    test_instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield test_instance
    finally:
        test_instance.dispose()
        postgres.drop_database(database)


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (skipped when it is not installed: `make browser`)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed: run scripts/install-browser (make browser) to install "
                    "Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
