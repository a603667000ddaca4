"""The page tests' world: a lake of two organizations and their keys, built once per module
(``tests.helpers.page.page_world``), the server's environment, and a client of the app."""

from __future__ import annotations

import pytest

from tests.helpers.page import page_client, page_env, page_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return page_world(tmp_path_factory.mktemp("page"))


@pytest.fixture
def app_env(world, monkeypatch, tmp_path):
    return page_env(monkeypatch, world, tmp_path / "exports")


@pytest.fixture
def client(world, app_env):
    return page_client(world)
