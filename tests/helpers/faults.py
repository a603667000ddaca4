"""Fault injection for the recovery tests: run the real CLI as a subprocess, learn which Delta commits a
command makes, kill it (SIGKILL) right after its N-th commit, run it again, and check the lake.

The hook is ``transforms.lake.committed`` (every Delta commit of the process passes through it):
``ACTIVITYLOG_FAULT_COMMIT_LOG=PATH`` logs each commit, ``ACTIVITYLOG_FAULT_KILL_AFTER_COMMIT=N`` kills
the process after the N-th. Both are test-only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import polars as pl

from tests.helpers import ROOT
from transforms.lake import COMMIT_LOG_ENV, KILL_AFTER_ENV

ACTIVITYLOG = Path(sys.executable).parent / "activitylog"

#: Which commits to kill after, ``ACTIVITYLOG_FAULT_POINTS``: ``all`` (every commit of the command),
#: ``steps`` (the last commit of each step — consecutive commits to one table — the first time each
#: step follows the one before it: a second refresh run repeats the first one's boundaries), or, by
#: default, ``sample``: at most SAMPLE of the ``steps`` points, spread over the command, which keeps the
#: harness within a few minutes.
MODE = os.environ.get("ACTIVITYLOG_FAULT_POINTS", "sample")
SAMPLE = int(os.environ.get("ACTIVITYLOG_FAULT_SAMPLE", "3"))


@dataclass
class Commit:
    number: int
    operation: str
    table: str


@dataclass
class Workspace:
    """A lake, landing area, Dagster home and configuration file under one directory (copied per kill)."""

    root: Path

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def config(self) -> Path:
        return self.root / "activitylog.yaml"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ACTIVITYLOG_", "AWS_")) and k != "DAGSTER_HOME"}
        env.update({"ACTIVITYLOG_LAKE": str(self.lake), "ACTIVITYLOG_LANDING": str(self.landing),
                    "ACTIVITYLOG_CONFIG": str(self.config), "DAGSTER_HOME": str(self.root / "dagster"),
                    "ACTIVITYLOG_START_DATE": "2020-01-01", "ACTIVITYLOG_LANDING_QUIET_PERIOD": "0"})
        env.update(extra or {})
        return env

    def copy(self, to: Path) -> "Workspace":
        shutil.copytree(self.root, to, symlinks=True)
        return Workspace(to)

    def run(self, *args: str, extra: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(ACTIVITYLOG), *args, "--quiet"] if args[0] in QUIET_COMMANDS else
                              [str(ACTIVITYLOG), *args], env=self.env(extra), cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)


QUIET_COMMANDS = {"ingest", "backfill", "notify", "stream", "retention", "erase-user"}


def commits_of(workspace: Workspace, *args: str, scratch: Path) -> tuple[list[Commit], subprocess.CompletedProcess]:
    """Run the command on a copy of ``workspace`` with the commit log on: its commits, in order."""
    copy = workspace.copy(scratch)
    log = scratch.parent / f"{scratch.name}.commits"
    result = copy.run(*args, extra={COMMIT_LOG_ENV: str(log)})
    commits = []
    if log.exists():
        for line in log.read_text().splitlines():
            _pid, number, operation, table = line.split("\t")
            commits.append(Commit(int(number), operation, table))
    return commits, result


def kill_points(commits: list[Commit]) -> list[int]:
    """The commit numbers to kill after (see MODE)."""
    if MODE == "all":
        return [c.number for c in commits]
    steps, seen = [], set()
    for index, commit in enumerate(commits):
        if index + 1 < len(commits) and commits[index + 1].table == commit.table:
            continue  # not the last commit of its step
        previous = index - 1
        while previous >= 0 and commits[previous].table == commit.table:
            previous -= 1
        transition = (commits[previous].table if previous >= 0 else None, commit.table)
        if transition not in seen:
            seen.add(transition)
            steps.append(commit.number)
    if MODE == "steps" or len(steps) <= SAMPLE:
        return steps
    # Spread over the command: the first (nothing but the intent written), the last, and between.
    picks = {steps[round(i * (len(steps) - 1) / (SAMPLE - 1))] for i in range(SAMPLE)}
    return sorted(picks)


def killed_after(workspace: Workspace, n: int, *args: str) -> subprocess.CompletedProcess:
    """Run the command with a kill after its n-th commit; it must have died by SIGKILL."""
    result = workspace.run(*args, extra={KILL_AFTER_ENV: str(n)})
    assert result.returncode == -9, (n, result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    return result


def describe(commits: list[Commit]) -> str:
    return ", ".join(f"{c.number}:{c.table}" for c in commits)


# ----------------------------------------------------------------------------------------------
# What must hold after any run that finished
# ----------------------------------------------------------------------------------------------

def check_consistent(lake_dir: Path) -> None:
    """activity_raw holds no id twice; every derived table holds exactly raw's events, day by day; no
    day is stale and no digest intent is left open; ``activitylog verify`` passes."""
    from transforms.checks import expected_change_rows
    from transforms.history import ACTIVITY_ITEM_HISTORY
    from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_EVENTS, ACTIVITY_LOG, ACTIVITY_RAW, Lake
    from transforms.recovery import open_intents, stale_days

    lake = Lake.at(lake_dir)
    for name in (ACTIVITY_RAW, ACTIVITY_EVENTS, ACTIVITY_LOG, ACTIVITY_CHANGES, ACTIVITY_ITEM_HISTORY):
        lake.forget(name)
    raw = lake.scan(ACTIVITY_RAW).select("day", "id").collect()
    assert raw["id"].n_unique() == raw.height, "an event is stored twice"
    expected = raw.sort("day", "id")
    for name in (ACTIVITY_EVENTS, ACTIVITY_LOG):
        frame = lake.scan(name)
        rows = pl.DataFrame(schema=expected.schema) if frame is None else frame.select("day", "id").collect()
        assert rows.sort("day", "id").equals(expected), f"{name} differs from activity_raw"
    days = sorted(set(raw["day"].to_list()))
    changes = lake.scan(ACTIVITY_CHANGES)
    change_rows = 0 if changes is None else changes.select(pl.len()).collect().item()
    assert change_rows == expected_change_rows(lake, days), "activity_changes differs from the raw details"
    log = lake.scan(ACTIVITY_LOG)
    with_item = set() if log is None else set(log.filter(pl.col("item_id").is_not_null()).select("id").collect()["id"])
    history = lake.scan(ACTIVITY_ITEM_HISTORY)
    history_ids = [] if history is None else history.select("id").collect()["id"].to_list()
    assert sorted(history_ids) == sorted(with_item), "activity_item_history differs from activity_log"
    assert stale_days(lake) == [], f"stale days left: {stale_days(lake)}"
    assert open_intents(lake).height == 0, f"open digest intents left: {open_intents(lake)}"
    verify = subprocess.run([str(ACTIVITYLOG), "verify", "--lake", str(lake_dir)], capture_output=True, text=True,
                            timeout=120, env={k: v for k, v in os.environ.items() if not k.startswith("ACTIVITYLOG_")})
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]


def ledger_accounting(lake_dir: Path) -> dict[str, int]:
    """Totals over every ``ingest_ledger`` row, each row checked: lines = accepted + duplicates + quarantined."""
    from transforms.lake import INGEST_LEDGER, Lake

    ledger = Lake.at(lake_dir).scan(INGEST_LEDGER).collect()
    unbalanced = ledger.filter(pl.col("lines") != pl.col("accepted") + pl.col("duplicates") + pl.col("quarantined"))
    assert unbalanced.height == 0, unbalanced
    return {c: int(ledger[c].sum()) for c in ("lines", "accepted", "duplicates", "quarantined")}


@contextmanager
def appends_fail(monkeypatch, table: str) -> Iterator[None]:
    """Within the block, ``Lake.append`` to ``table`` raises ``RuntimeError("simulated crash")`` (an
    in-process crash at that commit, e.g. before the ingest's ledger row); every other table is written."""
    from transforms.lake import Lake

    real_append = Lake.append

    def crash(self, name, frame, **kwargs):
        if name == table:
            raise RuntimeError("simulated crash")
        return real_append(self, name, frame, **kwargs)

    monkeypatch.setattr(Lake, "append", crash)
    try:
        yield
    finally:
        monkeypatch.setattr(Lake, "append", real_append)
