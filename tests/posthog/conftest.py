"""The session's served lake for the PostHog-compatibility suite (helpers: tests/helpers/posthog.py)."""

from __future__ import annotations

import os

import pytest

from tests.helpers.lakes import build_lake
from tests.helpers.posthog import Client, declared
from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server


@pytest.fixture(scope="session")
def posthog(tmp_path_factory):
    """Every event the suite's modules declared, landed as one NDJSON file, ingested and refreshed; a member
    key (all of an organization's projects) and an admin key per organization; `activitylog serve` on it."""
    from transforms.keys import create_key
    from transforms.lake import Lake

    events, projects = declared()
    root = tmp_path_factory.mktemp("posthog")
    lake = Lake.at(root / "lake")
    result = build_lake(lake, root / "landing", events, name="posthog.jsonl")
    quarantined = sum(f.quarantined for f in result.files_ingested)
    assert quarantined == 0 and sum(f.accepted for f in result.files_ingested) == len(events), result
    by_org: dict[str, list[int]] = {}
    for pid, org in projects.items():
        by_org.setdefault(org, []).append(pid)
    keys = {}
    for org, pids in by_org.items():
        keys[("member", org)] = create_key(lake, org, sorted(pids))[0]  # PostHog: an organization member
        keys[("admin", org)] = create_key(lake, org, admin=True)[0]  # PostHog: an organization admin/owner
    port = free_port()
    home = root / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = child_env({"ACTIVITYLOG_LAKE": lake.root, "ACTIVITYLOG_API_RATE": "100000",
                     "ACTIVITYLOG_CONFIG": os.devnull, "DAGSTER_HOME": str(home)})
    server = start_server("activitylog-serve-posthog",
                          [script("activitylog"), "serve", "--host", LOOPBACK, "--port", str(port)],
                          url=f"http://{LOOPBACK}:{port}/openapi.json", env=env, timeout=60)
    try:
        yield Client(f"http://{LOOPBACK}:{port}", keys, result)
    finally:
        server.stop()
