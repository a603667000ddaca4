"""A burst against `activitylog serve` (a subprocess on 127.0.0.1): 50 export requests at once while
20 clients read ``activity_log/``
(after one export alone has created the storage of the server's fresh DAGSTER_HOME). Every read answers 200; every export either completes (status
``succeeded``, its file downloadable) or is refused with 429 naming the per-key quota; nothing else,
and nothing hangs (every request and the whole burst are bounded in time)."""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server
from transforms.keys import create_key
from transforms.lake import Lake

EXPORTS, READERS, QUOTA = 50, 20, 10
REQUEST_TIMEOUT = 60  # seconds: a request that takes longer is a hang
BURST_DEADLINE = 900  # seconds for every accepted export to finish


@pytest.fixture(scope="module")
def burst_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("burst")
    events = [make_event(id=f"b-{i:05d}", team_id=1, organization_id="org-1", item_id=str(i),
                         created_at=f"2024-01-{10 + i % 5:02d}T{i % 24:02d}:00:00Z") for i in range(2_000)]
    lake = Lake.at(root / "lake")
    build_lake(lake, root / "landing", events, name="a.jsonl")
    key = create_key(lake, "org-1", [1])[0]
    home = root / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    env = child_env({"ACTIVITYLOG_LAKE": lake.root, "ACTIVITYLOG_API_RATE": "1000000", "ACTIVITYLOG_CONFIG": os.devnull,
                     "ACTIVITYLOG_API_EXPORTS": str(root / "exports"), "ACTIVITYLOG_API_EXPORT_QUOTA": str(QUOTA),
                     "DAGSTER_HOME": str(home)})
    server = start_server("activitylog-serve-burst", [script("activitylog"), "serve", "--host", LOOPBACK, "--port",
                                                      str(port)], url=f"http://{LOOPBACK}:{port}/openapi.json",
                          env=env, timeout=90)
    url, headers = f"http://{LOOPBACK}:{port}", {"Authorization": f"Bearer {key}"}
    try:
        # One export first, alone: it creates the storage of the fresh DAGSTER_HOME (two export processes
        # creating it at once can collide: a deployed server's instance exists before its first burst).
        first = httpx.post(f"{url}/api/projects/1/advanced_activity_logs/export", headers=headers, json={}, timeout=60)
        assert first.status_code == 202, first.text
        for _ in range(240):
            status = httpx.get(f"{url}/api/projects/1/advanced_activity_logs/exports/{first.json()['id']}",
                               headers=headers, timeout=60).json()["status"]
            if status in ("succeeded", "failed"):
                break
            time.sleep(0.5)
        assert status == "succeeded"
        yield {"url": f"http://{LOOPBACK}:{port}", "headers": {"Authorization": f"Bearer {key}"}, "server": server,
               "exports": root / "exports"}
    finally:
        server.stop()


@pytest.mark.slow
def test_export_burst_while_reading(burst_server):
    url, headers = burst_server["url"], burst_server["headers"]
    stop = threading.Event()
    reads: list[tuple[int, float]] = []  # (status, seconds)
    read_errors: list[str] = []
    lock = threading.Lock()

    def reader() -> None:
        with httpx.Client(headers=headers, timeout=REQUEST_TIMEOUT) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get(f"{url}/api/projects/1/activity_log/", params={"page_size": 50}).status_code
                except httpx.HTTPError as exc:  # a timeout is a hang: reported, never retried
                    with lock:
                        read_errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                with lock:
                    reads.append((status, time.monotonic() - started))

    readers = [threading.Thread(target=reader, daemon=True) for _ in range(READERS)]
    for thread in readers:
        thread.start()
    time.sleep(1.0)  # the readers are reading when the burst comes

    def post(index: int) -> httpx.Response:
        return httpx.post(f"{url}/api/projects/1/advanced_activity_logs/export", headers=headers,
                          json={"format": ("csv", "jsonl")[index % 2]}, timeout=REQUEST_TIMEOUT)

    burst_started = time.monotonic()
    with ThreadPoolExecutor(max_workers=EXPORTS) as pool:
        answers = list(pool.map(post, range(EXPORTS)))
    burst_seconds = time.monotonic() - burst_started

    accepted = [a.json()["id"] for a in answers if a.status_code == 202]
    refused = [a for a in answers if a.status_code == 429]
    assert len(accepted) + len(refused) == EXPORTS, [(a.status_code, a.text) for a in answers
                                                     if a.status_code not in (202, 429)]
    assert len(accepted) >= QUOTA  # the quota counts exports in flight: the first QUOTA always pass
    for answer in refused:
        assert answer.headers["Retry-After"] == "30"
        assert answer.json()["detail"] == f"at most {QUOTA} exports of one key may be queued or running at once"

    outcomes: dict[str, dict] = {}
    deadline = time.monotonic() + BURST_DEADLINE
    with httpx.Client(headers=headers, timeout=REQUEST_TIMEOUT) as client:
        while len(outcomes) < len(accepted) and time.monotonic() < deadline:
            for export_id in accepted:
                if export_id in outcomes:
                    continue
                body = client.get(f"{url}/api/projects/1/advanced_activity_logs/exports/{export_id}").json()
                if body["status"] in ("succeeded", "failed"):
                    outcomes[export_id] = body
            time.sleep(0.5)
        exports_seconds = time.monotonic() - burst_started
        stop.set()
        for thread in readers:
            thread.join(timeout=REQUEST_TIMEOUT + 5)
        assert len(outcomes) == len(accepted), f"exports still running after {BURST_DEADLINE}s"
        for export_id, body in outcomes.items():
            log = burst_server["exports"] / export_id / "run.log"
            assert body["status"] == "succeeded", (body, log.read_text()[-6000:] if log.exists() else "no run log")
            file = client.get(body["file"])
            assert file.status_code == 200 and file.content.count(b"\n") >= 2_000, (export_id, file.status_code)
    assert not any(thread.is_alive() for thread in readers)
    assert read_errors == []
    statuses = {status for status, _ in reads}
    assert statuses == {200}, statuses
    latencies = sorted(seconds for _, seconds in reads)
    figures = (f"burst: {EXPORTS} export requests in {burst_seconds:.2f}s: {len(accepted)} accepted (all succeeded, "
               f"files downloaded), {len(refused)} refused 429; exports done after {exports_seconds:.1f}s; "
               f"{len(reads)} reads by {READERS} clients, all 200, latency median {latencies[len(latencies) // 2]:.3f}s, "
               f"p99 {latencies[int(len(latencies) * 0.99)]:.3f}s, max {latencies[-1]:.3f}s")
    print(figures)
    assert burst_server["server"].running()
