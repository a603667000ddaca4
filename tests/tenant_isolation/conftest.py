"""The tenant tests' world: three organizations' events and keys behind a served read API
(``tests.helpers.tenants.tenant_world``), once per module."""

from __future__ import annotations

import pytest

from tests.helpers.tenants import tenant_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    state, server = tenant_world(tmp_path_factory.mktemp("tenants"))
    try:
        yield state
    finally:
        server.stop()
