"""The verifiable log's local witness, directly: it refuses a checkpoint that does not extend what it
cosigned (smaller, inconsistent, a fork, another key), its cosignatures are C2SP cosignature/v1, a
damaged state is refused; keys kept inside the lake are refused."""

from __future__ import annotations

import json

import pytest

from transforms.checkpoints import Checkpoint, Signer, sign_checkpoint
from transforms.lake import Lake
from transforms.merkle import MemoryTree
from transforms.witness import Witness, WitnessError, read_state

pytestmark = [pytest.mark.local_lake]


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
