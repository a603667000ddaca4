"""A load test of the publisher API: ``CLIENTS`` concurrent clients post 100-event batches for ``SECONDS``.

    .venv/bin/python -m bench.publish [--clients 50] [--seconds 20] [--batch 100] [--workers 1]

The server (``activitylog serve``) runs in its own process over a fresh lake and landing area; this
process is the load generator (aiohttp). Every batch holds new event ids. Reported: requests and
events per second, latency p50/p99 of a request (each a spool file fsync'd before its 202), errors;
then a check that the spool files hold exactly the events the server accepted, each once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

CLIENTS = 50
SECONDS = 20
BATCH = 100


def _template(batch: int) -> str:
    events = []
    for i in range(batch):
        events.append({"id": f"@@-{i}", "activity": "updated", "scope": "FeatureFlag", "item_id": str(1000 + i),
                       "created_at": "2024-05-01T10:00:00Z", "team_id": 1, "organization_id": "org-1",
                       "user": {"id": 42, "uuid": "user-42", "email": "jane@example.com"},
                       "detail": {"name": "new-checkout", "changes": [{"type": "FeatureFlag", "action": "changed",
                                                                       "field": "active", "before": False,
                                                                       "after": True}]}})
    return json.dumps({"events": events}, separators=(",", ":"))


async def _client(session, url: str, template: str, number: int, until: float, latencies: list, errors: list,
                  counts: list) -> None:
    sequence = 0
    while time.monotonic() < until:
        body = template.replace("@@", f"c{number}-{sequence}").encode()
        sequence += 1
        started = time.perf_counter()
        try:
            async with session.post(url, data=body) as response:
                payload = await response.read()
                if response.status != 202:
                    errors.append(f"{response.status}: {payload[:200]!r}")
                    continue
                counts.append(json.loads(payload)["accepted"])
        except Exception as exc:  # noqa: BLE001 - a bench counts every failure
            errors.append(repr(exc))
            continue
        latencies.append(time.perf_counter() - started)


async def _load(url: str, token: str, clients: int, seconds: float, batch: int) -> dict:
    import aiohttp

    template = _template(batch)
    latencies: list[float] = []
    errors: list[str] = []
    counts: list[int] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(headers=headers, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(*(_client(session, url, template, n, until, latencies, errors, counts)
                               for n in range(clients)))
        elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    quantile = (lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000) if ordered else (lambda q: 0.0)
    return {"requests": len(latencies), "events": sum(counts), "seconds": elapsed,
            "requests_per_second": len(latencies) / elapsed, "events_per_second": sum(counts) / elapsed,
            "p50_ms": quantile(0.50), "p99_ms": quantile(0.99),
            "mean_ms": statistics.fmean(latencies) * 1000 if latencies else 0.0,
            "errors": len(errors), "first_errors": errors[:3]}


def run(clients: int = CLIENTS, seconds: float = SECONDS, batch: int = BATCH, workers: int = 1,
        directory: str | None = None) -> dict:
    """Start a server, load it, check the spool; the figures as a dict."""
    from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server
    from transforms.keys import WRITE_SCOPE, create_key
    from transforms.lake import Lake
    from transforms.landing import scan_landing

    root = Path(directory or tempfile.mkdtemp(prefix="bench-publish-"))
    lake = Lake.at(root / "lake")
    landing = root / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    home = root / "dagster"
    home.mkdir(exist_ok=True)
    token, _ = create_key(lake, "org-1", [1], scopes=[WRITE_SCOPE], check=False, label="bench")
    port = free_port()
    env = child_env({"ACTIVITYLOG_LAKE": lake.root, "ACTIVITYLOG_LANDING": str(landing),
                     "ACTIVITYLOG_CONFIG": os.devnull, "ACTIVITYLOG_API_RATE": "1000000000",
                     "DAGSTER_HOME": str(home)})
    server = start_server("activitylog-serve-bench", [script("activitylog"), "serve", "--host", LOOPBACK, "--port",
                                                      str(port), "--workers", str(workers)],
                          url=f"http://{LOOPBACK}:{port}/openapi.json", env=env, timeout=120)
    try:
        url = f"http://{LOOPBACK}:{port}/api/projects/1/activity_log/events"
        figures = asyncio.run(_load(url, token, clients, seconds, batch))
    finally:
        server.stop()
    ids: list[str] = []
    files = scan_landing(str(landing)).files
    for file in files:
        ids += [json.loads(line)["id"] for line in Path(file.uri).read_text().splitlines()]
    figures.update({"clients": clients, "batch": batch, "workers": workers, "spool_files": len(files),
                    "spooled_events": len(ids), "spooled_unique": len(set(ids)),
                    "spool_matches": len(ids) == len(set(ids)) == figures["events"]})
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--dir", default=None, help="where the lake and landing go (default: a new temp dir)")
    args = parser.parse_args(argv)
    figures = run(args.clients, args.seconds, args.batch, args.workers, args.dir)
    print(f"{figures['clients']} clients × {figures['batch']}-event batches for {figures['seconds']:.1f}s "
          f"(--workers {figures['workers']}): {figures['requests']:,} requests, {figures['events']:,} events; "
          f"{figures['events_per_second']:,.0f} events/s, {figures['requests_per_second']:,.1f} requests/s; "
          f"latency p50 {figures['p50_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms; errors {figures['errors']}"
          + (f" (first: {figures['first_errors']})" if figures["errors"] else ""))
    print(f"spool: {figures['spool_files']:,} files, {figures['spooled_events']:,} events "
          f"({figures['spooled_unique']:,} distinct ids): " + ("matches the 202s" if figures["spool_matches"]
                                                              else "DOES NOT match the 202s"))
    return 0 if figures["spool_matches"] and not figures["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
