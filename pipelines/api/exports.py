"""Exports started through the read API: recorded before the 202 answers, run outside the server.

``POST …/advanced_activity_logs/export`` writes a record (``<exports root>/<id>/export.json``, status
``queued``) and hands the id to an :class:`ExportRunner`, which starts ``python -m pipelines.api.exports
<root> <id>`` — a process of its own that runs ``export_job`` through Dagster (recorded in
``DAGSTER_HOME`` like every run, visible in the UI) and writes the outcome back to the record. The
server never executes a job in its own process: a run's logging there once held the ``logging`` lock
against uvicorn's event loop and hung every request.

The exports root is ``ACTIVITYLOG_API_EXPORTS`` (a local directory), by default ``exports/`` beside a
local lake (``./data/lake`` → ``./data/exports``), outside the lake itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

EXPORTS_ENV = "ACTIVITYLOG_API_EXPORTS"
RECORD = "export.json"
FILE_NAME = "export"  # the file is export.<format>, its manifest export.manifest.json
TERMINAL = ("succeeded", "failed")
_ID = re.compile(r"^[0-9a-f]{32}$")


def exports_root(lake_root: str) -> Path:
    """Where API exports live: ``$ACTIVITYLOG_API_EXPORTS``, else ``exports/`` beside a local lake, else
    ``./data/exports`` (a lake on S3)."""
    configured = os.environ.get(EXPORTS_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    if "://" in lake_root:
        return Path("./data/exports").resolve()
    return Path(lake_root).expanduser().resolve().parent / "exports"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class ExportStore:
    """One directory per export: the record (``export.json``), the file and its manifest, the run's log."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()

    def directory(self, export_id: str) -> Path:
        if not _ID.match(export_id):
            raise ValueError("not an export id")
        return self.root / export_id

    def create(self, record: dict) -> None:
        directory = self.directory(record["id"])
        directory.mkdir(parents=True, exist_ok=False)
        self._write(directory, record)

    def discard(self, export_id: str) -> None:
        shutil.rmtree(self.directory(export_id), ignore_errors=True)

    def read(self, export_id: str) -> dict | None:
        if not _ID.match(export_id or ""):
            return None
        try:
            return json.loads((self.root / export_id / RECORD).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def update(self, export_id: str, **changes) -> dict | None:
        with self._lock:
            record = self.read(export_id)
            if record is None:
                return None
            record.update(changes)
            self._write(self.directory(export_id), record)
            return record

    @staticmethod
    def _write(directory: Path, record: dict) -> None:
        temporary = directory / f".{RECORD}.{os.getpid()}.{threading.get_ident()}.tmp"
        temporary.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(temporary, directory / RECORD)  # readers see the old record or the new one, never half

    def status(self, export_id: str) -> dict | None:
        """The record, with a run whose process is gone without a word marked failed."""
        record = self.read(export_id)
        if record is None or record["status"] in TERMINAL or not record.get("pid"):
            return record
        if not _alive(record["pid"]) and record.get("host") == _host():
            time.sleep(0.2)  # the process may have written its outcome just before exiting
            record = self.read(export_id)
            if record is not None and record["status"] not in TERMINAL:
                record = self.update(export_id, status="failed", finished_at=_now(),
                                     error="the export process ended without finishing")
        return record


    def erase(self, names_user, *, wait: float = 10.0) -> list[str]:
        """Delete every export whose files name an erased user (``names_user(text) -> bool``, e.g.
        :meth:`transforms.erasure.Identity.names_user`): its file, manifest, run log and record are
        removed and a record of the erasure takes the record's place (status ``failed``, the error
        says why; no filter, nothing of the user), so the status route still answers. An export still
        queued or running is stopped first (its process, if on this host, is killed): it may be
        reading the lake as it was before the erasure. Returns the ids, sorted."""
        erased = []
        if not self.root.is_dir():
            return erased
        for directory in sorted(self.root.iterdir()):
            if not directory.is_dir() or not _ID.match(directory.name):
                continue
            record = self.read(directory.name)
            running = record is not None and record.get("status") not in TERMINAL and not record.get("erased")
            if not running and not any(names_user(text) for text in _texts(directory)):
                continue
            if running:  # mark it first: a process finishing now does not call it succeeded (see ``run``)
                self.update(directory.name, erased=True)
                pid = record.get("pid")
                if pid and record.get("host") == _host() and _alive(pid):
                    try:
                        os.kill(pid, 9)
                    except ProcessLookupError:
                        pass
                    deadline = time.monotonic() + wait
                    while _alive(pid) and time.monotonic() < deadline:
                        time.sleep(0.05)
            self._tombstone(directory, record)
            erased.append(directory.name)
        return erased

    def _tombstone(self, directory: Path, record: dict | None) -> None:
        kept = {k: record[k] for k in ("id", "format", "created_at", "key_id", "organization_id", "project_id",
                                       "scope", "sees_hidden_logins", "visibility", "access") if record and k in record}
        with self._lock:
            for path in directory.iterdir():
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            self._write(directory, {**kept, "id": directory.name, "status": "failed", "erased": True,
                                    "finished_at": _now(), "error": ERASED_ERROR})


ERASED_ERROR = "deleted by an erasure (activitylog erase-user): it held an erased user's data"


def _texts(directory: Path):
    """Every file of an export directory as text: an XLSX package member by member, other files whole."""
    import zipfile

    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as package:
                    for member in package.namelist():
                        yield package.read(member).decode("utf-8", "replace")
                continue
            except (zipfile.BadZipFile, OSError, ValueError):
                pass
        yield data.decode("utf-8", "replace")


def _host() -> str:
    return os.uname().nodename


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a child that exited but was not yet reaped is a zombie: not alive
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class QuotaExceeded(Exception):
    pass


class ExportRunner:
    """Starts queued exports as subprocesses, ``slots`` at a time; at most ``quota`` exports of one key
    queued or running at once (beyond: :class:`QuotaExceeded`, answered 429)."""

    def __init__(self, store: ExportStore, lake_root: str, *, slots: int = 2, quota: int = 10) -> None:
        self.store, self.lake_root, self.slots, self.quota = store, lake_root, max(1, slots), max(1, quota)
        self._queue: deque[tuple[str, str]] = deque()
        self._in_flight: dict[str, int] = {}
        self._condition = threading.Condition()
        self._workers: list[threading.Thread] = []

    def submit(self, export_id: str, key_id: str) -> None:
        self.reserve(key_id)
        self.enqueue(export_id, key_id)

    def reserve(self, key_id: str) -> None:
        """Count one export of ``key_id`` against its quota (:class:`QuotaExceeded` beyond it); then
        :meth:`enqueue` it, or :meth:`release` the reservation."""
        with self._condition:
            if self._in_flight.get(key_id, 0) >= self.quota:
                raise QuotaExceeded(f"at most {self.quota} exports of one key may be queued or running at once")
            self._in_flight[key_id] = self._in_flight.get(key_id, 0) + 1

    def release(self, key_id: str) -> None:
        with self._condition:
            self._in_flight[key_id] -= 1
            if not self._in_flight[key_id]:
                del self._in_flight[key_id]

    def enqueue(self, export_id: str, key_id: str) -> None:
        """Queue an export reserved with :meth:`reserve`."""
        with self._condition:
            self._queue.append((export_id, key_id))
            if len(self._workers) < self.slots:
                worker = threading.Thread(target=self._work, name=f"export-runner-{len(self._workers)}", daemon=True)
                self._workers.append(worker)
                worker.start()
            self._condition.notify()

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._queue:
                    self._condition.wait()
                export_id, key_id = self._queue.popleft()
            try:
                self._run(export_id)
            except Exception as exc:  # noqa: BLE001 - the record says what happened; the worker goes on
                self.store.update(export_id, status="failed", finished_at=_now(),
                                  error=f"the export could not be started ({type(exc).__name__})")
            finally:
                self.release(key_id)

    def _run(self, export_id: str) -> None:
        directory = self.store.directory(export_id)
        env = {**os.environ, "ACTIVITYLOG_LAKE": self.lake_root}
        with open(directory / "run.log", "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "pipelines.api.exports", str(self.store.root),
                                        export_id], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
            self.store.update(export_id, pid=process.pid, host=_host())
            process.wait()
        record = self.store.read(export_id)
        if record is not None and record["status"] not in TERMINAL:
            self.store.update(export_id, status="failed", finished_at=_now(),
                              error=f"the export process exited with status {process.returncode}")


def run(root: Path, export_id: str) -> int:
    """The export process: run ``export_job`` for the record, write the outcome back."""
    store = ExportStore(root)
    record = store.read(export_id)
    if record is None:
        print(f"no export {export_id} in {root}", file=sys.stderr)
        return 2
    store.update(export_id, status="running", started_at=_now())
    try:
        from pipelines.definitions import build_definitions
        from pipelines.runner import instance

        directory = store.directory(export_id)
        result = build_definitions().resolve_job_def("export_job").execute_in_process(
            run_config={"ops": {"export": {"config": {
                "format": record["format"], "out": f"{directory}/", "name": FILE_NAME, "filter": record["filter"],
                "access": record["access"]}}}},
            instance=instance(), run_id=record["run_id"], raise_on_error=False,
            tags={"activitylog/export_id": export_id, "activitylog/export_scope": record["scope"],
                  "activitylog/export_key": record["key_id"]})
        succeeded = result.success
    except Exception as exc:  # noqa: BLE001
        print(f"export {export_id}: {type(exc).__name__}: {exc}", file=sys.stderr)
        succeeded = False
    current = store.read(export_id)
    if current is not None and current.get("erased"):  # an erasure stopped it: nothing of it may stay
        store._tombstone(store.directory(export_id), current)
        return 1
    if succeeded:
        store.update(export_id, status="succeeded", finished_at=_now())
    else:  # the reason is in the Dagster run (and run.log), which may name server paths: not in the answer
        store.update(export_id, status="failed", finished_at=_now(),
                     error=f"the export failed: see run {record['run_id']} in Dagster")
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), sys.argv[2]))
