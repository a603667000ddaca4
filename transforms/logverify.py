"""``verify``'s checks of the verifiable log (called by :func:`transforms.integrity.verify`).

1. **Leaves**: ``merkle_leaves`` holds indexes 0…n-1 once each, one leaf per event; every event of
   ``activity_raw`` has a leaf and every leaf an event (but on days retention deleted, which
   ``activity_digests`` marks expired, or thinned, a digest version of reason ``retention``); each leaf hash equals the leaf recomputed from the stored
   payload and its salts (``merkle_salts``). Events an erasure rewrote (an ``erased-…`` pseudonym on a
   day with an ``erasure`` digest version) are not recomputed: their personal values are gone.
2. **Tree**: the nodes (``merkle_nodes``) give the root that the leaf hashes give.
3. **Checkpoints**: every stored checkpoint's signature holds (with the log's key: the one in
   ``ACTIVITYLOG_CHECKPOINT_KEY`` or the state directory's ``checkpoint.key``, or the one the witness
   recorded for the log), all name one origin, none is larger than the tree, each one's root is the
   tree's root at its size, and no two of one size differ (a fork).
4. **Witness**: the last checkpoint the witness cosigned for the log (its state, outside the lake) is a
   prefix of the tree, and it is the lake's newest checkpoint. Deleting the newest commits of the raw,
   leaf, node and checkpoint tables together leaves a tree that the witness's checkpoint is not a
   prefix of.

Each problem is one :class:`transforms.integrity.Problem` (table ``merkle_*``), the first bad thing
first; what could not be checked (no key, no witness state) is a note.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from transforms.checkpoints import CheckpointError, Checkpoint, Verifier, open_note, parse_note, read_checkpoints
from transforms.commitments import MERKLE_SALTS, build_leaves
from transforms.lake import ACTIVITY_RAW, Lake
from transforms.merkle import MERKLE_LEAVES, MERKLE_NODES, DeltaTree, MemoryTree, MerkleError, hash_leaves
from transforms.checkpoints import MERKLE_CHECKPOINTS

ERASED = re.compile(r"erased-[0-9a-f]{16}")
DAY_BATCH = 31


@dataclass
class LogFinding:
    day: date | None
    kind: str
    detail: str
    table: str


@dataclass
class LogReport:
    problems: list[LogFinding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    leaves: int = 0
    recomputed: int = 0


def _verifiers(witnessed) -> list[tuple[Verifier, bool]]:
    """The keys that may have signed the log's checkpoints, each with whether a checkpoint it did not
    sign is forged: ``ACTIVITYLOG_CHECKPOINT_KEY`` and the key the witness recorded for the log are; the
    state directory's own key only for checkpoints that name it (this state directory may belong to
    another lake)."""
    from transforms.checkpoints import CHECKPOINT_KEY_ENV
    from transforms.tlog import checkpoint_signer

    out = []
    try:
        signer = checkpoint_signer(create=False)
    except (CheckpointError, OSError, ValueError):
        signer = None
    if signer is not None:
        out.append((signer.verifier, bool(os.environ.get(CHECKPOINT_KEY_ENV))))
    if witnessed is not None:
        try:
            out.append((Verifier.from_vkey(witnessed.log_vkey), True))
        except CheckpointError:
            pass
    return out


def _witnessed(lake: Lake, origin: str | None, report: LogReport):
    from transforms.tlog import witness_dir
    from transforms.witness import WitnessError, read_state

    directory = witness_dir()
    if directory is None:
        report.notes.append("the local witness is off: not checked against a witness")
        return None
    try:
        state = read_state(directory)
    except WitnessError as error:
        report.problems.append(LogFinding(None, "witness state damaged", str(error), MERKLE_CHECKPOINTS))
        return None
    if origin is not None and origin in state:
        return state[origin]
    mine = [w for w in state.values() if w.lake == lake.root]
    if mine:
        return max(mine, key=lambda w: w.size)
    report.notes.append(f"the witness in {directory} has no record of this log: not checked against a witness")
    return None


def verify_log(lake: Lake, expired_days: set[date], erasure_days: set[date]) -> LogReport:
    """The checks of the module docs."""
    report = LogReport()
    for name in (MERKLE_LEAVES, MERKLE_NODES, MERKLE_CHECKPOINTS, MERKLE_SALTS):
        lake.forget(name)
    checkpoints = read_checkpoints(lake)
    origin = checkpoints["origin"][-1] if checkpoints.height else None
    witnessed = _witnessed(lake, origin, report)
    if lake.table(MERKLE_LEAVES) is None:
        if checkpoints.height or witnessed is not None:
            size = witnessed.size if witnessed is not None else checkpoints["tree_size"].max()
            report.problems.append(LogFinding(None, "leaves missing",
                                              f"there is no merkle_leaves table but a checkpoint of size {size}",
                                              MERKLE_LEAVES))
        else:
            report.notes.append("no verifiable log yet (the next ingest starts it)")
        return report
    leaves = lake.scan(MERKLE_LEAVES).select("index", "leaf_hash", "event_id", "day").collect().sort("index")
    tree = DeltaTree(lake)
    report.leaves = leaves.height
    _check_indexes(leaves, tree.size, report)
    if report.problems:
        return report
    _check_events(lake, leaves, expired_days, erasure_days, report)
    memory = MemoryTree()
    memory.append_hashes(b"".join(leaves["leaf_hash"].to_list()))
    try:
        stored_root = tree.root()
    except MerkleError as error:
        stored_root = None
        report.problems.append(LogFinding(None, "tree damaged", str(error), MERKLE_NODES))
    if stored_root is not None and stored_root != memory.root():
        report.problems.append(LogFinding(None, "tree altered", f"the stored nodes' root of tree size {tree.size} "
                                          "is not the root of the leaf hashes", MERKLE_NODES))
    _check_checkpoints(checkpoints, memory, _verifiers(witnessed), report)
    if witnessed is not None:
        _check_witness(checkpoints, memory, witnessed, report)
    return report


def _check_indexes(leaves: pl.DataFrame, size: int, report: LogReport) -> None:
    live = leaves.filter(pl.col("index") < size)
    if live.height != size or live["index"].n_unique() != size or (
            size and (live["index"].min() != 0 or live["index"].max() != size - 1)):
        report.problems.append(LogFinding(None, "leaves altered", f"merkle_leaves does not hold indexes 0…{size - 1} "
                                          f"once each ({live.height:,} rows)", MERKLE_LEAVES))
        return
    repeated = live.filter(pl.col("event_id").is_duplicated()).sort("index")
    if repeated.height:
        row = repeated.row(0, named=True)
        report.problems.append(LogFinding(row["day"], "leaf repeated", f"event {row['event_id']} has more than one "
                                          "leaf", MERKLE_LEAVES))


def _check_events(lake: Lake, leaves: pl.DataFrame, expired: set[date], erasure_days: set[date],
                  report: LogReport) -> None:
    raw_scan = lake.scan(ACTIVITY_RAW)
    ids = (raw_scan.select("id", "day").collect() if raw_scan is not None
           else pl.DataFrame(schema={"id": pl.String, "day": pl.Date}))
    keyed = leaves.select("index", pl.col("event_id").alias("id"), pl.col("day").alias("leaf_day"))
    without = ids.join(keyed, on="id", how="anti").sort("day", "id")
    if without.height:
        row = without.row(0, named=True)
        report.problems.append(LogFinding(row["day"], "event without a leaf",
                                          f"event {row['id']} of activity_raw has no leaf ({without.height:,} such "
                                          "events; an interrupted ingest's are appended by the next ingest)",
                                          MERKLE_LEAVES))
    gone = keyed.join(ids, on="id", how="anti").filter(~pl.col("leaf_day").is_in(sorted(expired))).sort("index")
    if gone.height:
        row = gone.row(0, named=True)
        report.problems.append(LogFinding(row["leaf_day"], "event deleted",
                                          f"leaf {row['index']} commits to event {row['id']}, which activity_raw no "
                                          f"longer holds ({gone.height:,} such leaves)", ACTIVITY_RAW))
    moved = keyed.join(ids, on="id", how="inner").filter(pl.col("day") != pl.col("leaf_day")).sort("index")
    if moved.height:
        row = moved.row(0, named=True)
        report.problems.append(LogFinding(row["day"], "event altered", f"event {row['id']} is on {row['day']}, its "
                                          f"leaf {row['index']} says {row['leaf_day']}", ACTIVITY_RAW))
    days = sorted(set(ids["day"].to_list()))
    for start in range(0, len(days), DAY_BATCH):
        batch = days[start:start + DAY_BATCH]
        raw = lake.read_days(ACTIVITY_RAW, batch, ["id", "day", "payload"])
        if raw is None or raw.height == 0:
            continue
        salts_table = lake.table(MERKLE_SALTS)
        salt_rows = (lake.read_days(MERKLE_SALTS, batch, ["event_id", "path", "salt"]) if salts_table is not None
                     else None)
        salts: dict[str, dict[str, bytes]] = {}
        if salt_rows is not None:
            for event_id, path, salt in salt_rows.iter_rows():
                salts.setdefault(event_id, {})[path] = salt
        joined = raw.join(leaves.select(pl.col("event_id").alias("id"), "index", "leaf_hash"), on="id", how="inner")
        erased = joined["day"].is_in(sorted(erasure_days)) & joined["payload"].str.contains(ERASED.pattern)
        checked = joined.filter(~erased).sort("index")
        if checked.height == 0:
            continue
        rebuilt, _ = build_leaves(checked["payload"], salts=[salts.get(i) or {} for i in checked["id"].to_list()])
        report.recomputed += checked.height
        hashes = hash_leaves(rebuilt)
        stored = checked["leaf_hash"].to_list()
        for position, expected in enumerate(stored):
            if hashes[position * 32:(position + 1) * 32] != expected:
                row = checked.row(position, named=True)
                report.problems.append(LogFinding(row["day"], "event altered",
                                                  f"event {row['id']} does not match its leaf {row['index']}",
                                                  ACTIVITY_RAW))
                break


def _check_checkpoints(checkpoints: pl.DataFrame, memory: MemoryTree, verifiers: list[tuple[Verifier, bool]],
                       report: LogReport) -> None:
    if checkpoints.height == 0:
        if memory.size:
            report.notes.append("the tree has no checkpoint yet")
        return
    unchecked = 0
    origins = set(checkpoints["origin"].to_list())
    if len(origins) > 1:
        report.problems.append(LogFinding(None, "checkpoints of two logs", f"origins {sorted(origins)}",
                                          MERKLE_CHECKPOINTS))
    roots: dict[int, bytes] = {}
    for row in checkpoints.iter_rows(named=True):
        size, note = row["tree_size"], row["note"]
        try:
            names = {sig.name for sig in parse_note(note)[1]}
            usable = [v for v, strict in verifiers if strict or v.name in names]
            if not usable:
                unchecked += 1
            text = open_note(note, usable)[0] if usable else parse_note(note)[0]
            body = Checkpoint.from_body(text)
        except CheckpointError as error:
            report.problems.append(LogFinding(None, "checkpoint forged", f"checkpoint {size}: {error}",
                                              MERKLE_CHECKPOINTS))
            continue
        if (body.size, body.root, body.origin) != (size, row["root_hash"], row["origin"]):
            report.problems.append(LogFinding(None, "checkpoint altered", f"checkpoint {size}: its row does not "
                                              "match its signed note", MERKLE_CHECKPOINTS))
            continue
        if size in roots and roots[size] != body.root:
            report.problems.append(LogFinding(None, "fork", f"two checkpoints of tree size {size} with different "
                                              "roots", MERKLE_CHECKPOINTS))
            continue
        roots[size] = body.root
        if size > memory.size:
            report.problems.append(LogFinding(None, "tree truncated", f"the tree holds {memory.size:,} leaves, "
                                              f"checkpoint {size} more", MERKLE_LEAVES))
        elif memory.root(size) != body.root:
            report.problems.append(LogFinding(None, "inconsistent", f"the tree is inconsistent with checkpoint "
                                              f"{size} (its root at that size differs)", MERKLE_LEAVES))
    if unchecked:
        report.notes.append(f"{unchecked} checkpoint signature(s) not checked: no key for them here "
                            "(ACTIVITYLOG_CHECKPOINT_KEY, the state directory's checkpoint.key, the witness)")


def _check_witness(checkpoints: pl.DataFrame, memory: MemoryTree, witnessed, report: LogReport) -> None:
    size = witnessed.size
    origin = checkpoints["origin"][-1] if checkpoints.height else None
    if origin is not None and origin != witnessed.origin:
        report.problems.append(LogFinding(None, "not witnessed", f"checkpoint not witnessed: the witness cosigned "
                                          f"log {witnessed.origin} (size {size}) for this lake, its checkpoints "
                                          f"name {origin}", MERKLE_CHECKPOINTS))
        return
    if size > memory.size:
        report.problems.append(LogFinding(None, "truncated", f"inconsistent with witnessed checkpoint {size}: the "
                                          f"tree holds only {memory.size:,} leaves", MERKLE_LEAVES))
        return
    if memory.root(size) != witnessed.root:
        report.problems.append(LogFinding(None, "inconsistent", f"inconsistent with witnessed checkpoint {size}: "
                                          "the tree's root at that size differs", MERKLE_LEAVES))
        return
    newest = int(checkpoints["tree_size"][-1]) if checkpoints.height else None
    if newest is None or newest < size:
        report.problems.append(LogFinding(None, "checkpoint missing", f"checkpoint not witnessed: the witness "
                                          f"cosigned checkpoint {size}, the lake's newest is {newest}",
                                          MERKLE_CHECKPOINTS))
    elif newest > size:
        report.problems.append(LogFinding(None, "not witnessed", f"checkpoint {newest} not witnessed (the "
                                          f"witness's last is {size}; the next ingest asks it)", MERKLE_CHECKPOINTS))
