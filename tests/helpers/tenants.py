"""The read API's tenant-isolation tests (tests/tenant_isolation/): three organizations' events, one
project two of them share, a lake with admin, project and other-scope keys served by `activitylog serve`,
and requests to it with a key."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server
from transforms.keys import create_key
from transforms.lake import ACTIVITY_LOG, Lake

ORGS = {"org-a": [1, 2], "org-b": [3, 4], "org-c": [5]}
SHARED = 6  # a project that events tie to org-a and to org-b (moved between organizations)


def tenant_events() -> list[dict]:
    events = []
    for org, projects in ORGS.items():
        user = {"id": 1, "uuid": f"uuid-{org}", "email": f"someone@{org}.example", "first_name": org,
                "last_name": "User"}
        for project in projects:
            for i in range(3):
                events.append(make_event(id=f"{org}-p{project}-{i}", team_id=project, organization_id=org, user=user,
                                         scope=f"Scope{project}", created_at=f"2024-01-1{i}T10:00:00Z"))
            events.append(make_event(id=f"{org}-p{project}-imp", team_id=project, organization_id=org, user=user,
                                     activity="logged_in", scope="User", was_impersonated=True,
                                     created_at="2024-01-12T11:00:00Z"))
        events.append(make_event(id=f"{org}-level", team_id=None, organization_id=org, user=user,
                                 scope="OrganizationMembership", created_at="2024-01-12T12:00:00Z"))
    for org in ("org-a", "org-b"):
        events.append(make_event(id=f"{org}-shared", team_id=SHARED, organization_id=org,
                                 user={"id": 2, "uuid": f"shared-{org}", "email": f"shared@{org}.example"},
                                 created_at="2024-01-13T10:00:00Z"))
    return events


def start_api(root, lake, name: str, **extra: str) -> tuple[str, object]:
    """`activitylog serve` on ``lake`` with a DAGSTER_HOME and an exports directory of its own under ``root``,
    and ``extra`` in its environment: its URL and the server."""
    port = free_port()
    home = root / f"dagster-{name}"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = child_env({"ACTIVITYLOG_LAKE": lake.root, "ACTIVITYLOG_API_RATE": "100000", "ACTIVITYLOG_CONFIG": os.devnull,
                     "DAGSTER_HOME": str(home), "ACTIVITYLOG_API_EXPORTS": str(root / f"exports-{name}"), **extra})
    server = start_server(f"activitylog-serve-{name}", [script("activitylog"), "serve", "--host", LOOPBACK, "--port",
                                                        str(port)], url=f"http://{LOOPBACK}:{port}/openapi.json",
                          env=env, timeout=60)
    return f"http://{LOOPBACK}:{port}", server


def tenant_world(root: Path) -> tuple[dict, object]:
    """The lake of ``tenant_events`` under ``root``, its keys (``admin-a``, ``admin-b``, ``p1``, ``p3``,
    ``other-scope``), its rows, and a server on it: the world and the server (the caller stops it)."""
    lake = Lake.at(root / "lake")
    build_lake(lake, root / "landing", tenant_events(), name="a.jsonl")
    keys = {"admin-a": create_key(lake, "org-a", admin=True)[0], "admin-b": create_key(lake, "org-b", admin=True)[0],
            "p1": create_key(lake, "org-a", [1])[0], "p3": create_key(lake, "org-b", [3])[0],
            "other-scope": create_key(lake, "org-a", [1], scopes=["other:read"])[0]}
    url, server = start_api(root, lake, "main")
    rows = lake.scan(ACTIVITY_LOG).select("id", "team_id", "organization_id", "activity", "was_impersonated",
                                          "actor_email", "scope").collect()
    return {"url": url, "lake": lake, "keys": keys, "root": root, "rows": rows.to_dicts()}, server


def auth_headers(world, key):
    """The Authorization header of the world's key named ``key``, or of the token ``key`` (none for None)."""
    token = world["keys"].get(key, key)
    return {"Authorization": f"Bearer {token}"} if token else {}


def get(world, path, key=None, **params):
    return httpx.get(world["url"] + path, params=params, headers=auth_headers(world, key), timeout=30)


def post(world, path, key, body=None, content=None):
    return httpx.post(world["url"] + path, headers=auth_headers(world, key), json=body, content=content, timeout=30)
