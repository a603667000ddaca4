"""The Dagster UI: ``dagster-webserver`` started headless from the repo root loads the code location.

Asks the webserver's GraphQL API what the operator would see: the location loaded (not a Python
error), with the ingest and refresh jobs and the core assets.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

WORKSPACE_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation {
            repositories { name jobs { name } assetNodes { assetKey { path } } }
          }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message stack }
  }
}
"""


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    base = tmp_path_factory.mktemp("webserver")
    home = base / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    env = child_env({
        "DAGSTER_HOME": str(home),
        "ACTIVITYLOG_LAKE": str(base / "lake"),
        "ACTIVITYLOG_LANDING": str(base / "landing"),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "PYTHONUNBUFFERED": "1",
    })
    server = start_server(
        "dagster-webserver",
        [script("dagster-webserver"), "-w", "workspace.yaml", "-h", LOOPBACK, "-p", str(port)],
        url=f"http://{LOOPBACK}:{port}/server_info",
        cwd=ROOT, env=env, timeout=90,
    )
    try:
        yield server, f"http://{LOOPBACK}:{port}"
    finally:
        server.stop()


def graphql(base_url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{base_url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def workspace_when_loaded(base_url: str, timeout: float = 60.0) -> dict:
    """The GraphQL answer once no location is still LOADING."""
    deadline = time.monotonic() + timeout
    while True:
        answer = graphql(base_url, WORKSPACE_QUERY)
        entries = ((answer.get("data") or {}).get("workspaceOrError") or {}).get("locationEntries") or []
        if all(entry["loadStatus"] != "LOADING" for entry in entries) or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


def test_code_location_loads_with_jobs_and_assets(webserver):
    server, base_url = webserver
    try:
        answer = workspace_when_loaded(base_url)
        assert "errors" not in answer, answer.get("errors")
        workspace = answer["data"]["workspaceOrError"]
        assert workspace["__typename"] == "Workspace", workspace

        entries = workspace["locationEntries"]
        assert len(entries) == 1, entries
        entry = entries[0]
        assert entry["loadStatus"] == "LOADED", entry
        location = entry["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation", (
            f"code location failed to load: {location.get('message')}\n{''.join(location.get('stack') or [])}"
        )

        repositories = location["repositories"]
        jobs = {job["name"] for repo in repositories for job in repo["jobs"]}
        assets = {"/".join(node["assetKey"]["path"]) for repo in repositories for node in repo["assetNodes"]}
        assert {"ingest_job", "refresh_job"} <= jobs, jobs
        assert {"activity_raw", "activity_events", "activity_log"} <= assets, assets
        assert server.running()
    except BaseException:
        print(server.output())  # shown by pytest on failure
        raise
