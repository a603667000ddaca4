"""`activitylog demo` as a newcomer runs it: a real process on a fresh directory and Dagster instance.

After it, the lake-wide checks have results in the instance (the UI shows them without a click), the
daily partitions start at the sample's first day (recorded for `make ui`), and the output is progress
plus the summary, not the run's engine log.
"""

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

ACTIVITYLOG = Path(sys.executable).parent / "activitylog"

pytestmark = [pytest.mark.slow, pytest.mark.local_lake]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    home = root / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIVITYLOG_")}
    env.update(DAGSTER_HOME=str(home), ACTIVITYLOG_LAKE=str(root / "data" / "lake"),
               ACTIVITYLOG_LANDING=str(root / "data" / "landing"))
    done = subprocess.run([str(ACTIVITYLOG), "demo", "--events", "1500", "--days", "4"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, home, done


def test_checks_have_results_after_the_demo(demo):
    root, home, done = demo
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        for asset, name in (("activity_raw", "unique_ids"), ("activity_digests", "integrity_chain")):
            key = dg.AssetCheckKey(dg.AssetKey(asset), name)
            records = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
            assert records, f"{asset}/{name} was never evaluated"
            assert records[0].status.value == "SUCCEEDED", (asset, name, records[0].status)
    finally:
        instance.dispose()
    assert "Event ids: each stored once (1,500 rows" in done.stdout
    assert "Integrity chain: 4 days, 1,500 events verify" in done.stdout


def test_partitions_start_at_the_samples_first_day(demo):
    root, _, done = demo
    first = datetime.now(timezone.utc).date() - timedelta(days=4)  # four days ending yesterday
    recorded = (root / "data" / "demo.mk").read_text()
    assert f"ACTIVITYLOG_START_DATE ?= {first.isoformat()}" in recorded
    assert f"daily partitions start {first}" in done.stdout
    # The definitions under that setting: partitions from the sample's first day, not from 2020.
    code = "from assets.partitions import daily_partitions as p; print(p.get_first_partition_key())"
    env = {**os.environ, "ACTIVITYLOG_START_DATE": first.isoformat()}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == first.isoformat(), out.stderr[-2000:]


def test_an_explicit_start_date_wins(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIVITYLOG_")}
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env.update(DAGSTER_HOME=str(home), ACTIVITYLOG_LAKE=str(tmp_path / "data" / "lake"),
               ACTIVITYLOG_LANDING=str(tmp_path / "data" / "landing"), ACTIVITYLOG_START_DATE="2024-01-01")
    done = subprocess.run([str(ACTIVITYLOG), "demo", "--events", "200", "--days", "2"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "data" / "demo.mk").exists()
    assert "daily partitions start" not in done.stdout


def test_output_is_progress_and_summary(demo):
    _, _, done = demo
    lines = done.stdout.splitlines()
    assert not [line for line in lines if " - dagster - " in line or "STEP_START" in line], lines
    # Per-day counters collapse to their last step when not on a terminal: four days, one line each stage.
    assert "  activity_log: [4/4] " in done.stdout and "[1/4]" not in done.stdout
    assert "  notify: [4/4] " in done.stdout
    assert len(lines) < 45, len(lines)


def test_every_table_the_demo_writes_is_in_the_catalog(demo):
    from transforms.tables import BY_NAME

    root, _, _ = demo
    lake = root / "data" / "lake"
    written = {p.parent.name for p in lake.glob("*/_delta_log")}
    assert {"activity_raw", "activity_log", "activity_digests", "merkle_leaves"} <= written
    assert written <= set(BY_NAME), written - set(BY_NAME)
