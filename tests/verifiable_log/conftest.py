"""The verifiable-log tests' workspace: two ingest runs, made once per module, and a copy of them for
each test (``tests.helpers.verifiable_log.two_runs``)."""

from __future__ import annotations

import pytest

from tests.helpers.faults import Workspace
from tests.helpers.verifiable_log import two_runs


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Workspace:
    """Two ingest runs: the first events, then late and new ones (and a duplicate)."""
    return two_runs(tmp_path_factory.mktemp("vlog") / "base")


@pytest.fixture
def workspace(pristine, tmp_path) -> Workspace:
    return pristine.copy(tmp_path / "ws")
