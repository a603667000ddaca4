"""Tamper evidence: a per-day SHA-256 digest chain over ``activity_raw``, like CloudTrail's digest files.

For each day: ``day_hash`` = SHA-256 over the day's events sorted by id, each contributing
``id TAB sha256(payload) LF`` (the payload is the verbatim line). The day's ``digest`` =
SHA-256 of ``day|version|events|day_hash|previous_digest``, where ``previous_digest`` is the latest
digest of the nearest earlier day when it was computed (64 zeros for the first). Optionally signed:
HMAC-SHA256 with ``ACTIVITYLOG_DIGEST_HMAC_KEY``, or Ed25519 with ``ACTIVITYLOG_DIGEST_ED25519_KEY``
(a PEM private key); verification then needs the same key (or, for Ed25519, the public key).

``activity_digests`` is append-only. A day that changes (late events, retention of some of its rows,
erasure) gets a new *version*, with a ``reason``; earlier versions stay, and the later days' links to
them stay valid. A day deleted by retention keeps its digest, in a new row marked ``expired``.

:func:`verify` recomputes every day from ``activity_raw`` and checks every digest row and link. It
names the first bad day and the kind of tampering: a row changed, removed or inserted; a day removed or
inserted; a digest altered, a link broken, a signature wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Iterable

import polars as pl

from transforms.lake import ACTIVITY_RAW, Lake

ACTIVITY_DIGESTS = "activity_digests"
GENESIS = "0" * 64
HMAC_ENV = "ACTIVITYLOG_DIGEST_HMAC_KEY"
ED25519_ENV = "ACTIVITYLOG_DIGEST_ED25519_KEY"
DIGEST_SCHEMA = {
    "day": pl.Date, "version": pl.Int32, "events": pl.Int64, "day_hash": pl.String, "previous_day": pl.Date,
    "previous_digest": pl.String, "digest": pl.String, "reason": pl.String, "expired": pl.Boolean,
    "signature": pl.String, "signature_kind": pl.String, "computed_at": pl.Datetime("us", "UTC"),
}


def day_hashes(raw: pl.DataFrame) -> dict[date, tuple[str, int]]:
    """day → (day_hash, events) for rows with ``day, id, payload``."""
    out: dict[date, tuple[str, int]] = {}
    for (day,), rows in raw.sort("day", "id").group_by("day", maintain_order=True):
        digest = hashlib.sha256()
        for event_id, payload in zip(rows["id"].to_list(), rows["payload"].to_list()):
            digest.update(f"{event_id}\t{hashlib.sha256(payload.encode()).hexdigest()}\n".encode())
        out[day] = (digest.hexdigest(), rows.height)
    return out


def chain_digest(day: date, version: int, events: int, day_hash: str, previous_digest: str) -> str:
    return hashlib.sha256(f"{day.isoformat()}|{version}|{events}|{day_hash}|{previous_digest}".encode()).hexdigest()


def _sign(digest: str) -> tuple[str | None, str]:
    if os.environ.get(ED25519_ENV):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = load_pem_private_key(os.environ[ED25519_ENV].encode(), password=None)
        return key.sign(digest.encode()).hex(), "ed25519"
    if os.environ.get(HMAC_ENV):
        return hmac.new(os.environ[HMAC_ENV].encode(), digest.encode(), hashlib.sha256).hexdigest(), "hmac-sha256"
    return None, "none"


def _signature_problem(row: dict) -> str | None:
    kind, signature = row["signature_kind"], row["signature"]
    if kind == "none":
        return None
    if kind == "hmac-sha256":
        key = os.environ.get(HMAC_ENV)
        if not key:
            return None  # cannot check without the key; the chain is still checked
        expected = hmac.new(key.encode(), row["digest"].encode(), hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(expected, signature or "") else "signature does not match (HMAC)"
    if kind == "ed25519":
        pem = os.environ.get(ED25519_ENV)
        if not pem:
            return None
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            load_pem_private_key(pem.encode(), password=None).public_key().verify(
                bytes.fromhex(signature or ""), row["digest"].encode())
        except (InvalidSignature, ValueError):
            return "signature does not match (Ed25519)"
        return None
    return f"unknown signature kind {kind!r}"


def digests(lake: Lake) -> pl.DataFrame:
    frame = lake.scan(ACTIVITY_DIGESTS)
    return pl.DataFrame(schema=DIGEST_SCHEMA) if frame is None else frame.collect()


def latest(rows: pl.DataFrame) -> pl.DataFrame:
    """The latest row of each day."""
    return rows.sort("day", "version", "computed_at").group_by("day", maintain_order=True).last()


def update_digests(lake: Lake, days: Iterable[date], reason: str | dict[date, str] = "ingest", *,
                   expire: Iterable[date] = ()) -> list[dict]:
    """Append a new digest version for each of ``days`` whose content changed (and an ``expired`` row
    for each of ``expire``), in day order, chaining each to the latest digest of the day before.
    ``reason`` is one reason for every day, or one per day. Commands call this through
    :func:`transforms.recovery.finish_digests`, which adds what interrupted runs owe."""
    from transforms.lake import ACTIVITY_RAW

    day_list = sorted(set(days))
    expired = sorted(set(expire))
    if not day_list and not expired:
        return []
    existing = digests(lake)
    current = {row["day"]: row for row in latest(existing).iter_rows(named=True)} if existing.height else {}
    raw = lake.read_days(ACTIVITY_RAW, day_list, columns=["day", "id", "payload"]) if day_list else None
    hashes = day_hashes(raw) if raw is not None and raw.height else {}
    now = datetime.now(timezone.utc)
    new_rows = []
    for day in sorted(set(day_list) | set(expired)):
        before = current.get(day)
        if day in expired:
            if before is None or before["expired"]:
                continue
            # The same digest (and version, which it covers), marked expired: later days' links still hold.
            new_rows.append({**before, "reason": "retention (day deleted)", "expired": True, "computed_at": now})
            current[day] = new_rows[-1]
            continue
        day_hash, events = hashes.get(day, (hashlib.sha256(b"").hexdigest(), 0))
        if before is not None and before["day_hash"] == day_hash and not before["expired"]:
            continue  # unchanged
        earlier = [d for d in current if d < day]
        previous_day = max(earlier) if earlier else None
        previous_digest = current[previous_day]["digest"] if previous_day else GENESIS
        version = (before["version"] + 1) if before else 1
        digest = chain_digest(day, version, events, day_hash, previous_digest)
        signature, kind = _sign(digest)
        why = reason.get(day, "ingest") if isinstance(reason, dict) else reason
        row = {"day": day, "version": version, "events": events, "day_hash": day_hash, "previous_day": previous_day,
               "previous_digest": previous_digest, "digest": digest, "reason": why if before is None else
               ("late events" if why == "ingest" else why), "expired": False, "signature": signature,
               "signature_kind": kind, "computed_at": now}
        new_rows.append(row)
        current[day] = row
    if new_rows:
        lake.append(ACTIVITY_DIGESTS, pl.DataFrame(new_rows, schema=DIGEST_SCHEMA))
    return new_rows


@dataclass
class Problem:
    day: date | None
    kind: str
    detail: str
    #: The table a damaged file or log belongs to (None for a disagreement between the data and the chain).
    table: str | None = None

    def __str__(self) -> str:
        where = " ".join(x for x in (self.table, self.day.isoformat() if self.day else None) if x) or "-"
        return f"{where}: {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    days: int = 0
    events: int = 0
    digest_rows: int = 0
    problems: list[Problem] = field(default_factory=list)
    leaves: int = 0  #: leaves of the verifiable log checked
    log_notes: list[str] = field(default_factory=list)  #: what the verifiable log's checks could not check

    @property
    def ok(self) -> bool:
        return not self.problems

    def first(self) -> Problem | None:
        return min(self.problems, key=lambda p: (p.day or date.min)) if self.problems else None


def verify(lake: Lake, days: Iterable[date] | None = None) -> VerifyReport:
    """Recompute the chain (every day, or only ``days`` plus every link) against ``activity_raw``.

    Damage is evidence too, never a crash: a Delta log that cannot be read (a commit missing, empty or
    not JSON, a checkpoint gone) is one problem naming the table; a data file that is missing, has
    another size than its log entry or does not decode is one problem naming the table, the day (for
    ``activity_raw``) and the file. With the chain itself unreadable, the days are not compared with it
    (every day would differ) but ``activity_raw``'s files are still checked.
    """
    report = VerifyReport()
    lake.forget(ACTIVITY_RAW)
    lake.forget(ACTIVITY_DIGESTS)
    digest_files, problem = _live_files(lake, ACTIVITY_DIGESTS)
    rows = pl.DataFrame(schema=DIGEST_SCHEMA)
    if problem is None and digest_files is not None:
        frames, broken = _read_files(lake, ACTIVITY_DIGESTS, digest_files, list(DIGEST_SCHEMA))
        problem = broken[0] if broken else None
        if frames:
            rows = pl.concat(frames, how="vertical_relaxed").cast(DIGEST_SCHEMA)  # type: ignore[arg-type]
    raw_files, raw_problem = _live_files(lake, ACTIVITY_RAW)
    if problem is not None:  # without the whole chain, comparing days to it would only add noise
        report.problems.append(problem)
        if raw_problem is not None:
            report.problems.append(raw_problem)
        elif raw_files is not None:  # still name activity_raw's broken files
            for batch in _day_batches(raw_files, sorted(set(raw_files["day"].to_list()))):
                report.problems.extend(_read_files(lake, ACTIVITY_RAW, raw_files.filter(pl.col("day").is_in(batch)),
                                                   ["id"])[1])
        return report
    report.digest_rows = rows.height
    known_digests: set[str] = set()
    # Every digest row: its digest recomputes, its signature holds, its link names an earlier digest.
    for row in rows.sort("computed_at", "day", "version").iter_rows(named=True):
        recomputed = chain_digest(row["day"], row["version"], row["events"], row["day_hash"], row["previous_digest"])
        if recomputed != row["digest"]:
            report.problems.append(Problem(row["day"], "digest altered",
                                           f"version {row['version']}: the stored digest does not match its fields"))
        problem = _signature_problem(row)
        if problem:
            report.problems.append(Problem(row["day"], "digest altered", f"version {row['version']}: {problem}"))
        if row["previous_digest"] != GENESIS and row["previous_digest"] not in known_digests:
            report.problems.append(Problem(row["day"], "chain broken",
                                           f"version {row['version']} links to a digest that is not in the chain"))
        known_digests.add(row["digest"])
    # Every day: the data recomputes to the latest digest.
    current = {row["day"]: row for row in latest(rows).iter_rows(named=True)} if rows.height else {}
    if raw_problem is not None:
        report.problems.append(raw_problem)
        return report
    if raw_files is None:  # no activity_raw at all
        covered = [row for row in current.values() if not row["expired"] and row["events"]]
        if covered:
            report.problems.append(Problem(None, "table missing", f"there is no activity_raw table; the digests "
                                           f"cover {sum(r['events'] for r in covered):,} events over "
                                           f"{len(covered)} days", table=ACTIVITY_RAW))
            return report
        raw_files = _NO_FILES
    raw_days = sorted(set(raw_files["day"].to_list()))
    wanted = set(days) if days is not None else set(raw_days) | set(current)
    for day in sorted(set(raw_days) - set(current)):
        if day in wanted:
            report.problems.append(Problem(day, "day inserted",
                                           "activity_raw holds a day that has no digest in activity_digests"))
    sizes = _stored_sizes(lake, ACTIVITY_RAW)
    for batch in _day_batches(raw_files, sorted(wanted & set(raw_days))):
        raw, broken = _read_days(lake, raw_files.filter(pl.col("day").is_in(batch)), sizes)
        report.problems.extend(broken)
        unreadable = {p.day for p in broken}
        hashes = day_hashes(raw) if raw is not None and raw.height else {}
        for day in batch:
            if day in unreadable:
                continue
            day_hash, events = hashes.get(day, (hashlib.sha256(b"").hexdigest(), 0))
            report.days += 1
            report.events += events
            expected = current.get(day)
            if expected is None:
                continue
            if expected["expired"]:
                if events:
                    report.problems.append(Problem(day, "row inserted", f"{events} rows in a day retention deleted"))
                continue
            if day_hash != expected["day_hash"]:
                kind = ("row removed" if events < expected["events"] else
                        "row inserted" if events > expected["events"] else "row changed")
                report.problems.append(Problem(day, kind, f"{events} rows now, {expected['events']} when digested "
                                                          f"(version {expected['version']})"))
    for day, expected in sorted(current.items()):
        if day in wanted and day not in raw_days and not expected["expired"] and expected["events"]:
            report.problems.append(Problem(day, "day removed",
                                           f"activity_raw has no rows for it; its digest covers {expected['events']}"))
    # The verifiable log (transforms/logverify.py), lake-wide; it reads activity_raw's files, so with a
    # file or table already found unreadable that problem is the one named (a damaged file is not read).
    if days is None and not any(p.kind in ("data file unreadable", "table unreadable") for p in report.problems):
        _verify_log(lake, rows, current, report)
    return report


def _verify_log(lake: Lake, rows: pl.DataFrame, current: dict, report: VerifyReport) -> None:
    from transforms.logverify import verify_log

    expired = {day for day, row in current.items() if row["expired"]}
    if rows.height:  # days where retention deleted some rows (its policies differ within the day)
        expired |= set(rows.filter(pl.col("reason") == "retention")["day"].to_list())
    erasure = set(rows.filter(pl.col("reason") == "erasure")["day"].to_list()) if rows.height else set()
    log, failure = _guarded(lambda: verify_log(lake, expired, erasure))
    if failure is not None:
        report.problems.append(Problem(None, "verifiable log unreadable", failure, table="merkle_leaves"))
        return
    report.log_notes = log.notes
    report.leaves = log.leaves
    report.problems.extend(Problem(p.day, p.kind, p.detail, table=p.table) for p in log.problems)


# ------------------------------------------------------------------------------------------------
# verify's readers: a damaged table is a named problem, never an exception

_NO_FILES = pl.DataFrame(schema={"path": pl.String, "size": pl.Int64, "rows": pl.Int64, "day": pl.Date})
_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?(?:\.[^.]+)?\.(?:parquet|json)$")


def _guarded(call):
    """``(value, None)``, or ``(None, "Type: first line")`` for any failure, including a Rust panic in
    delta-rs or Polars: ``pyo3_runtime.PanicException`` derives from BaseException, not Exception (each
    extension module has its own such class, so it is recognised by name)."""
    try:
        return call(), None
    except Exception as exc:  # noqa: BLE001 - evidence, not a crash
        return None, _first_line(exc)
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        return None, _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line[:200]}"


def _filesystem(lake: Lake):
    """A pyarrow filesystem for the lake and the lake root's path on it."""
    import pyarrow.fs as pafs

    from transforms.lake import is_remote

    if is_remote(lake.root):
        from transforms.landing import _s3_filesystem

        return _s3_filesystem(), lake.root.split("://", 1)[1]
    return pafs.LocalFileSystem(), lake.root


def _log_problem(lake: Lake, name: str) -> tuple[bool, Problem | None]:
    """:func:`_check_log`, once more when it finds a problem: a concurrent checkpoint may have cleaned
    up old commits between the listing and the reading of them."""
    found = _check_log(lake, name)
    return found if found[1] is None else _check_log(lake, name)


def _check_log(lake: Lake, name: str) -> tuple[bool, Problem | None]:
    """``(exists, problem)``: whether the table exists, and what is wrong with its Delta log, checked
    from the listing before delta-rs reads it. delta-rs reads the newest checkpoint and every commit
    after it; those must be there, contiguous, and each line of each commit a JSON object. (A deleted
    *newest* commit leaves a valid older version: the chain then finds the days it changed.)"""
    import pyarrow.fs as pafs

    def damaged(detail: str) -> tuple[bool, Problem]:
        return True, Problem(None, "Delta log damaged", detail, table=name)

    fs, root = _filesystem(lake)
    table_dir, log_dir = f"{root}/{name}", f"{root}/{name}/_delta_log"
    infos, error = _guarded(lambda: fs.get_file_info([table_dir, log_dir]))
    if error:
        return True, Problem(None, "table unreadable", error, table=name)
    if infos[0].type == pafs.FileType.NotFound:
        return False, None
    if infos[1].type != pafs.FileType.Directory:
        others, _ = _guarded(lambda: fs.get_file_info(pafs.FileSelector(table_dir, recursive=True)))
        if not others:
            return False, None  # an empty directory: no table was ever written there
        return damaged(f"_delta_log is missing ({sum(i.is_file for i in others):,} files without a log)")
    entries, error = _guarded(lambda: fs.get_file_info(pafs.FileSelector(log_dir)))
    if error:
        return damaged(f"_delta_log cannot be listed ({error})")
    files = {info.base_name: info for info in entries if info.is_file}
    commits = {int(m.group(1)): n for n in files if (m := _COMMIT.match(n))}
    checkpoints: dict[int, list[str]] = {}
    for file_name in files:
        if match := _CHECKPOINT.match(file_name):
            checkpoints.setdefault(int(match.group(1)), []).append(file_name)
    if not commits and not checkpoints:
        return damaged("_delta_log holds no commit")
    start = 0
    if "_last_checkpoint" in files:
        hint, error = _guarded(lambda: json.loads(_read_text(fs, f"{log_dir}/_last_checkpoint")))
        if error or not isinstance(hint, dict) or not isinstance(hint.get("version"), int):
            return damaged(f"_last_checkpoint is not a valid checkpoint hint ({error or 'no version'})")
        version = hint["version"]
        parts = hint.get("parts")
        found = checkpoints.get(version, [])
        if not found or (isinstance(parts, int) and len(found) < parts):
            return damaged(f"_last_checkpoint names the checkpoint of version {version}, which is missing")
    if checkpoints:
        start = max(checkpoints) + 1
        for file_name in sorted(checkpoints[start - 1]):
            if file_name.endswith(".parquet"):
                _, error = _guarded(lambda: _parquet_footer(fs, f"{log_dir}/{file_name}"))
                if error:
                    return damaged(f"checkpoint {start - 1} cannot be read ({file_name}: {error})")
    newest = max([*commits, *checkpoints])
    for version in range(start, newest + 1):
        if version not in commits:
            return damaged(f"commit {version} missing ({version:020d}.json)"
                           + (f"; the newest is {newest}" if version < newest else ""))
    for version in range(start, newest + 1):
        file_name = commits[version]
        if files[file_name].size == 0:
            return damaged(f"commit {version} is empty ({file_name})")
        text, error = _guarded(lambda: _read_text(fs, f"{log_dir}/{file_name}"))
        if error:
            return damaged(f"commit {version} cannot be read ({error})")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                action = json.loads(line)
            except ValueError as exc:
                return damaged(f"commit {version} is not valid JSON ({file_name} line {number}: {exc})")
            if not isinstance(action, dict):
                return damaged(f"commit {version} is not valid JSON ({file_name} line {number}: not an object)")
    return True, None


def table_on_storage(lake: Lake, name: str) -> bool:
    """Whether the table is there (its directory holds files), readable or not."""
    exists, problem = _log_problem(lake, name)
    return exists or problem is not None


def _parquet_footer(fs, path: str):
    import pyarrow.parquet as pq

    with fs.open_input_file(path) as handle:
        return pq.read_metadata(handle)


def _read_text(fs, path: str) -> str:
    with fs.open_input_stream(path) as stream:
        return stream.read().decode("utf-8", errors="replace")


def _live_files(lake: Lake, name: str) -> tuple[pl.DataFrame | None, Problem | None]:
    """The table's live data files from its Delta log (``path, size, rows, day``; ``day`` null when the
    table is not partitioned), or None when the table does not exist, or the problem with its log."""
    exists, problem = _log_problem(lake, name)
    if problem is not None or not exists:
        return None, problem

    def list_files() -> pl.DataFrame | None:
        table = lake.table(name)
        if table is None:
            return None
        actions = pl.from_arrow(table.get_add_actions(flatten=True))
        actions = actions.struct.unnest() if isinstance(actions, pl.Series) else actions
        if actions.height == 0:
            return _NO_FILES
        return actions.select(
            pl.col("path"), pl.col("size_bytes").cast(pl.Int64).alias("size"),
            pl.col("num_records").cast(pl.Int64).fill_null(0).alias("rows"),
            (pl.col("partition.day").cast(pl.Date) if "partition.day" in actions.columns
             else pl.lit(None, pl.Date)).alias("day"),
        ).sort("day", "path")

    files, error = _guarded(list_files)
    if error:
        return None, Problem(None, "Delta log damaged", f"delta-rs cannot read it ({error})", table=name)
    return files, None


def _day_batches(files: pl.DataFrame, days: list[date]) -> list[list[date]]:
    """Consecutive groups of days holding at most MAX_BATCH_ROWS rows (one day at least)."""
    from transforms.refresh import MAX_BATCH_ROWS

    counts = dict(files.group_by("day").agg(pl.col("rows").sum()).iter_rows())
    batches: list[list[date]] = []
    rows = 0
    for day in days:
        if batches and rows + counts.get(day, 0) <= MAX_BATCH_ROWS:
            batches[-1].append(day)
            rows += counts.get(day, 0)
        else:
            batches.append([day])
            rows = counts.get(day, 0)
    return batches


def _stored_sizes(lake: Lake, name: str) -> dict[str, int] | None:
    """Path (relative to the table, as in its log) → size of every file on storage: one listing."""
    import pyarrow.fs as pafs

    fs, root = _filesystem(lake)
    base = f"{root}/{name}/"
    infos, _ = _guarded(lambda: fs.get_file_info(pafs.FileSelector(base, recursive=True)))
    if infos is None:
        return None
    return {info.path[len(base):]: info.size for info in infos if info.is_file and info.path.startswith(base)}


def _read_days(lake: Lake, files: pl.DataFrame, sizes: dict[str, int] | None,
               ) -> tuple[pl.DataFrame | None, list[Problem]]:
    """``day, id, payload`` of ``activity_raw`` for the days of ``files`` (its live files of those
    days), and one problem per day whose files cannot be read.

    Files missing from storage or of another size than their log entry are found from the listing
    (such a file makes the Rust Parquet reader panic); the other days are read with Polars, as every
    reader of the lake does. Should that fail, the files are read one by one with pyarrow to name the
    broken ones."""
    from urllib.parse import unquote

    problems = []
    if sizes is not None:
        actual = files.with_columns(pl.col("path").map_elements(lambda p: sizes.get(unquote(p)), pl.Int64)
                                    .alias("stored"))
        wrong = actual.filter(pl.col("stored").is_null() | (pl.col("stored") != pl.col("size")))
        for (day,), rows in wrong.sort("day", "path").group_by("day", maintain_order=True):
            path, size, stored = rows.row(0)[0], rows["size"][0], rows["stored"][0]
            reason = "is missing" if stored is None else f"has {stored:,} bytes, its Delta log entry {size:,}"
            more = f" (and {rows.height - 1} more files)" if rows.height > 1 else ""
            problems.append(Problem(day, "data file unreadable", f"{path.rsplit('/', 1)[-1]} {reason}{more}",
                                    table=ACTIVITY_RAW))
    bad = {p.day for p in problems}
    readable = files.filter(~pl.col("day").is_in(list(bad)))
    days = sorted(set(readable["day"].to_list()))
    if not days:
        return None, problems
    raw, error = _guarded(lambda: lake.read_days(ACTIVITY_RAW, days, columns=["day", "id", "payload"]))
    if error is None:
        return raw, problems
    frames, broken = _read_files(lake, ACTIVITY_RAW, readable, ["id", "payload"])
    return (pl.concat(frames, how="vertical_relaxed") if frames else None), problems + broken


def _read_files(lake: Lake, name: str, files: pl.DataFrame, columns: list[str],
                ) -> tuple[list[pl.DataFrame], list[Problem]]:
    """Read ``columns`` of each listed data file (threads, pyarrow), with the partition column ``day``
    added. Returns the frames of the readable days and one problem per day (or per unpartitioned
    table) whose files are missing, differ in size from their log entry, or do not decode."""
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import unquote

    import pyarrow.parquet as pq

    fs, root = _filesystem(lake)
    partitioned = files["day"].null_count() < files.height
    wanted = [c for c in columns if not (partitioned and c == "day")]

    def read(item: tuple[str, int, date | None]) -> pl.DataFrame | str:
        path, size, day = item
        location = f"{root}/{name}/{unquote(path)}"
        try:
            with fs.open_input_file(location) as handle:
                if handle.size() != size:
                    return f"has {handle.size():,} bytes, its Delta log entry {size:,}"
                table = pq.read_table(handle, columns=wanted)
        except Exception as exc:  # noqa: BLE001 - a broken file is evidence
            info, _ = _guarded(lambda: fs.get_file_info(location))
            if isinstance(exc, FileNotFoundError) or (info is not None and not info.is_file):
                return "is missing"
            return f"cannot be read ({_first_line(exc).replace(location, path.rsplit('/', 1)[-1])})"
        frame = pl.from_arrow(table)
        return frame.with_columns(pl.lit(day, pl.Date).alias("day")) if partitioned else frame

    items = list(files.select("path", "size", "day").iter_rows())
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 1)) as pool:
        results = list(pool.map(read, items))
    frames: dict[date | None, list[pl.DataFrame]] = {}
    bad: dict[date | None, list[tuple[str, str]]] = {}
    for (path, _, day), result in zip(items, results):
        if isinstance(result, str):
            bad.setdefault(day, []).append((path.rsplit("/", 1)[-1], result))
        else:
            frames.setdefault(day, []).append(result)
    problems = []
    for day, failures in sorted(bad.items(), key=lambda item: item[0] or date.min):
        file_name, reason = failures[0]
        more = f" (and {len(failures) - 1} more files)" if len(failures) > 1 else ""
        problems.append(Problem(day, "data file unreadable", f"{file_name} {reason}{more}", table=name))
    return [frame for day, day_frames in frames.items() if day not in bad for frame in day_frames], problems
