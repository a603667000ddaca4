"""Run the pipeline's Dagster jobs from the CLI, recorded in DAGSTER_HOME so the UI shows them."""

import fcntl
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable

import dagster as dg

from transforms.settings import Settings
from transforms.refresh import BACKFILL_DAYS_PER_RUN, contiguous_ranges

DEFAULT_DAGSTER_HOME = "./data/dagster"


_INSTANCES: dict[str, dg.DagsterInstance] = {}
_INSTANCE_LOCK = threading.Lock()


def instance() -> dg.DagsterInstance:
    """The persistent instance of DAGSTER_HOME (default ./data/dagster, created if missing). One per
    process; and across processes, the first opening of a home is done by one process at a time (a
    lock file in the home): processes creating a fresh instance at once (the first exports of a new
    server, a CLI command beside the daemon) would each write its configuration and migrate its
    storage, which fails one of them and can leave the storage with two schema heads."""
    from pipelines.event_storage import enable_batching

    enable_batching()
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(DEFAULT_DAGSTER_HOME).resolve())))
    with _INSTANCE_LOCK:
        key = str(home.resolve())
        if key not in _INSTANCES:
            home.mkdir(parents=True, exist_ok=True)
            os.environ["DAGSTER_HOME"] = key
            with open(home / ".activitylog-instance.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
                config = home / "dagster.yaml"
                if not config.exists():
                    partial = home / f".dagster.yaml.{os.getpid()}"
                    partial.write_text(instance_file(home))
                    partial.replace(config)
                opened = dg.DagsterInstance.get()
                # Storage is created on first use: use each store once while holding the lock.
                opened.get_runs_count()
                opened.all_instigator_state()
                opened.fetch_materializations(dg.AssetKey("activitylog_instance_check"), limit=1)
            _INSTANCES[key] = opened
        return _INSTANCES[key]


def instance_file(home: Path) -> str:
    """The instance file the CLI writes into a new DAGSTER_HOME (pipelines/dagster_instance.yaml)."""
    template = (Path(__file__).parent / "dagster_instance.yaml").read_text()
    return template.replace("@DAGSTER_HOME@", str(home.resolve()))


def dispose_instances() -> None:
    """Close the instances this process opened (their storage connections)."""
    with _INSTANCE_LOCK:
        while _INSTANCES:
            _INSTANCES.popitem()[1].dispose()


class RefreshFailed(RuntimeError):
    """Refresh runs failed on some days (the other days were refreshed). The first line of the message
    lists the days, the stage and the event that failed (from ``refresh_state``)."""

    def __init__(self, failures: list[str], run_ids: list[str]) -> None:
        super().__init__(f"refresh failed on {len(failures)} day(s): " + "; ".join(failures)
                         + " (the other days were refreshed; run the command again once fixed)")
        self.failures = failures
        self.run_ids = run_ids

    def __reduce__(self):  # a backfill worker process raises it; the parent unpickles it
        return (RefreshFailed, (self.failures, self.run_ids))


@dataclass
class PipelineResult:
    ingest: dict = field(default_factory=dict)
    refreshed_days: list[date] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)


def _run_config(log_level: str) -> dict:
    """What the terminal shows of a run the CLI starts: the ops' progress (pipelines/progress.py), not
    Dagster's engine events; the run's full log is in the instance either way."""
    return {"loggers": {"progress": {"config": {"log_level": log_level}}}}


def run_ingest(settings: Settings | None = None, *, log_level: str = "INFO",
               dagster_instance: dg.DagsterInstance | None = None) -> PipelineResult:
    """Ingest job, then a refresh run per contiguous range of changed days (as the sensors would)."""
    from pipelines.definitions import build_definitions

    settings = settings or Settings.from_env()
    defs = build_definitions(settings)
    dagster_instance = dagster_instance or instance()
    result = PipelineResult()
    run_config = _run_config(log_level)
    run_config["ops"] = {"ingest_landing": {"config": {"landing": settings.landing}}}
    ingest = defs.resolve_job_def("ingest_job").execute_in_process(
        run_config=run_config, instance=dagster_instance, raise_on_error=True
    )
    result.run_ids.append(ingest.run_id)
    result.ingest = ingest.output_for_node("ingest_landing")
    days = [date.fromisoformat(d) for d in result.ingest["days_changed"]]
    result.refreshed_days = _refresh_with_stale(defs, dagster_instance, settings, days, log_level, result.run_ids)
    return result


def _stale(settings: Settings) -> list[date]:
    from transforms.lake import Lake
    from transforms.recovery import stale_days

    return stale_days(Lake.at(settings.lake))


def _refresh_with_stale(defs: dg.Definitions, dagster_instance: dg.DagsterInstance, settings: Settings,
                        days: list[date], log_level: str, run_ids: list[str]) -> list[date]:
    """Refresh ``days`` and every stale day (transforms.recovery: what an interrupted run left
    unfinished), one refresh run per contiguous range. A range whose run fails on some days does not
    stop the others; :class:`RefreshFailed` names the failed days at the end."""
    todo = sorted(set(days) | set(_stale(settings)))
    failures: list[str] = []
    for first, last in contiguous_ranges(todo):
        run_id, failed = _refresh_run_checked(defs, dagster_instance, first, last, log_level, settings)
        run_ids.append(run_id)
        failures += failed
    if failures:
        raise RefreshFailed(failures, run_ids)
    return todo


def _refresh_run_checked(defs: dg.Definitions, dagster_instance: dg.DagsterInstance, first: date, last: date,
                         log_level: str, settings: Settings) -> tuple[str, list[str]]:
    """One refresh run; (its run id, a line per failed day — empty when it succeeded)."""
    from transforms.lake import Lake
    from transforms.recovery import failures_of_run

    run = defs.resolve_job_def("refresh_job").execute_in_process(
        run_config=_run_config(log_level), instance=dagster_instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": first.isoformat(),
              "dagster/asset_partition_range_end": last.isoformat()})
    if run.success:
        return run.run_id, []
    failed = failures_of_run(Lake.at(settings.lake), run.run_id)
    if failed.height:
        return run.run_id, [f"{d} ({stage}{f', event {e}' if e else ''}: {err})"
                            for d, stage, e, err in failed.iter_rows()]
    errors = [event.message or "" for event in run.all_events if event.is_step_failure]
    detail = errors[0].splitlines()[0] if errors else "the run failed"
    return run.run_id, [f"{first} … {last} ({detail})"]


def run_notify(settings: Settings | None = None, *, days: list[date] | None = None, retry_failed: bool = False,
               log_level: str = "INFO", dagster_instance: dg.DagsterInstance | None = None) -> tuple[dict, str]:
    """One notify run (as the sensor starts them) for ``days`` (default: every day of activity_log
    written since it was last evaluated). Returns (the run's report, run id); raises on failure."""
    from pipelines.definitions import build_definitions
    from transforms.lake import Lake
    from transforms.notify import days_to_evaluate

    settings = settings or Settings.from_env()
    defs = build_definitions(settings)
    # What an interrupted run left unrefreshed is brought up to date first: notify reads activity_log.
    _refresh_with_stale(defs, dagster_instance or instance(), settings, [], log_level, [])
    if days is None and not retry_failed:
        days = days_to_evaluate(Lake.at(settings.lake))
    run_config = _run_config(log_level)
    run_config["ops"] = {"notify": {"config": {"days": [d.isoformat() for d in days or []],
                                               "retry_failed": retry_failed}}}
    result = defs.resolve_job_def("notify_job").execute_in_process(
        run_config=run_config, instance=dagster_instance or instance(), raise_on_error=True,
        tags={"activitylog/days": str(len(days or [])), "activitylog/notify": "true"},
    )
    return result.output_for_node("notify"), result.run_id


def run_stream(settings: Settings | None = None, *, names: list[str] | None = None, log_level: str = "INFO",
               dagster_instance: dg.DagsterInstance | None = None) -> tuple[dict, str]:
    """One stream run (as the sensor starts them). Returns (the run's report, run id); raises on failure."""
    from pipelines.definitions import build_definitions

    settings = settings or Settings.from_env()
    defs = build_definitions(settings)
    _refresh_with_stale(defs, dagster_instance or instance(), settings, [], log_level, [])  # streams read activity_log
    run_config = _run_config(log_level)
    run_config["ops"] = {"stream": {"config": {"streams": names or []}}}
    result = defs.resolve_job_def("stream_job").execute_in_process(
        run_config=run_config, instance=dagster_instance or instance(), raise_on_error=True)
    return result.output_for_node("stream"), result.run_id


def run_retention(settings: Settings | None = None, *, dry_run: bool = False, log_level: str = "INFO",
                  dagster_instance: dg.DagsterInstance | None = None) -> tuple[dict, list[str]]:
    """A retention run, then a refresh of the day its system event landed in (as the sensors would).
    Returns (the run's report, run ids)."""
    return _run_then_refresh("retention_job", "retention", {"dry_run": dry_run}, settings, log_level,
                             dagster_instance)


def run_erase_user(user: str | None, settings: Settings | None = None, *, reason: str | None = None,
                   requested_by: str | None = None, request_id: str | None = None, log_level: str = "INFO",
                   dagster_instance: dg.DagsterInstance | None = None) -> tuple[dict, list[str]]:
    """An erasure run, then a refresh of every day it rewrote (derived tables lose the data too). The
    request (user, reason, requester) is written beside the lake and the run gets its id only, so the
    user's identity is not kept in DAGSTER_HOME; ``request_id`` finishes an earlier request instead."""
    from transforms.erasure_requests import write_request
    from transforms.lake import Lake

    settings = settings or Settings.from_env()
    if request_id is None:
        request_id = write_request(Lake.at(settings.lake), user, reason=reason, requested_by=requested_by)
    return _run_then_refresh("erase_user_job", "erase_user", {"request": request_id}, settings, log_level,
                             dagster_instance)


def _run_then_refresh(job: str, op: str, op_config: dict, settings: Settings | None, log_level: str,
                      dagster_instance: dg.DagsterInstance | None) -> tuple[dict, list[str]]:
    from pipelines.definitions import build_definitions

    settings = settings or Settings.from_env()
    defs = build_definitions(settings)
    dagster_instance = dagster_instance or instance()
    run_config = _run_config(log_level)
    run_config["ops"] = {op: {"config": op_config}}
    result = defs.resolve_job_def(job).execute_in_process(
        run_config=run_config, instance=dagster_instance, raise_on_error=True)
    report = result.output_for_node(op)
    run_ids = [result.run_id]
    days = [date.fromisoformat(d) for d in report.get("days_changed", [])]
    _refresh_with_stale(defs, dagster_instance, settings, days, log_level, run_ids)
    return report, run_ids


@dataclass
class BackfillResult:
    ranges: list[tuple[date, date]] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    failed: list[tuple[date, date, str]] = field(default_factory=list)  # (first, last, error)


def _backfill_range(settings: Settings, first: date, last: date, log_level: str) -> str:
    """A backfill worker process: one refresh run, recorded in this process's DAGSTER_HOME instance."""
    from pipelines.definitions import build_definitions

    return _backfill_run(build_definitions(settings), instance(), first, last, log_level, settings)


def _backfill_run(defs: dg.Definitions, dagster_instance: dg.DagsterInstance, first: date, last: date,
                  log_level: str, settings: Settings) -> str:
    """One refresh run of a backfill; raises naming the failed days (the range's other days are refreshed)."""
    run_id, failed = _refresh_run_checked(defs, dagster_instance, first, last, log_level, settings)
    if failed:
        raise RefreshFailed(failed, [run_id])
    return run_id


def run_backfill(days: list[date], settings: Settings | None = None, *, workers: int = 2,
                 days_per_run: int = BACKFILL_DAYS_PER_RUN, log_level: str = "WARNING",
                 progress: Callable[[str], None] | None = None) -> BackfillResult:
    """Refresh ``days`` (normalize + enrich) as a backfill: ranges of at most ``days_per_run`` days,
    one refresh_job run each, ``workers`` runs at once in separate processes (as the run queue of a
    deployment would). Refreshing a day is idempotent, so a failed range can simply be run again."""
    from pipelines.definitions import build_definitions

    settings = settings or Settings.from_env()
    # Stale days (what an interrupted run left unfinished) are refreshed along with the days asked for.
    days = sorted(set(days) | set(_stale(settings)))
    result = BackfillResult(ranges=contiguous_ranges(days, days_per_run))
    say = progress or (lambda _message: None)
    total = len(result.ranges)

    def finished(index: int, first: date, last: date, started: float, run_id: str | None, error: str | None):
        label = f"[{index}/{total}] {first} … {last} ({(last - first).days + 1} days)"
        if error is None:
            result.run_ids.append(run_id)
            say(f"{label} refreshed ({time.monotonic() - started:.1f}s), run {run_id}")
        else:
            result.failed.append((first, last, error))
            say(f"{label} FAILED: {error}")

    if workers <= 1 or total <= 1:
        defs, dagster_instance = build_definitions(settings), instance()
        for index, (first, last) in enumerate(result.ranges, 1):
            started = time.monotonic()
            try:
                run_id = _backfill_run(defs, dagster_instance, first, last, log_level, settings)
                finished(index, first, last, started, run_id, None)
            except Exception as exc:  # noqa: BLE001 - reported per range; the other ranges go on
                finished(index, first, last, started, None, first_line(exc))
        return result
    _initialize_pools(build_definitions(settings).resolve_job_def("refresh_job"), instance())
    # spawn, not fork: a forked child would share this process's Dagster storage connections
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        started = time.monotonic()
        futures = {pool.submit(_backfill_range, settings, first, last, log_level): (first, last)
                   for first, last in result.ranges}
        for index, future in enumerate(as_completed(futures), 1):
            first, last = futures[future]
            try:
                finished(index, first, last, started, future.result(), None)
            except Exception as exc:  # noqa: BLE001
                finished(index, first, last, started, None, first_line(exc))
    result.ranges.sort()
    return result


def _initialize_pools(job: dg.JobDefinition, dagster_instance: dg.DagsterInstance) -> None:
    """Create the job's pool limits now, one at a time. Dagster creates a pool's limit row when a run
    first claims it; runs starting together would each insert it, and the losers' runs fail on the
    unique key (seen with PostgreSQL storage)."""
    storage = dagster_instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    for pool in sorted({node.pool for node in job.graph.node_defs if getattr(node, "pool", None)}):
        storage.initialize_concurrency_limit_to_default(pool)


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: a failed run's error, short enough for one line of output."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
