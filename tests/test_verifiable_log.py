"""The verifiable log wired into the pipeline: every ingest run (the real CLI, a subprocess) appends the
leaves of exactly its new events, signs a checkpoint and has the local witness cosign it; a kill at any
of its commits is repaired by the next run; ``activitylog verify`` names tampering (an edited payload, a
deleted event, a truncation, a fork, reordered leaves) and keeps passing with late events."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from tests.helpers.events import make_event, write_lines
from tests.helpers import ROOT
from tests.helpers.faults import ACTIVITYLOG, Workspace, commits_of, describe, killed_after
from transforms.checkpoints import MERKLE_CHECKPOINTS, Checkpoint, Signer, read_checkpoints, sign_checkpoint
from transforms.commitments import MERKLE_SALTS
from transforms.lake import ACTIVITY_RAW, Lake
from transforms.merkle import MERKLE_LEAVES, MERKLE_NODES, DeltaTree, MemoryTree, verify_consistency, verify_inclusion
from transforms.witness import CosignerKey, Witness, WitnessError, read_state

pytestmark = [pytest.mark.local_lake]

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


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Workspace:
    """Two ingest runs: the first events, then late and new ones (and a duplicate)."""
    workspace = Workspace(tmp_path_factory.mktemp("vlog") / "base")
    write_lines(workspace.landing / "a.jsonl", first_events())
    workspace.config.write_text("")
    ingest(workspace)
    write_lines(workspace.landing / "b.jsonl", late_events())
    ingest(workspace)
    return workspace


@pytest.fixture
def workspace(pristine, tmp_path) -> Workspace:
    return pristine.copy(tmp_path / "ws")


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


# --------------------------------------------------------------------------------------------- witness

def test_the_witness_refuses_what_does_not_extend_what_it_cosigned(tmp_path):
    witness = Witness(tmp_path / "w")
    log = Signer.generate("log")
    big = MemoryTree.from_leaves([b"%d" % i for i in range(10)])
    small = Checkpoint("log", 6, big.root(6))
    cosigned = witness.cosign(sign_checkpoint(small, log), log.verifier)
    assert witness.key.cosignature_time(cosigned) > 0
    with pytest.raises(WitnessError, match="checkpoint 4 is smaller than witnessed checkpoint 6"):
        witness.cosign(sign_checkpoint(Checkpoint("log", 4, big.root(4)), log), log.verifier)
    forked = MemoryTree.from_leaves([b"x%d" % i for i in range(10)])
    with pytest.raises(WitnessError, match="checkpoint 10 is inconsistent with witnessed checkpoint 6"):
        witness.cosign(sign_checkpoint(Checkpoint("log", 10, forked.root()), log), log.verifier,
                       forked.consistency_proof(6))
    with pytest.raises(WitnessError, match="two different roots for tree size 6"):
        witness.cosign(sign_checkpoint(Checkpoint("log", 6, forked.root(6)), log), log.verifier)
    other = Signer.generate("log")
    with pytest.raises(WitnessError, match="not signed by the key the witness knows"):
        witness.cosign(sign_checkpoint(Checkpoint("log", 10, big.root()), other), other.verifier,
                       big.consistency_proof(6))
    with pytest.raises(WitnessError, match="checkpoint refused: note not signed by a known key"):
        witness.cosign(sign_checkpoint(Checkpoint("log", 10, big.root()), other), log.verifier,
                       big.consistency_proof(6))
    assert read_state(tmp_path / "w")["log"].size == 6  # refusals leave the state as it was
    grown = witness.cosign(sign_checkpoint(Checkpoint("log", 10, big.root()), log), log.verifier,
                           big.consistency_proof(6))
    assert read_state(tmp_path / "w")["log"].note == grown
    # The cosignature is C2SP cosignature/v1: timestamped Ed25519 over the header, time and body.
    line = grown.rstrip("\n").splitlines()[-1]
    assert line.startswith("\u2014 activitylog-witness ")
    import base64

    raw = base64.b64decode(line.split(" ")[-1])
    assert raw[:4] == witness.key.key_id and len(raw) == 4 + 8 + 64


def test_a_damaged_witness_state_is_refused(tmp_path):
    witness = Witness(tmp_path / "w")
    log = Signer.generate("log")
    witness.cosign(sign_checkpoint(Checkpoint("log", 1, MemoryTree.from_leaves([b"a"]).root()), log), log.verifier)
    path = tmp_path / "w" / "state.json"
    doc = json.loads(path.read_text())
    doc["logs"]["log"]["size"] = 2
    path.write_text(json.dumps(doc))
    with pytest.raises(WitnessError, match="an entry does not match its cosigned checkpoint"):
        read_state(tmp_path / "w")
    doc["logs"]["log"]["size"] = 1
    doc["logs"]["log"]["note"] = doc["logs"]["log"]["note"].replace("\u2014 activitylog-witness", "\u2014 x")
    path.write_text(json.dumps(doc))
    with pytest.raises(WitnessError, match="no cosignature by witness activitylog-witness"):
        read_state(tmp_path / "w")


def test_keys_inside_the_lake_are_refused(tmp_path, monkeypatch):
    from transforms.tlog import LogError, extend_log

    monkeypatch.setenv("ACTIVITYLOG_STATE_DIR", str(tmp_path / "lake" / "state"))
    with pytest.raises(LogError, match="inside the lake root"):
        extend_log(Lake.at(tmp_path / "lake"))


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
    and the next run builds every leaf, each verifying against its event and salts."""
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
        tlog.append_pending(lake)
    assert DeltaTree(lake).size == 0 and lake.scan(MERKLE_SALTS) is None  # nothing stored
    monkeypatch.setattr(tlog, "build_leaves", real_build)
    assert tlog.append_pending(lake) == stored_events
    assert lake.version(MERKLE_SALTS) == 0  # one commit of salts for the three batches
    tree = DeltaTree(lake)
    leaves = tree.leaves()
    assert tree.size == stored_events and leaves["event_id"].n_unique() == stored_events
    salts = lake.scan(MERKLE_SALTS).collect()
    assert salts.select("event_id", "path").is_duplicated().sum() == 0
    payloads = dict(lake.scan(ACTIVITY_RAW).select("id", "payload").collect().iter_rows())
    for event_id, leaf_hash in leaves.select("event_id", "leaf_hash").iter_rows():  # each leaf: its event's
        event, event_salts = json.loads(payloads[event_id]), read_salts(lake, event_id)
        leaf = build_leaf(event, salts=event_salts)[0]
        assert hash_leaves([leaf]) == leaf_hash
        verify_event(event, leaf, event_salts)
