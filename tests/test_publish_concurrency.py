"""Twenty publishers posting 500 events each while `activitylog ingest` and `activitylog retention` run
over and over against the same lake: every accepted event reaches `activity_log` exactly once. Real
processes throughout (`activitylog serve`, the CLI), a real HTTP client per publisher."""

from __future__ import annotations

import subprocess
import threading
from collections import Counter

import httpx
import polars as pl
import pytest

from tests.helpers.events import make_event
from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server
from transforms.keys import WRITE_SCOPE, create_key
from transforms.lake import ACTIVITY_LOG, Lake

pytestmark = [pytest.mark.slow, pytest.mark.local_lake]

PUBLISHERS, EVENTS, BATCH = 20, 500, 50


def test_publishers_ingest_and_retention_at_once_lose_and_double_nothing(tmp_path):
    lake = Lake.at(tmp_path / "lake")
    landing = tmp_path / "landing"
    landing.mkdir()
    config = tmp_path / "activitylog.yaml"
    config.write_text("retention:\n  default: 5y\n  vacuum_grace: 7d\n")
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    token = create_key(lake, "org-a", [1], scopes=[WRITE_SCOPE], check=False)[0]
    env = child_env({"ACTIVITYLOG_LAKE": lake.root, "ACTIVITYLOG_LANDING": str(landing), "ACTIVITYLOG_CONFIG": str(config),
                     "DAGSTER_HOME": str(home), "ACTIVITYLOG_API_RATE": "100000",
                     "ACTIVITYLOG_API_EXPORTS": str(tmp_path / "exports")})
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    server = start_server("activitylog-publish-concurrency",
                          [script("activitylog"), "serve", "--host", LOOPBACK, "--port", str(port)],
                          url=f"{url}/openapi.json", env=env, timeout=90)
    accepted: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    publishing = threading.Event()
    publishing.set()
    first_cycle = threading.Event()

    def publisher(number: int) -> None:
        with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
            for start in range(0, EVENTS, BATCH):
                if start == EVENTS // 2:  # the second half while the next ingest and retention run
                    first_cycle.wait(timeout=300)
                events = [make_event(id=f"p{number}-{i}", item_id=str(i),
                                     created_at=f"2024-03-{1 + (number + i) % 28:02d}T10:00:00Z")
                          for i in range(start, start + BATCH)]
                answer = client.post(f"{url}/api/projects/1/activity_log/events", json={"events": events})
                with lock:
                    if answer.status_code != 202:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")
                        continue
                    accepted.extend(r["id"] for r in answer.json()["results"] if r["status"] == "accepted")

    def cli(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([script("activitylog"), *argv], env=env, capture_output=True, text=True, timeout=600)

    runs: list[subprocess.CompletedProcess] = []

    def operator() -> None:  # the landing sensor and the retention schedule, as fast as they can go
        while publishing.is_set():
            runs.append(cli("ingest"))
            runs.append(cli("retention"))
            first_cycle.set()

    try:
        threads = [threading.Thread(target=publisher, args=(n,)) for n in range(PUBLISHERS)]
        background = threading.Thread(target=operator)
        background.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        publishing.clear()
        background.join()
    finally:
        server.stop()
    final = cli("ingest")
    assert final.returncode == 0, final.stderr[-3000:]
    assert failures == []
    assert [r.returncode for r in runs] == [0] * len(runs), [r.stderr[-2000:] for r in runs if r.returncode]
    assert len(runs) >= 4  # two cycles of ingest and retention ran while events arrived
    assert len(accepted) == PUBLISHERS * EVENTS
    stored = lake.scan(ACTIVITY_LOG).filter(pl.col("id").str.starts_with("p")).select("id").collect()["id"]
    counts = Counter(stored.to_list())
    assert set(counts) == set(accepted)  # nothing lost
    assert max(counts.values()) == 1  # nothing twice
