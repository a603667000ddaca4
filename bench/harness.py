"""The bench's harness: what every suite of ``make bench`` (and ``bench.scale``, ``bench.backfill``) shares.

- the bench landing (:func:`prepare_landing`: written once per parameter set, not timed, reused with
  ``--keep``), the machine's description and a warm page cache;
- one measurement per fresh interpreter (:func:`run_child` in the parent, :func:`child` in the new
  process): a suite's function marked with :func:`measurement` runs there with a
  :class:`bench.profiler.Profiler`, and its result (seconds of the timed region, CPU seconds, the exact
  peak RSS of that process, a profile, checks) comes back as a dict;
- the suite protocol: every suite module has ``run(bench: Bench) -> Outcome`` (measure, printing
  progress) and ``report(outcome: Outcome, say) -> None`` (its own section of the report, after the
  common table of measurements that :mod:`bench.report` prints).

This module imports only the standard library at the top: the parent process stays small and the
children import what their measurement needs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / "bench" / "data"
GIB = 1024**3

Measure = Callable[[dict[str, Any], Any], dict[str, Any]]  # (spec, profiler) -> result fields


@dataclass
class Bench:
    """What a suite's ``run`` gets: the options, the bench landing (and its stamp), the work directory
    (emptied at the start of the run) and the suites this run includes, in order."""

    args: argparse.Namespace
    landing: Path
    stamp: dict[str, Any]
    work: Path
    suites: list[str]


@dataclass
class Outcome:
    """What a suite's ``run`` returns, for its ``report`` and for ``--dir``/results/last.json."""

    measurements: list[dict[str, Any]] = field(default_factory=list)  # rows of the common table
    section: Any = None  # the suite's own entry in last.json (None: it has none)
    checks: list[dict[str, Any]] = field(default_factory=list)  # checks outside the measurements' own
    errors: list[str] = field(default_factory=list)  # failed measurements of ours outside the table


def measurement(kind: str) -> Callable[[Measure], Measure]:
    """Mark a function ``(spec, profiler) -> dict`` as a measurement that :func:`run_child` can run in a
    fresh process; ``kind`` names it in the results."""

    def mark(function: Measure) -> Measure:
        module = function.__module__
        if module == "__main__":  # a suite run as ``python -m bench.x``: the child imports it by name
            module = getattr(sys.modules["__main__"].__spec__, "name", module)
        function.kind = kind  # type: ignore[attr-defined]
        function.target = f"{module}:{function.__name__}"  # type: ignore[attr-defined]
        return function

    return mark


def check(what: str, got: Any, expected: Any) -> dict[str, Any]:
    return {"what": what, "got": got, "expected": expected, "ok": got == expected}


def say(message: str = "") -> None:
    print(message, flush=True)


def say_failed_checks(result: dict[str, Any]) -> None:
    for failed in result.get("checks", []):
        if not failed["ok"]:
            say(f"  CHECK FAILED: {failed['what']} (got {failed['got']}, expected {failed['expected']})")


def say_seconds(result: dict[str, Any]) -> None:
    say(f"  FAILED: {result['error']}" if "error" in result else f"  {result['seconds']:.2f} s")


def machine_info() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    info: dict[str, Any] = {
        "load_average_1m": load,
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "polars": version("polars"),
        "deltalake": version("deltalake"),
        "duckdb": version("duckdb"),
        "pyarrow": version("pyarrow"),
    }
    usable = info["usable_cores"] or 1
    try:
        import psutil

        busy = psutil.cpu_percent(interval=1.0)  # system-wide, over one second before anything starts
        info["cpu_busy_percent_before"] = busy
        if busy > 20:
            info["busy_warning"] = (
                f"the CPU was {busy:.0f}% busy before the bench started ({usable} cores, load average "
                f"{load:.1f}): other processes compete with the measurements, figures are pessimistic")
    except ImportError:
        pass
    try:
        import psutil

        info["ram_gib"] = round(psutil.virtual_memory().total / GIB, 1)
        info["physical_cores"] = psutil.cpu_count(logical=False)
    except ImportError:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["ram_gib"] = round(pages * size / GIB, 1)
    return info


def landing_files(landing: Path) -> list[Path]:
    return sorted(p for p in landing.iterdir() if p.suffix == ".jsonl" and not p.name.startswith("."))


def prepare_landing(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The bench landing for these parameters: reused with --keep if complete, else written now."""
    params = {"events": args.events, "days": args.days, "files": args.files, "seed": 1}
    landing = args.dir / f"landing-{args.events}-{args.days}-{args.files}"
    marker = landing.with_name(landing.name + ".json")  # beside the landing, never listed by the ingest
    if args.keep and marker.exists():
        stamp = json.loads(marker.read_text())
        files = landing_files(landing) if landing.is_dir() else []
        if stamp.get("params") == params and len(files) == args.files \
                and sum(p.stat().st_size for p in files) == stamp.get("bytes"):
            say(f"landing: reusing {landing} ({stamp['events']:,} events, {stamp['bytes'] / 1e6:,.0f} MB, "
                f"written {stamp['written_at']})")
            return landing, {**stamp, "reused": True}
        say("landing: cached landing does not match the parameters; writing it again")

    from pipelines.demo import write_bench_landing

    marker.unlink(missing_ok=True)
    shutil.rmtree(landing, ignore_errors=True)
    landing.parent.mkdir(parents=True, exist_ok=True)
    tty = sys.stdout.isatty()
    started = time.perf_counter()

    def progress(written: int) -> None:
        elapsed = time.perf_counter() - started
        text = (f"landing: writing {written:,}/{args.events:,} events "
                f"({100 * written / args.events:.0f}%, {elapsed:.1f} s)")
        print(("\r" + text) if tty else text, end="" if tty else "\n", flush=True)

    say(f"landing: writing {args.events:,} events over {args.days} days into {args.files} files (not timed)")
    report = write_bench_landing(landing, events=args.events, days=args.days, files=args.files, seed=1,
                                 progress=progress)
    if tty:
        print()
    files = landing_files(landing)
    stamp = {
        "params": params,
        "events": report.events,
        "late_events": report.late_events,
        "start_day": report.start_day.isoformat(),
        "end_day": report.end_day.isoformat(),
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "seconds": round(time.perf_counter() - started, 2),
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    marker.write_text(json.dumps(stamp, indent=2))
    say(f"landing: wrote {stamp['events']:,} events, {stamp['bytes'] / 1e6:,.0f} MB "
        f"({stamp['bytes'] / max(stamp['events'], 1):,.0f} bytes/event) in {stamp['seconds']:.1f} s")
    return landing, {**stamp, "reused": False}


def warm_page_cache(files: list[Path]) -> None:
    """Read every landing file once so each measurement starts from the same (warm) page cache."""
    for path in files:
        with path.open("rb") as handle:
            while handle.read(16 << 20):
                pass


def run_child(measure: Measure, spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return what it wrote (or the error)."""
    spec = {**spec, "kind": measure.kind, "measure": measure.target,  # type: ignore[attr-defined]
            "result": str(work / "results" / f"{spec['name']}.json")}
    result_path = Path(spec["result"])
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, bench.harness as h; h.child(sys.argv[1])", json.dumps(spec)],
        cwd=ROOT, env=env, stdout=None, stderr=subprocess.PIPE, text=True,
    )
    process_seconds = time.perf_counter() - started
    if result_path.exists():
        result = json.loads(result_path.read_text())
    else:
        result = {"name": spec["name"], "error": f"child exited {proc.returncode} without a result"}
    if proc.returncode != 0 and "error" not in result:
        result["error"] = f"child exited {proc.returncode}"
    if "error" in result:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        result["stderr_tail"] = tail
    elif proc.stderr.strip():
        sys.stderr.write(proc.stderr)
    result["process_seconds"] = round(process_seconds, 3)
    return result


def child(spec_json: str) -> None:
    """Entry point of a measurement process: do one measurement, write its result file."""
    spec = json.loads(spec_json)
    result: dict[str, Any] = {"name": spec["name"], "kind": spec["kind"]}
    try:
        import polars  # noqa: F401  - imports are not part of any measurement
        import psutil  # noqa: F401

        from bench.profiler import Profiler, Sampler

        module, name = spec["measure"].split(":")
        measure = getattr(importlib.import_module(module), name)
        sampler = Sampler()
        profiler = Profiler(sampler)
        result["rss_before"] = sampler.rss()
        with sampler:
            outcome = measure(spec, profiler)
        if profiler.seconds is None:
            raise RuntimeError(f"measurement {spec['kind']} did not mark its timed region")
        after = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        with_profile = outcome.pop("with_profile", False)
        result.update(outcome)
        result.update({
            "seconds": round(profiler.seconds, 4),
            "cpu_seconds": round(profiler.cpu_seconds or 0.0, 3),
            # ru_maxrss is KiB on Linux: the exact high-water mark of this process (imports included).
            "peak_rss": max(after.ru_maxrss, children.ru_maxrss) * 1024,
            "peak_rss_sampled": sampler.peak,
            "profile": profiler.rows() if with_profile else None,
        })
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which carries on
        import traceback

        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"
    Path(spec["result"]).write_text(json.dumps(result, default=str))
    if "error" in result:
        sys.exit(1)


# ------------------------------------------------------------------------------------------------
# Shared by measurements (in the measurement processes)

REFERENCE_TABLES = ("users", "projects", "organizations")


def bench_ingest() -> Callable[[Any, str], Any]:
    """``ingest(lake, landing)``: ``transforms.ingest.ingest`` with daily partitions from 2020-01-01, imported
    here, before the caller's timed region."""
    from transforms.ingest import ingest
    from transforms.validate import ValidationSettings

    return lambda lake, landing: ingest(lake, landing, ValidationSettings(start_date=date(2020, 1, 1)))


def bench_references(directory: str) -> Any:
    """The reference data of the bench universe (seed 1): written into ``directory``, then loaded."""
    from pipelines.demo import write_reference_data
    from transforms.reference import load_references

    write_reference_data(Path(directory), seed=1)
    return load_references({n: f"{directory}/{n}.csv" for n in REFERENCE_TABLES})
