"""verify's look at a table's Delta log from the storage listing, before delta-rs reads it: a damaged
log is a named problem, never an exception (and the guard that turns any failure into one)."""

from __future__ import annotations

import json
import re

from transforms.integrity.problems import Problem
from transforms.lake import Lake

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
