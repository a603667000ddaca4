"""Suite ``api`` of ``make bench``: a load test of ``activitylog serve`` from a second process.

The server runs over the enriched 1M-event lake (``activitylog serve --workers 2``: a process per core). The load
generator (this module's ``load`` in another process) runs ``CLIENTS`` concurrent clients for
``SECONDS`` seconds, each sending 100-row pages of 30-day filtered queries (scopes, a detail filter, a
text search, one user) to the project endpoint with a valid key, and records every latency. The
server's RSS is sampled every second. Targets: p50 ≤ 50 ms, p99 ≤ 250 ms, zero errors, flat memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.enrich import enriched_lake
from bench.harness import Bench, Outcome, say

CLIENTS = 50
SECONDS = 60
WORKERS = 2  # one per core


def prepare(lake_root: str) -> dict[str, Any]:
    """A key for the busiest project and the 30-day window (run in a child process)."""
    import polars as pl

    from transforms.keys import create_key
    from transforms.lake import ACTIVITY_LOG, Lake

    lake = Lake.at(lake_root)
    end = lake.days(ACTIVITY_LOG)[-1]
    start = end - timedelta(days=29)
    log = lake.scan(ACTIVITY_LOG).filter(pl.col("day").is_between(start, end))
    project = log.group_by("team_id").len().sort("len", descending=True).collect()["team_id"][0]
    organization = log.filter(pl.col("team_id") == project).select("organization_id").head(1).collect().item()
    users = log.filter(pl.col("team_id") == project).select(pl.col("actor_email").drop_nulls().unique()).collect()
    token, _ = create_key(lake, organization, [int(project)], label="bench")
    return {"token": token, "project": int(project), "start": start.isoformat(), "end": end.isoformat(),
            "users": sorted(users["actor_email"].to_list())[:20]}


def _queries(p: dict[str, Any]) -> list[dict[str, str]]:
    # the whole last day: a date-only end_date is that day's midnight, as PostHog reads it
    window = {"start_date": p["start"], "end_date": f"{p['end']}T23:59:59.999999Z", "page_size": "100"}
    detail = json.dumps({"changes[].field": {"operation": "exact", "value": "active"}})
    out = [{**window, "scopes": "FeatureFlag"}, {**window, "scopes": "Insight,Dashboard", "activities": "updated"},
           {**window, "detail_filters": detail}, {**window, "search_text": "checkout"}]
    out += [{**window, "users": user} for user in p["users"][:5]]
    return out


async def _client(session, url: str, queries: list[dict], until: float, latencies: list, errors: list, seed: int):
    rng = random.Random(seed)
    while time.monotonic() < until:
        params = rng.choice(queries)
        started = time.perf_counter()
        try:
            async with session.get(url, params=params) as response:
                await response.read()
                if response.status != 200:
                    errors.append(response.status)
        except Exception as exc:  # noqa: BLE001 - counted, reported
            errors.append(type(exc).__name__)
        latencies.append(time.perf_counter() - started)


def load(spec_json: str) -> None:
    spec = json.loads(spec_json)
    p = spec["params"]
    url = f"{spec['base']}/api/projects/{p['project']}/advanced_activity_logs/"
    latencies: list[float] = []
    errors: list = []
    until = time.monotonic() + spec["seconds"]
    queries = _queries(p)

    async def main() -> None:
        import aiohttp  # a light client: the generator shares the machine with the server

        connector = aiohttp.TCPConnector(limit=spec["clients"])
        async with aiohttp.ClientSession(connector=connector, headers={"Authorization": f"Bearer {p['token']}"},
                                         timeout=aiohttp.ClientTimeout(total=30)) as session:
            await asyncio.gather(*[_client(session, url, queries, until, latencies, errors, i)
                                   for i in range(spec["clients"])])

    asyncio.run(main())
    ordered = sorted(latencies)
    print(json.dumps({"requests": len(ordered), "errors": len(errors), "error_kinds": sorted({str(e) for e in errors}),
                      "p50": ordered[len(ordered) // 2] if ordered else None,
                      "p99": ordered[int(len(ordered) * 0.99)] if ordered else None,
                      "mean": statistics.mean(ordered) if ordered else None}))


def run(bench: Bench) -> Outcome:
    """The load test over the enriched bench lake (built here when no earlier suite did), with the page
    cache on, then for 20 seconds with it off."""
    say("suite api: the read API under load from a second process")
    lake = bench.work / "enrich_lake"
    ready = bool({"query", "enrich", "export", "retention"} & set(bench.suites))
    failed = enriched_lake(lake, bench.landing, bench.work, ready, "api")
    if failed:
        return Outcome(section={"error": failed["error"]})
    try:
        result = load_test(str(lake), bench.work, say=say)
        result["uncached"] = load_test(str(lake), bench.work, seconds=20, say=say, cache=False)
        return Outcome(section=result)
    except Exception as exc:  # noqa: BLE001 - reported, not fatal to the other suites
        return Outcome(section={"error": f"{type(exc).__name__}: {exc}"})


def report(outcome: Outcome, say) -> None:
    """Each run: requests/s, p50 and p99 against their targets, the server's RSS early and late."""
    if "error" in outcome.section:  # no run to describe: the lake or the server could not be prepared
        say()
        say(f"read API under load: FAILED: {outcome.section['error']}")
        return
    print_run(outcome.section, say)
    if outcome.section.get("uncached"):
        print_run(outcome.section["uncached"], say)


def load_test(lake_root: str, work: Path, seconds: int = SECONDS, clients: int = CLIENTS, say=print,
              cache: bool = True) -> dict[str, Any]:
    import psutil

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "ACTIVITYLOG_LAKE": lake_root, "ACTIVITYLOG_API_RATE": "1000000",
           "ACTIVITYLOG_API_CACHE": "1" if cache else "0"}
    params = json.loads(subprocess.run([sys.executable, "-c", "import sys, json, bench.api_load as a; "
                                        "print(json.dumps(a.prepare(sys.argv[1])))", lake_root],
                                       capture_output=True, text=True, check=True, cwd=root, env=env).stdout)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "activitylog"), "serve", "--port", str(port),
                               "--workers", str(WORKERS)],
                              cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import httpx

        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        process = psutil.Process(server.pid)
        say(f"- {clients} clients for {seconds} s against http://127.0.0.1:{port} (project {params['project']})")
        spec = {"base": f"http://127.0.0.1:{port}", "params": params, "seconds": seconds, "clients": clients}
        generator = subprocess.Popen([sys.executable, "-c", "import sys, bench.api_load as a; a.load(sys.argv[1])",
                                      json.dumps(spec)], cwd=root, env=env, stdout=subprocess.PIPE, text=True)
        rss = []
        while generator.poll() is None:
            rss.append(process.memory_info().rss + sum(child.memory_info().rss
                                                       for child in process.children(recursive=True)))
            time.sleep(1)
        result = json.loads(generator.stdout.read())
    finally:
        server.terminate()
        server.wait(timeout=30)
    third = max(1, len(rss) // 3)
    result.update({"rss_first_third_mib": max(rss[:third]) / 2**20 if rss else None,
                   "rss_last_third_mib": max(rss[-third:]) / 2**20 if rss else None,
                   "clients": clients, "seconds": seconds, "cache": cache})
    return result


def print_run(result: dict[str, Any], say) -> None:
    say()
    say(f"read API under load: {result['clients']} clients for {result['seconds']} s from a second process, "
        f"100-row pages of 30-day filtered queries ({WORKERS} workers, page cache "
        f"{'on' if result.get('cache', True) else 'OFF: every request queries the lake'})")
    if "p50" not in result or result["p50"] is None:
        say(f"  FAILED: {result}")
        return
    p50, p99 = result["p50"] * 1000, result["p99"] * 1000
    say(f"  requests {result['requests']:,} ({result['requests'] / result['seconds']:.0f}/s), errors {result['errors']}")
    say(f"  p50 {p50:.0f} ms (target <= 50) {'PASS' if p50 <= 50 else 'MISS'}; "
        f"p99 {p99:.0f} ms (target <= 250) {'PASS' if p99 <= 250 else 'MISS'}")
    say(f"  server RSS (all workers): first third of the run {result['rss_first_third_mib']:.0f} MiB, last third "
        f"{result['rss_last_third_mib']:.0f} MiB")
