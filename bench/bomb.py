"""Bench measurement: ingest of a gzip bomb (5 MB of gzip inflating to about 5 GB of zeros).

The file is refused by the landing caps (``ACTIVITYLOG_MAX_INFLATE_RATIO``, then
``ACTIVITYLOG_MAX_INFLATED_BYTES``): the measurement shows that it is refused in bounded memory and
seconds, with the ratio cap (the default) and with only the size cap left.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

from bench.harness import bench_ingest, measurement

BOMB_MB = 5000  # inflated size in MB


def write_bomb(path: Path, megabytes: int = BOMB_MB) -> Path:
    """A gzip file of ``megabytes`` MB of zero bytes (written in 1 MB blocks, never held whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = bytes(1_000_000)
    with gzip.open(path, "wb", compresslevel=9) as handle:
        for _ in range(megabytes):
            handle.write(block)
    return path


@measurement("bomb")
def measure(spec: dict[str, Any], profiler) -> dict[str, Any]:
    from transforms.lake import Lake

    ingest = bench_ingest()
    if spec.get("ratio"):
        os.environ["ACTIVITYLOG_MAX_INFLATE_RATIO"] = spec["ratio"]
    landing = Path(spec["landing"])
    with profiler.timed():
        report = ingest(Lake.at(spec["lake"]), str(landing))
    reasons = dict(report.quarantine_reasons)
    return {
        "rows": report.accepted,
        "notes": f"{(landing / 'bomb.jsonl.gz').stat().st_size / 1e6:.1f} MB gzip; "
                 f"quarantined {report.quarantined}: {'; '.join(reasons) or '-'}",
        "checks": [{"what": "the bomb is quarantined as one row", "ok": report.quarantined == 1,
                    "got": report.quarantined, "expected": 1}],
    }
