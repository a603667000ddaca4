"""The verifiable log's tests (tests/verifiable_log/): the events of two ingest runs (the first nine
over three days, then late and new ones and a copy), a workspace after those two runs of the real CLI, its
state directory (the checkpoint key and the witness), and `activitylog verify` and `ingest` run on it."""

from __future__ import annotations

import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from tests.helpers import ROOT
from tests.helpers.events import make_event, write_lines
from tests.helpers.faults import ACTIVITYLOG, Workspace

TODAY = datetime.now(timezone.utc).date()
DAYS = [TODAY - timedelta(days=d) for d in (5, 4, 3)]
ZOE = {"id": 7, "uuid": "uuid-zoe", "email": "zoe@example.org", "first_name": "Zoe", "last_name": "Log"}


def at(day: date, hour: int) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00Z"


def first_events() -> list[dict]:
    out = []
    for n in range(9):
        event = make_event(id=f"evt-{n:02d}", created_at=at(DAYS[n % 3], 8 + n))
        if n % 4 == 0:
            event["user"] = dict(ZOE)
            event["detail"]["changes"].append({"type": "User", "action": "changed", "field": "email",
                                               "before": "zoe.old@example.org", "after": ZOE["email"]})
        if n == 5:
            event["detail"]["changes"][0]["after"] = 1.5  # a float: the exact RFC 8785 path
        out.append(event)
    return out


def late_events() -> list[dict]:
    """New events, two of them late (on the first day), one a copy of an earlier line."""
    late = [make_event(id=f"late-{n}", created_at=at(DAYS[0], 20 + n)) for n in range(2)]
    return late + [make_event(id="new-0", created_at=at(TODAY, 1)), first_events()[0]]


def state(workspace: Workspace) -> Path:
    return workspace.root / "dagster" / "activitylog"


def verify(workspace: Workspace, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``activitylog verify`` as an operator runs it: with the workspace's environment (its state
    directory: the checkpoint key and the witness)."""
    return subprocess.run([str(ACTIVITYLOG), "verify", "--lake", str(workspace.lake), *args],
                          env={**workspace.env(), **(env or {})}, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def ingest(workspace: Workspace) -> subprocess.CompletedProcess:
    done = workspace.run("ingest")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def two_runs(root: Path) -> Workspace:
    """A workspace at ``root`` after two ingest runs: the first events, then late and new ones (and a duplicate)."""
    workspace = Workspace(root)
    write_lines(workspace.landing / "a.jsonl", first_events())
    workspace.config.write_text("")
    ingest(workspace)
    write_lines(workspace.landing / "b.jsonl", late_events())
    ingest(workspace)
    return workspace
