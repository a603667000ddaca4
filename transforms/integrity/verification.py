"""Verifying the chain: every digest row recomputed, signed and linked, every day recomputed from
``activity_raw``, then the verifiable log; damage is a named problem, never a crash."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Iterable

import polars as pl

from transforms.integrity.chain import ACTIVITY_DIGESTS, DIGEST_SCHEMA, GENESIS, chain_digest, day_hashes, latest
from transforms.integrity.deltalog import _guarded
from transforms.integrity.problems import Problem, VerifyReport
from transforms.integrity.readers import _NO_FILES, _day_batches, _live_files, _read_days, _read_files, _stored_sizes
from transforms.integrity.signing import _signature_problem
from transforms.lake import ACTIVITY_RAW, Lake


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
