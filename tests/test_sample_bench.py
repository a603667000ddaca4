"""Tests for pipelines.demo's bench landing: counts and size, chronological chunks with late events in the
next file, determinism and progress. Counts are re-derived from the bytes on disk (tests.helpers.sample)."""

from datetime import timedelta

import pytest

from pipelines.demo import SampleReport, write_bench_landing
from tests.helpers.sample import END, Audit, audit, parse_ts


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[SampleReport, Audit]:
    landing = tmp_path_factory.mktemp("bench")
    report = write_bench_landing(landing, events=20_000, days=30, files=4, end_day=END, seed=7)
    return report, audit(report.files)


# ---------------------------------------------------------------------------------------------
# Bench landing
# ---------------------------------------------------------------------------------------------


def test_bench_counts_and_size(bench):
    report, a = bench
    assert [p.name for p in report.files] == [f"bench-{k:04d}.jsonl" for k in range(4)]
    assert report.events == 20_000 == len(a.lines) == len(a.valid) == len(a.distinct)
    assert report.duplicate_lines == report.malformed_lines == report.blank_lines == a.blank == 0
    assert report.malformed_reasons == {}
    assert report.start_day == END - timedelta(days=29) and report.end_day == END
    total = sum(p.stat().st_size for p in report.files)
    assert 600 <= total / report.events <= 1000
    for p in report.files:
        assert 0.8 * 5_000 <= sum(1 for _ in p.open("rb")) <= 1.2 * 5_000
    days = {parse_ts(e["created_at"]).date() for e in a.distinct.values()}
    assert min(days) == report.start_day and max(days) == report.end_day


def test_bench_chunks_are_chronological_with_late_events(bench):
    report, a = bench
    ordered = sorted(a.valid, key=lambda x: parse_ts(x.value["created_at"]))
    n, files = report.events, len(report.files)
    bounds = [n * (k + 1) // files for k in range(files)]
    late = 0
    for rank, line in enumerate(ordered):
        chunk = next(k for k, b in enumerate(bounds) if rank < b)
        k = report.files.index(line.file)
        if k != chunk:
            assert k == chunk + 1, "late events go into the next file"
            late += 1
    assert late == report.late_events
    assert 0.005 < late / n < 0.015
    system = sum(1 for e in a.distinct.values() if e["is_system"]) / n
    assert 0.045 < system < 0.075


def test_bench_is_deterministic_and_reports_progress(tmp_path):
    seen: list[int] = []
    r1 = write_bench_landing(tmp_path / "a", events=3_000, days=10, files=3, end_day=END, seed=5,
                             progress=seen.append)
    r2 = write_bench_landing(tmp_path / "b", events=3_000, days=10, files=3, end_day=END, seed=5)
    assert seen[-1] == 3_000
    assert [p.read_bytes() for p in r1.files] == [p.read_bytes() for p in r2.files]
    # More files than events: every event is still written exactly once.
    r3 = write_bench_landing(tmp_path / "c", events=3, days=2, files=5, end_day=END, seed=5)
    a = audit(r3.files)
    assert len(r3.files) == 5 and len(a.lines) == len(a.distinct) == 3
