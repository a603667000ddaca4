"""The publisher API's tests (tests/publish/): a lake with write and read keys of two organizations,
`activitylog serve` on it with a small ``publish`` section, requests to it, and what they left in the spool
(the landing area) and, after `activitylog ingest`, in the lake. Each module's ``world`` fixture starts its
own server with ``publish_world`` and stops it."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import httpx

from tests.helpers.events import make_event
from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server
from transforms.commitments import canonical
from transforms.keys import READ_SCOPE, WRITE_SCOPE, create_key
from transforms.lake import Lake
from transforms.landing import scan_landing

MAX_EVENTS = 150
MAX_BYTES = 512 * 1024
CONFIG = f"publish:\n  max_events: {MAX_EVENTS}\n  max_bytes: 512KiB\n  idempotency_ttl: 24h\n"


def serve(world: dict, name: str, port: int | None = None, *, wait: bool = True):
    """`activitylog serve` on the world's lake and landing area: its URL and the server."""
    port = port or free_port()
    home = world["root"] / f"dagster-{name}"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    argv = [script("activitylog"), "serve", "--host", LOOPBACK, "--port", str(port)]
    url = f"http://{LOOPBACK}:{port}"
    server = start_server(f"activitylog-publish-{name}", argv, url=f"{url}/openapi.json", env=world["env"](home),
                          timeout=90)
    return url, server


def publish_world(root: Path) -> dict:
    """A lake under ``root`` with its keys (``w1``, ``w2``: write keys of org-a's projects 1 and 2; ``r1``: a read
    key; ``rw1``: both; ``w3``: org-b's project 3; ``admin-w``: org-a's admin key, both scopes), a landing area,
    the configuration file, and a server on them (``url``, ``server``: the caller stops it)."""
    lake = Lake.at(root / "lake")
    landing = root / "landing"
    landing.mkdir()
    config = root / "activitylog.yaml"
    config.write_text(CONFIG)
    keys = {
        "w1": create_key(lake, "org-a", [1], scopes=[WRITE_SCOPE], check=False)[0],
        "w2": create_key(lake, "org-a", [2], scopes=[WRITE_SCOPE], check=False)[0],
        "r1": create_key(lake, "org-a", [1], scopes=[READ_SCOPE], check=False)[0],
        "rw1": create_key(lake, "org-a", [1], scopes=[READ_SCOPE, WRITE_SCOPE], check=False)[0],
        "w3": create_key(lake, "org-b", [3], scopes=[WRITE_SCOPE], check=False)[0],
        "admin-w": create_key(lake, "org-a", admin=True, scopes=[WRITE_SCOPE, READ_SCOPE], check=False)[0],
    }

    def env(home: Path) -> dict:
        return child_env({"ACTIVITYLOG_LAKE": lake.root, "ACTIVITYLOG_LANDING": str(landing),
                          "ACTIVITYLOG_CONFIG": str(config), "ACTIVITYLOG_API_RATE": "100000",
                          "ACTIVITYLOG_MAX_LINE_BYTES": "64KiB",
                          "DAGSTER_HOME": str(home), "ACTIVITYLOG_API_EXPORTS": str(root / "exports")})

    state = {"root": root, "lake": lake, "landing": landing, "keys": keys, "env": env}
    url, server = serve(state, "main")
    state["url"], state["server"] = url, server
    return state


def auth_headers(world, key: str | None, **extra: str) -> dict:
    """The Authorization header of the world's key named ``key`` (none for None), and ``extra``."""
    headers = {"Authorization": f"Bearer {world['keys'][key]}"} if key else {}
    headers.update(extra)
    return headers


def post(world, path: str, key: str | None, body=None, *, content: bytes | None = None, url: str | None = None,
         params: dict | None = None, **headers: str) -> httpx.Response:
    if content is None:
        content = json.dumps(body).encode()
    return httpx.post((url or world["url"]) + path, content=content, params=params, timeout=60,
                      headers={"Content-Type": "application/json", **auth_headers(world, key, **headers)})


def spooled(world) -> list[dict]:
    """Every event in the spool files of the landing area, as the ingest would read them."""
    events = []
    for file in scan_landing(str(world["landing"])).files:
        # NDJSON lines end at "\n" only (str.splitlines would also split at U+2028, \x85, \x1c… inside strings)
        events += [json.loads(line) for line in Path(file.uri).read_text().split("\n") if line.strip()]
    return events


def spooled_lines(world) -> list[str]:
    """Every line of the spool files, as written."""
    return [line for file in scan_landing(str(world["landing"])).files for line in Path(file.uri).read_text().split("\n") if line]


def ids_in_spool(world, prefix: str) -> list[str]:
    """The ids of the spooled events that start with ``prefix``, once per copy."""
    return [e["id"] for e in spooled(world) if isinstance(e.get("id"), str) and e["id"].startswith(prefix)]


def ingest(world) -> subprocess.CompletedProcess:
    home = world["root"] / "dagster-ingest"
    home.mkdir(exist_ok=True)
    done = subprocess.run([str(script("activitylog")), "ingest", "--lake", world["lake"].root, "--landing",
                           str(world["landing"]), "--quiet"], capture_output=True, text=True, env=world["env"](home),
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def expected_sha256(event: dict, team_id, organization_id) -> str:
    return hashlib.sha256(canonical({**event, "team_id": team_id, "organization_id": organization_id})).hexdigest()


def batch_with_invalid(prefix: str, count: int = 100) -> tuple[list[dict], dict[int, str]]:
    """``count`` events, of which those at 7, 40 and 93 are invalid, and the reason of each."""
    events = [make_event(id=f"{prefix}-{i}", created_at=f"2024-03-{1 + i % 28:02d}T10:00:00Z") for i in range(count)]
    invalid = {7: "missing required field: activity", 40: "created_at has no timezone",
               93: "is_system must be a boolean"}
    invalid = {index: reason for index, reason in invalid.items() if index < count}
    del events[7]["activity"]
    if count > 93:
        events[40]["created_at"] = "2024-03-05T10:00:00"
        events[93]["is_system"] = "yes"
    return events, invalid
