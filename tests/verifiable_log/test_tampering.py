"""The verifiable log against tampering: ``activitylog verify`` (the real CLI) names an edited payload or
personal field, a deleted event, a truncation, a fork, reordered leaves, a forged checkpoint signature
and a checkpoint the witness did not cosign, and keeps passing with late events."""

from __future__ import annotations

import os
import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from tests.helpers.events import make_event, write_lines
from tests.helpers.faults import Workspace
from tests.helpers.verifiable_log import DAYS, at, ingest, state, verify
from transforms.checkpoints import MERKLE_CHECKPOINTS, Checkpoint, Signer, read_checkpoints, sign_checkpoint
from transforms.commitments import MERKLE_SALTS
from transforms.lake import ACTIVITY_RAW, Lake
from transforms.merkle import MERKLE_LEAVES, MERKLE_NODES, DeltaTree, MemoryTree
from transforms.witness import Witness


pytestmark = [pytest.mark.local_lake]


def problems(workspace: Workspace):
    """The verifiable log's findings, as verify computes them (in this process, the workspace's
    environment)."""
    from transforms.integrity import verify as verify_lake

    saved = dict(os.environ)
    os.environ.update({k: v for k, v in workspace.env().items() if k in ("DAGSTER_HOME",)})
    try:
        report = verify_lake(Lake.at(workspace.lake))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return report


# ------------------------------------------------------------------------------------------- tampering


def _failing(workspace: Workspace, expected: str) -> None:
    report = problems(workspace)
    found = [str(p) for p in report.problems if p.table and p.table.startswith(("merkle_", ACTIVITY_RAW))
             and expected in str(p)]
    assert found, [str(p) for p in report.problems]
    done = verify(workspace)
    assert done.returncode == 1, done.stdout + done.stderr
    assert expected in done.stdout, done.stdout  # every problem, one TAMPERED line each
    first = report.first()
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and first.kind in done.stderr, done.stderr


def _rewrite_day(workspace: Workspace, day: date, change) -> None:
    lake = Lake.at(workspace.lake)
    rows = lake.read_days(ACTIVITY_RAW, [day])
    lake.replace_days(ACTIVITY_RAW, [day], change(rows))


def test_one_edited_payload_byte_is_named(workspace):
    def edit(rows: pl.DataFrame) -> pl.DataFrame:
        return rows.with_columns(pl.when(pl.col("id") == "evt-03").then(
            pl.col("payload").str.replace('"updated"', '"updatex"', literal=True)).otherwise(pl.col("payload")))

    _rewrite_day(workspace, DAYS[0], edit)
    _failing(workspace, "event evt-03 does not match its leaf 3")


def test_an_edited_personal_field_is_named(workspace):
    def edit(rows: pl.DataFrame) -> pl.DataFrame:
        return rows.with_columns(pl.when(pl.col("id") == "evt-04").then(
            pl.col("payload").str.replace("zoe@example.org", "zoa@example.org", literal=True))
            .otherwise(pl.col("payload")))

    _rewrite_day(workspace, DAYS[1], edit)
    _failing(workspace, "event evt-04 does not match its leaf 4")


def test_a_deleted_event_is_named(workspace):
    _rewrite_day(workspace, DAYS[2], lambda rows: rows.filter(pl.col("id") != "evt-05"))
    _failing(workspace, "leaf 5 commits to event evt-05, which activity_raw no longer holds")


def _delete_newest_commit(lake_dir: Path, table: str) -> None:
    log = lake_dir / table / "_delta_log"
    commits = sorted(log.glob("*.json"))
    assert len(commits) > 1 and not list(log.glob("*.checkpoint*.parquet"))
    commits[-1].unlink()


def test_a_truncation_of_raw_leaves_nodes_and_checkpoints_together_is_named(workspace):
    for table in (ACTIVITY_RAW, MERKLE_SALTS, MERKLE_LEAVES, MERKLE_NODES, MERKLE_CHECKPOINTS):
        _delete_newest_commit(workspace.lake, table)
    lake = Lake.at(workspace.lake)
    assert DeltaTree(lake).size == 9 and read_checkpoints(lake)["tree_size"].to_list() == [9]
    _failing(workspace, "inconsistent with witnessed checkpoint 12: the tree holds only 9 leaves")


def test_a_fork_is_named(workspace):
    """A second checkpoint of the same size with another root, signed with the log's own key."""
    lake = Lake.at(workspace.lake)
    rows = read_checkpoints(lake)
    signer = Signer.from_text((state(workspace) / "checkpoint.key").read_text())
    other = MemoryTree.from_leaves([f"other-{i}".encode() for i in range(12)]).root()
    note = sign_checkpoint(Checkpoint(rows["origin"][-1], 12, other), signer)
    lake.append(MERKLE_CHECKPOINTS, pl.DataFrame({
        "tree_size": [12], "root_hash": [other], "origin": [rows["origin"][-1]], "note": [note],
        "signed_at": [datetime.now(timezone.utc)]}, schema=rows.schema))
    _failing(workspace, "fork: two checkpoints of tree size 12 with different roots")


def test_reordered_leaves_are_named(workspace):
    lake = Lake.at(workspace.lake)
    leaves = lake.scan(MERKLE_LEAVES).collect()
    swapped = leaves.with_columns(pl.when(pl.col("index") == 1).then(2).when(pl.col("index") == 2).then(1)
                                  .otherwise(pl.col("index")).alias("index"))
    swapped.write_delta(lake.uri(MERKLE_LEAVES), mode="overwrite")
    _failing(workspace, "tree altered: the stored nodes' root of tree size 12 is not the root of the leaf hashes")


def test_a_forged_checkpoint_signature_is_named(workspace):
    lake = Lake.at(workspace.lake)
    rows = read_checkpoints(lake)
    forger = Signer.generate(Signer.from_text((state(workspace) / "checkpoint.key").read_text()).name)
    tree = DeltaTree(lake)
    note = sign_checkpoint(Checkpoint(rows["origin"][-1], 12, tree.root()), forger)
    lake.append(MERKLE_CHECKPOINTS, pl.DataFrame({
        "tree_size": [12], "root_hash": [tree.root()], "origin": [rows["origin"][-1]], "note": [note],
        "signed_at": [datetime.now(timezone.utc)]}, schema=rows.schema))
    _failing(workspace, "checkpoint forged: checkpoint 12: note not signed by a known key")


def test_a_checkpoint_the_witness_did_not_cosign_is_named(workspace):
    (state(workspace) / "witness" / "state.json").unlink()
    done = verify(workspace)
    assert done.returncode == 0, done.stdout + done.stderr  # a witness that knows nothing: not checked
    shutil.rmtree(state(workspace) / "witness")
    witness = Witness(state(workspace) / "witness")
    lake = Lake.at(workspace.lake)
    tree = DeltaTree(lake)
    signer = Signer.from_text((state(workspace) / "checkpoint.key").read_text())
    note = read_checkpoints(lake)["note"][0]  # the witness saw only the first run
    witness.cosign(note, signer.verifier, lake=lake.root)
    assert tree.size == 12
    _failing(workspace, "checkpoint 12 not witnessed (the witness's last is 9")


@pytest.mark.slow
def test_late_events_keep_verify_passing_and_extend_the_log(workspace):
    write_lines(workspace.landing / "c.jsonl", [make_event(id="later-0", created_at=at(DAYS[0], 23))])
    ingest(workspace)
    lake = Lake.at(workspace.lake)
    assert DeltaTree(lake).size == 13 and DeltaTree(lake).index_of("later-0") == 12
    done = verify(workspace)
    assert done.returncode == 0, done.stdout + done.stderr
