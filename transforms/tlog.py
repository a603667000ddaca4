"""The verifiable log's step of every ingest run: leaves of the newly accepted events, a signed
checkpoint, a cosignature by the local witness.

After an ingest's ``activity_raw`` commits, :func:`extend_log` (one at a time: a tree has one writer)

1. finds the events that ``activity_raw`` holds without a leaf (:func:`pending_events`): the rows
   ingested after the newest leaf was appended (``ingested_at`` past the newest ``appended_at`` minus
   :data:`CLOCK_SLACK`, read only from the files whose statistics say they hold such rows), less those
   that have a leaf among the leaves appended in the same window. An interrupted run's events are found
   by the next run the same way, so each accepted event gets exactly one leaf;
2. builds their leaves (:func:`transforms.commitments.build_leaves`) in ingest order (``ingested_at``,
   landing file, line), reusing the salts an interrupted attempt stored, and commits, in this order,
   the new salts (``merkle_salts``), the leaves and the nodes (``merkle_leaves``, ``merkle_nodes``);
3. signs a checkpoint of the tree (``merkle_checkpoints``) when the tree differs from the latest one;
4. asks the local witness (:mod:`transforms.witness`) to cosign the latest checkpoint.

Keys and state live outside the lake, in the state directory (:func:`state_dir`:
``ACTIVITYLOG_STATE_DIR``, else ``$DAGSTER_HOME/activitylog``, else ``./data/dagster/activitylog``):
``checkpoint.key`` (the log's signing key, generated once, mode 0600, unless
``ACTIVITYLOG_CHECKPOINT_KEY`` holds one) and ``witness/`` (``ACTIVITYLOG_WITNESS_DIR`` moves it;
``ACTIVITYLOG_WITNESS=off`` turns the local witness off). Each lake's log has its own origin,
``activitylog/<random id>``, chosen at its first checkpoint.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import secrets
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator

import polars as pl

from transforms.checkpoints import (
    create_key_file,
    CHECKPOINT_KEY_ENV, CheckpointError, Checkpoint, Signer, checkpoint_tree, parse_note, read_checkpoints,
    verify_checkpoint,
)
from transforms.commitments import MERKLE_SALTS, build_leaves, salts_frame, write_salts
from transforms.lake import ACTIVITY_RAW, Lake, is_remote
from transforms.merkle import MERKLE_LEAVES, DeltaTree
from transforms.witness import Witness, WitnessError

STATE_DIR_ENV = "ACTIVITYLOG_STATE_DIR"
WITNESS_DIR_ENV = "ACTIVITYLOG_WITNESS_DIR"
WITNESS_ENV = "ACTIVITYLOG_WITNESS"
KEY_FILE = "checkpoint.key"
KEY_NAME = "activitylog"
ORIGIN_PREFIX = "activitylog/"
#: How far back (before the newest leaf's ``appended_at``) the search for events without a leaf reaches:
#: room for a wall clock set back a little between two runs.
CLOCK_SLACK = timedelta(hours=1)


class LogError(Exception):
    """The verifiable log cannot be extended (a key in the lake, a checkpoint that does not verify)."""


def state_dir() -> Path:
    """Where the checkpoint key and the local witness live (outside the lake)."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve()
    home = os.environ.get("DAGSTER_HOME") or "./data/dagster"
    return Path(home).expanduser().resolve() / "activitylog"


def witness_dir() -> Path | None:
    """The local witness's directory, or None when it is turned off."""
    if os.environ.get(WITNESS_ENV, "on").strip().lower() in ("off", "0", "false", "no"):
        return None
    explicit = os.environ.get(WITNESS_DIR_ENV)
    return Path(explicit).expanduser().resolve() if explicit else state_dir() / "witness"


def _outside_lake(lake: Lake, path: Path) -> None:
    if is_remote(lake.root):
        return
    root = Path(lake.root).resolve()
    if path == root or root in path.parents:
        raise LogError(f"{path} is inside the lake root {root}: keys and witness state must live outside it "
                       f"(set {STATE_DIR_ENV} or DAGSTER_HOME elsewhere)")


def checkpoint_signer(lake: Lake | None = None, *, create: bool = True) -> Signer | None:
    """The log's signer: ``ACTIVITYLOG_CHECKPOINT_KEY`` (``PRIVATE+KEY+…`` or PEM), else the key file in
    the state directory, generated once (mode 0600) when ``create``."""
    value = os.environ.get(CHECKPOINT_KEY_ENV)
    if value:
        return Signer.from_text(value, name=KEY_NAME)
    path = state_dir() / KEY_FILE
    if lake is not None:
        _outside_lake(lake, path)
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        create_key_file(path, f"{KEY_NAME}-{secrets.token_hex(4)}")
    return Signer.from_text(path.read_text())


def log_origin(lake: Lake) -> str | None:
    """The origin of the lake's log (from its newest checkpoint), None before the first."""
    rows = read_checkpoints(lake)
    return None if rows.height == 0 else rows["origin"][-1]


# ---------------------------------------------------------------------------------- pending events

PENDING_COLUMNS = ["id", "day", "payload", "ingested_at", "source", "line"]


def _files_since(lake: Lake, name: str, column: str, since: datetime | None) -> list[tuple[str, object]]:
    """``(path, day partition or None)`` of the table's live files that may hold rows with ``column`` ≥
    ``since`` (by their statistics; a file without statistics is always read)."""
    actions = lake.add_actions(name)
    if actions.height == 0:
        return []
    high = f"max.{column}"
    day = "partition.day" if "partition.day" in actions.columns else None
    rows = actions.select("path", pl.col(day) if day else pl.lit(None).alias("partition.day"),
                          pl.col(high) if high in actions.columns else pl.lit(None).alias(high))
    if since is not None:
        rows = rows.filter(pl.col(high).is_null() | (pl.col(high).cast(pl.Datetime("us", "UTC")) >= since))
    return list(rows.select("path", "partition.day").iter_rows())


def _read_files(lake: Lake, name: str, files: list[tuple[str, object]], columns: list[str],
               ids: pl.Series | None = None) -> pl.DataFrame | None:
    """``columns`` of the rows of ``files`` (those whose ``id`` is in ``ids``, when given), and ``_file``:
    the file each row is in. One scan of all the files (a scan per file costs more than the read), the
    ``day`` of a partitioned table taken from each file's partition value."""
    if not files:
        return None
    root = lake.uri(name)
    paths = pl.DataFrame({"_file": [f"{root}/{path}" for path, _ in files],
                          "day": [day for _, day in files]}, schema={"_file": pl.String, "day": pl.Date})
    partitioned = paths["day"].is_not_null().any()
    frame = pl.scan_parquet(paths["_file"].to_list(), storage_options=lake.storage_options or None,
                            hive_partitioning=False, include_file_paths="_file", missing_columns="insert")
    if ids is not None:
        frame = frame.filter(pl.col("id").is_in(ids.implode()))
    stored = [c for c in columns if c != "day" or not partitioned]
    frame = frame.select(*stored, "_file")
    if partitioned and "day" in columns:
        frame = frame.join(paths.lazy(), on="_file", how="left")
    return frame.select(*columns, "_file").collect()


def pending_events(lake: Lake, tree: DeltaTree) -> pl.DataFrame:
    """``activity_raw`` rows without a leaf in ``tree`` (see the module docs), in ingest order. Which
    rows is decided on their ids and ingest times; only those rows' payloads are read (right after a
    large ingest, every row is within the look-back window, and nearly all have their leaves)."""
    empty = pl.DataFrame(schema={"id": pl.String, "day": pl.Date, "payload": pl.String,
                                 "ingested_at": pl.Datetime("us", "UTC"), "source": pl.String, "line": pl.Int64})
    since = None
    if tree.size:
        newest = tree.leaves(tree.size - 1, tree.size)
        since = newest["appended_at"][0] - CLOCK_SLACK
    files = _files_since(lake, ACTIVITY_RAW, "ingested_at", since)
    keys = [c for c in PENDING_COLUMNS if c != "payload"]
    raw = _read_files(lake, ACTIVITY_RAW, files, keys)
    if raw is None or raw.height == 0:
        return empty
    raw = raw.cast({c: empty.schema[c] for c in keys})  # type: ignore[arg-type]
    if since is not None:
        raw = raw.filter(pl.col("ingested_at") >= since)
        leaves = _read_files(lake, MERKLE_LEAVES, _files_since(lake, MERKLE_LEAVES, "appended_at", since),
                             ["index", "event_id"])
        if leaves is not None:
            leafed = leaves.filter(pl.col("index") < tree.size).select(pl.col("event_id").alias("id"))
            raw = raw.join(leafed, on="id", how="anti")
    raw = raw.unique("id", keep="first").sort("ingested_at", "source", "line", "id")
    if raw.height == 0:
        return empty
    # The payloads of those rows only, read from the files that hold them: (file, id, source, line)
    # names one stored row.
    holding = set(raw["_file"].unique().to_list())
    located = _read_files(lake, ACTIVITY_RAW, [(p, d) for p, d in files if f"{lake.uri(ACTIVITY_RAW)}/{p}" in holding],
                          ["id", "source", "line", "payload"], ids=raw["id"])
    located = located.cast({"line": pl.Int64, "payload": pl.String})
    return (raw.join(located, on=["_file", "id", "source", "line"], how="left", maintain_order="left",
                     nulls_equal=True)
            .select(list(empty.schema)))


# ------------------------------------------------------------------------------------------ the step

@dataclass
class LogStep:
    appended: int = 0
    size: int = 0
    checkpoint: str | None = None  #: the newest signed checkpoint (with the witness's cosignature if any)
    witnessed: bool = False
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {"leaves_appended": self.appended, "tree_size": self.size, "witnessed": self.witnessed}


@contextmanager
def _one_writer(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / "log.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stored_salts(lake: Lake, events: pl.DataFrame) -> dict[str, dict[str, bytes]]:
    """Salts an interrupted attempt already stored for these events (event id → path → salt)."""
    scan = lake.scan(MERKLE_SALTS)
    if scan is None or events.height == 0:
        return {}
    rows = (scan.filter(pl.col("day").is_in(events["day"].unique().to_list()))
            .join(events.select(pl.col("id").alias("event_id")).lazy(), on="event_id", how="semi")
            .select("event_id", "path", "salt").collect())
    out: dict[str, dict[str, bytes]] = {}
    for event_id, path, salt in rows.iter_rows():
        out.setdefault(event_id, {})[path] = salt
    return out


#: Events whose leaves are built at a time (bounded memory); salts and leaves are stored once per run.
LEAF_BATCH = 50_000
#: Processes that build leaves when a run has more than one batch (one per core, at most 4); building
#: a leaf is Python work per event, so processes, not threads.
LEAF_WORKERS = max(1, min(4, os.cpu_count() or 1))


def _leaf_batch(batch: pl.DataFrame, stored: list | None) -> tuple[list[bytes], pl.DataFrame]:
    """One batch's leaves (ingest order) and its new salt rows (not those an earlier attempt stored)."""
    built, salts = build_leaves(batch["payload"], salts=stored)
    fresh = zip(batch["id"].to_list(), batch["day"].to_list(), salts, stored or repeat(None))
    return built, salts_frame((i, d, s) for i, d, s, earlier in fresh if s and earlier is None)


def _built_batches(events: pl.DataFrame, stored: dict[str, dict[str, bytes]],
                   workers: int) -> Iterator[tuple[list[bytes], pl.DataFrame]]:
    """``(leaves, new salt rows)`` of each batch, in order. With more than one batch and ``workers`` > 1,
    the batches are built in that many worker processes (spawned: Polars' threads do not survive a
    fork), at most one batch ahead of the workers, so the payloads are not all copied at once."""
    def task(batch: pl.DataFrame):
        return (batch.select("id", "day", "payload"),
                [stored.get(i) for i in batch["id"].to_list()] if stored else None)

    batches = events.iter_slices(LEAF_BATCH)
    if workers < 2 or events.height <= LEAF_BATCH:
        for batch in batches:
            yield _leaf_batch(*task(batch))
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        running: deque = deque()
        for batch in batches:
            running.append(pool.submit(_leaf_batch, *task(batch)))
            if len(running) > workers:
                yield running.popleft().result()
        while running:
            yield running.popleft().result()


def append_pending(lake: Lake, tree: DeltaTree | None = None, *, workers: int | None = None) -> int:
    """Append the leaves of every event without one (steps 1–2 of the module docs); their count."""
    tree = tree or DeltaTree(lake)
    events = pending_events(lake, tree)
    if events.height == 0:
        return 0
    stored = _stored_salts(lake, events)
    leaves: list[bytes] = []
    new_salts: list[pl.DataFrame] = []
    for built, salts in _built_batches(events, stored, LEAF_WORKERS if workers is None else workers):
        leaves += built
        new_salts.append(salts)  # kept as Arrow, not Python objects
    # One commit of salts (a file per day), then the leaves: a run stopped in between leaves salts
    # that the next run reuses for the same events.
    write_salts(lake, pl.concat(new_salts))
    tree.append(leaves, events["id"], events["day"])
    return events.height


def _sign(lake: Lake, tree: DeltaTree, signer: Signer) -> str:
    """The newest checkpoint, signing a new one first when the tree has changed since."""
    rows = read_checkpoints(lake)
    origin = rows["origin"][-1] if rows.height else f"{ORIGIN_PREFIX}{secrets.token_hex(8)}"
    if rows.height:
        latest = verify_checkpoint(rows["note"][-1], signer.verifier, origin)
        if latest.size == tree.size and latest.root == tree.root():
            return rows["note"][-1]
    return checkpoint_tree(tree, signer, origin, lake=lake)


def ask_witness(lake: Lake, tree: DeltaTree, note: str, signer: Signer, directory: Path) -> str:
    """Have the witness in ``directory`` cosign ``note``; the cosigned note."""
    _outside_lake(lake, directory)
    witness = Witness(directory)
    checkpoint = Checkpoint.from_body(parse_note(note)[0])
    last = witness.last(checkpoint.origin)
    proof: list[bytes] = []
    if last is not None and last.size <= checkpoint.size:
        proof = tree.consistency_proof(last.size, checkpoint.size)
    return witness.cosign(note, signer.verifier, proof, lake=lake.root)


def extend_log(lake: Lake, say: Callable[[str], None] | None = None) -> LogStep:
    """The ingest run's verifiable-log step (see the module docs)."""
    say = say or (lambda _message: None)
    step = LogStep()
    signer = checkpoint_signer(lake)
    with _one_writer(state_dir()):
        tree = DeltaTree(lake)
        step.appended = append_pending(lake, tree)
        step.size = tree.size
        try:
            note = _sign(lake, tree, signer)
        except CheckpointError as error:
            step.warnings.append(f"no checkpoint signed: {error}")
            say(f"WARNING no checkpoint signed: {error}")
            return step
        step.checkpoint = note
        directory = witness_dir()
        if directory is not None:
            try:
                step.checkpoint = ask_witness(lake, tree, note, signer, directory)
                step.witnessed = True
            except WitnessError as error:
                step.warnings.append(f"the witness refused checkpoint {tree.size}: {error}")
                say(f"WARNING the witness refused checkpoint {tree.size}: {error}")
    say(f"verifiable log: {step.appended:,} leaves appended, tree size {step.size:,}"
        + (", checkpoint witnessed" if step.witnessed else ""))
    return step


# ------------------------------------------------------------------------------------------- proofs

class ProofError(Exception):
    """No proof can be given (the event has no leaf, or no witnessed checkpoint covers it)."""


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def witnessed_checkpoint(lake: Lake):
    """What the local witness last cosigned for the lake's log (:class:`transforms.witness.Witnessed`)."""
    from transforms.witness import read_state

    directory = witness_dir()
    origin = log_origin(lake)
    if directory is None or origin is None:
        raise ProofError("no witnessed checkpoint: the log has no checkpoint or the local witness is off")
    found = read_state(directory).get(origin)
    if found is None:
        raise ProofError(f"no witnessed checkpoint: the witness in {directory} has not cosigned log {origin}")
    return found


def prove_inclusion(lake: Lake, event_id: str) -> dict:
    """The inclusion proof (RFC 9162 §2.1.3) of an event's leaf in the latest witnessed checkpoint,
    checked here before it is returned."""
    from transforms.merkle import verify_inclusion

    witnessed = witnessed_checkpoint(lake)
    tree = DeltaTree(lake)
    index = tree.index_of(event_id)
    if index is None:
        raise ProofError(f"event {event_id} has no leaf in the log")
    if index >= witnessed.size:
        raise ProofError(f"event {event_id} (leaf {index}) is not in the witnessed checkpoint {witnessed.size} "
                         "yet: the next ingest has it witnessed")
    leaf = tree.leaf_hash_at(index)
    proof = tree.inclusion_proof(index, witnessed.size)
    verify_inclusion(index, witnessed.size, leaf, proof, witnessed.root)
    return {"event_id": event_id, "leaf_index": index, "tree_size": witnessed.size, "leaf_hash": _b64(leaf),
            "proof": [_b64(p) for p in proof], "root_hash": _b64(witnessed.root), "checkpoint": witnessed.note,
            "log_key": witnessed.log_vkey}


def prove_consistency(lake: Lake, old: int, new: int) -> dict:
    """The consistency proof (RFC 9162 §2.1.4) between tree sizes ``old`` ≤ ``new`` of the lake's tree,
    checked here before it is returned."""
    from transforms.merkle import verify_consistency

    tree = DeltaTree(lake)
    if not 0 <= old <= new <= tree.size:
        raise ValueError(f"sizes must satisfy 0 ≤ OLD ≤ NEW ≤ {tree.size} (the tree's size)")
    proof = tree.consistency_proof(old, new)
    old_root, new_root = tree.root(old), tree.root(new)
    verify_consistency(old, new, old_root, new_root, proof)
    return {"old_size": old, "new_size": new, "old_root_hash": _b64(old_root), "new_root_hash": _b64(new_root),
            "proof": [_b64(p) for p in proof]}
