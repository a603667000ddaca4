"""The publisher tests' world: ``activitylog serve`` in a subprocess on 127.0.0.1 over a lake with write
and read keys of two organizations (``tests.helpers.publish.publish_world``), once per module."""

from __future__ import annotations

import pytest

from tests.helpers.publish import publish_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    state = publish_world(tmp_path_factory.mktemp("publish"))
    try:
        yield state
    finally:
        state["server"].stop()
