"""The verifiable log wired into the pipeline: every ingest run (the real CLI, a subprocess) appends the
leaves of exactly its new events, signs a checkpoint and has the local witness cosign it; a kill at any
of its commits is repaired by the next run; leaves are built in batches and stored in one commit each;
`activitylog prove` gives inclusion and consistency proofs against the witnessed checkpoint."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from datetime import date

import polars as pl
import pytest

from tests.helpers import ROOT
from tests.helpers.events import write_lines
from tests.helpers.faults import ACTIVITYLOG, Workspace, commits_of, describe, killed_after
from tests.helpers.verifiable_log import first_events, ingest, late_events, state, verify
from transforms.checkpoints import MERKLE_CHECKPOINTS, Checkpoint, Signer, read_checkpoints
from transforms.commitments import MERKLE_SALTS
from transforms.lake import ACTIVITY_RAW, Lake
from transforms.merkle import MERKLE_LEAVES, MERKLE_NODES, DeltaTree, verify_consistency, verify_inclusion
from transforms.witness import CosignerKey, read_state


pytestmark = [pytest.mark.local_lake]


# ------------------------------------------------------------------------------------ what ingest builds


def test_each_ingest_run_appends_exactly_its_new_events_in_order_signs_and_is_witnessed(workspace):
    lake = Lake.at(workspace.lake)
    raw = lake.scan(ACTIVITY_RAW).select("id", "ingested_at", "source", "line").collect()
    tree = DeltaTree(lake)
    leaves = tree.leaves()
    assert tree.size == raw.height == 12  # 9 + 3 new (the copied line is a duplicate)
    assert leaves["index"].to_list() == list(range(12))
    assert leaves["event_id"].n_unique() == 12
    expected = raw.sort("ingested_at", "source", "line")["id"].to_list()
    assert leaves["event_id"].to_list() == expected  # ingest order; late events appended, not inserted
    assert set(leaves["event_id"][:9]) == {e["id"] for e in first_events()}

    checkpoints = read_checkpoints(lake)
    assert checkpoints["tree_size"].to_list() == [9, 12]  # one per run that grew the tree
    origin = checkpoints["origin"][0]
    assert origin.startswith("activitylog/") and checkpoints["origin"].n_unique() == 1
    body = Checkpoint.from_body(checkpoints["note"][-1].split("\n\n")[0] + "\n")
    assert (body.size, body.root) == (12, tree.root())

    key = state(workspace) / "checkpoint.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    signer = Signer.from_text(key.read_text())
    from transforms.checkpoints import verify_checkpoint

    assert verify_checkpoint(checkpoints["note"][-1], signer.verifier, origin).size == 12
    assert workspace.lake not in key.parents

    witness_dir = state(workspace) / "witness"
    witnessed = read_state(witness_dir)[origin]
    assert (witnessed.size, witnessed.root) == (12, tree.root())
    cosigner = CosignerKey.from_vkey((witness_dir / "witness.vkey").read_text())
    assert cosigner.cosignature_time(witnessed.note) > 0
    assert stat.S_IMODE((witness_dir / "witness.key").stat().st_mode) == 0o600

    # Personal data is only in salted commitments; salts are kept per event and field.
    salts = lake.scan(MERKLE_SALTS).collect()
    assert set(salts["event_id"]) == set(raw["id"])
    assert salts.filter(pl.col("event_id") == "evt-00")["path"].sort().to_list()[:2] == [
        "/detail/changes/1/after", "/detail/changes/1/before"]

    done = verify(workspace)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_run_with_nothing_new_adds_no_leaf_and_no_checkpoint(workspace):
    ingest(workspace)
    lake = Lake.at(workspace.lake)
    assert DeltaTree(lake).size == 12
    assert read_checkpoints(lake)["tree_size"].to_list() == [9, 12]


def test_a_leaf_has_an_inclusion_proof_to_the_witnessed_checkpoint(workspace):
    lake = Lake.at(workspace.lake)
    tree = DeltaTree(lake)
    origin = read_checkpoints(lake)["origin"][-1]
    witnessed = read_state(state(workspace) / "witness")[origin]
    index = tree.index_of("late-1")
    verify_inclusion(index, witnessed.size, tree.leaf_hash_at(index), tree.inclusion_proof(index, witnessed.size),
                     witnessed.root)
    verify_consistency(9, 12, tree.root(9), witnessed.root, tree.consistency_proof(9, 12))


# --------------------------------------------------------------------------------------- crash recovery

@pytest.mark.slow
def test_a_kill_at_any_commit_of_the_log_step_is_repaired_by_the_next_run(tmp_path):
    """SIGKILL right after each commit to activity_raw and the merkle tables (the real CLI), run
    again: the tree holds each accepted event exactly once and verify passes."""
    base = Workspace(tmp_path / "base")
    write_lines(base.landing / "a.jsonl", first_events())
    base.config.write_text("")
    ingest(base)
    write_lines(base.landing / "b.jsonl", late_events())
    commits, clean = commits_of(base, "ingest", scratch=tmp_path / "counted")
    assert clean.returncode == 0, clean.stderr[-2000:]
    tables = [c.table for c in commits]
    for table in (ACTIVITY_RAW, MERKLE_SALTS, MERKLE_LEAVES, MERKLE_NODES, MERKLE_CHECKPOINTS):
        assert table in tables, describe(commits)
    # The log's commits come after activity_raw's, in this order.
    order = [t for t in tables if t.startswith("merkle_")]
    assert order == [MERKLE_SALTS, MERKLE_LEAVES, MERKLE_NODES, MERKLE_CHECKPOINTS], describe(commits)
    points = [c.number for c in commits if c.table in (ACTIVITY_RAW, MERKLE_SALTS, MERKLE_LEAVES, MERKLE_NODES,
                                                       MERKLE_CHECKPOINTS)]
    for n in points:
        copy = base.copy(tmp_path / f"kill-{n}")
        killed_after(copy, n, "ingest")
        ingest(copy)
        lake = Lake.at(copy.lake)
        raw_ids = lake.scan(ACTIVITY_RAW).select("id").collect()["id"]
        tree = DeltaTree(lake)
        leaves = tree.leaves()
        where = f"killed after commit {n} of [{describe(commits)}]"
        assert tree.size == raw_ids.len() == 12, where
        assert leaves["event_id"].n_unique() == 12 and set(leaves["event_id"]) == set(raw_ids), where
        salts = lake.scan(MERKLE_SALTS).collect()
        assert salts.select("event_id", "path").is_duplicated().sum() == 0, where  # salts stored once
        done = verify(copy)
        assert done.returncode == 0, (where, done.stdout, done.stderr)


# ---------------------------------------------------------------------------------------------- proofs


def prove(workspace: Workspace, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ACTIVITYLOG), "prove", *args], env=workspace.env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_prove_gives_an_inclusion_proof_against_the_witnessed_checkpoint(workspace):
    import base64

    done = prove(workspace, "late-1")
    assert done.returncode == 0, done.stdout + done.stderr
    proof = json.loads(done.stdout)
    assert proof["tree_size"] == 12 and proof["event_id"] == "late-1"
    unb = base64.b64decode
    verify_inclusion(proof["leaf_index"], 12, unb(proof["leaf_hash"]), [unb(p) for p in proof["proof"]],
                     unb(proof["root_hash"]))
    witness = CosignerKey.from_vkey((state(workspace) / "witness" / "witness.vkey").read_text())
    assert witness.cosignature_time(proof["checkpoint"]) > 0
    from transforms.checkpoints import verify_checkpoint

    body = verify_checkpoint(proof["checkpoint"], proof["log_key"], read_checkpoints(Lake.at(workspace.lake))["origin"][0])
    assert body.root == unb(proof["root_hash"])

    missing = prove(workspace, "no-such-event")
    assert missing.returncode == 1 and missing.stderr.strip() == "activitylog prove: event no-such-event has no leaf in the log"


def test_prove_consistency_between_two_sizes(workspace):
    import base64

    done = prove(workspace, "--consistency", "9", "12")
    assert done.returncode == 0, done.stdout + done.stderr
    proof = json.loads(done.stdout)
    unb = base64.b64decode
    verify_consistency(9, 12, unb(proof["old_root_hash"]), unb(proof["new_root_hash"]), [unb(p) for p in proof["proof"]])
    assert unb(proof["new_root_hash"]) == DeltaTree(Lake.at(workspace.lake)).root()
    bad = prove(workspace, "--consistency", "12", "9")
    assert bad.returncode == 2 and "OLD ≤ NEW" in bad.stderr
    beyond = prove(workspace, "--consistency", "1", "13")
    assert beyond.returncode == 2 and "(the tree's size)" in beyond.stderr


def test_prove_without_a_witnessed_checkpoint_fails(workspace):
    shutil.rmtree(state(workspace) / "witness")
    done = prove(workspace, "evt-00")
    assert done.returncode == 1 and "no witnessed checkpoint" in done.stderr, done.stderr


def test_leaves_built_in_batches_are_stored_in_one_commit_each_and_a_stop_midway_leaves_nothing(tmp_path, monkeypatch):
    """The log step builds leaves a batch at a time (bounded memory) and stores the run's salts and
    leaves in one commit each, as with one batch; a run stopped between two batches stored nothing,
    and the next run (its batches in worker processes) builds every leaf in ingest order, each
    verifying against its event and salts."""
    from transforms import tlog
    from transforms.commitments import build_leaf, read_salts, verify_event
    from transforms.ingest import ingest as ingest_files
    from transforms.merkle import hash_leaves
    from transforms.validate import ValidationSettings

    lake = Lake.at(tmp_path / "lake")
    landing = tmp_path / "landing"
    write_lines(landing / "a.jsonl", first_events() + late_events())
    with monkeypatch.context() as patch:  # raw events without leaves yet
        patch.setattr(tlog, "extend_log", lambda *args, **kwargs: tlog.LogStep())
        ingest_files(lake, str(landing), ValidationSettings(start_date=date(2020, 1, 1)))
    monkeypatch.setattr(tlog, "LEAF_BATCH", 5)
    stored_events = lake.scan(ACTIVITY_RAW).select(pl.len()).collect().item()  # one id sent twice: stored once
    assert stored_events > 2 * tlog.LEAF_BATCH  # three batches
    real_build = tlog.build_leaves
    calls = []

    def stop_at_the_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("stopped between two batches")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(tlog, "build_leaves", stop_at_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        tlog.append_pending(lake, workers=1)
    assert DeltaTree(lake).size == 0 and lake.scan(MERKLE_SALTS) is None  # nothing stored
    monkeypatch.setattr(tlog, "build_leaves", real_build)
    # The next run builds the batches in two worker processes; the leaves are stored in ingest order.
    order = tlog.pending_events(lake, DeltaTree(lake))["id"].to_list()
    assert tlog.append_pending(lake, workers=2) == stored_events
    assert lake.version(MERKLE_SALTS) == 0  # one commit of salts for the three batches
    tree = DeltaTree(lake)
    leaves = tree.leaves()
    assert tree.size == stored_events and leaves["event_id"].n_unique() == stored_events
    assert leaves.sort("index")["event_id"].to_list() == order
    salts = lake.scan(MERKLE_SALTS).collect()
    assert salts.select("event_id", "path").is_duplicated().sum() == 0
    payloads = dict(lake.scan(ACTIVITY_RAW).select("id", "payload").collect().iter_rows())
    for event_id, leaf_hash in leaves.select("event_id", "leaf_hash").iter_rows():  # each leaf: its event's
        event, event_salts = json.loads(payloads[event_id]), read_salts(lake, event_id)
        leaf = build_leaf(event, salts=event_salts)[0]
        assert hash_leaves([leaf]) == leaf_hash
        verify_event(event, leaf, event_salts)
