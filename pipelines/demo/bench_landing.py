"""The bench landing: large, clean NDJSON files written quickly (~850 bytes a line) for the benchmarks."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pipelines.demo.events import Progress, SampleReport, _day_counts, _Run

_BENCH_POOL = 20_000


def write_bench_landing(
    landing: Path,
    *,
    events: int = 1_000_000,
    days: int = 365,
    files: int = 20,
    end_day: date | None = None,
    seed: int = 1,
    progress: Progress = None,
) -> SampleReport:
    """Write ``events`` clean events over ``days`` days into ``files`` NDJSON files, fast.

    Files are chronological chunks named ``bench-NNNN.jsonl``; ~1% of each chunk's events arrive late,
    in the next file. No bad lines, duplicates or blank lines. Details are drawn from a pool of
    pre-built bodies (the ids, times and actors are per event).
    """
    if days < 1 or files < 1:
        raise ValueError("days and files must be >= 1")
    run = _Run.start(landing, days=days, end_day=end_day, seed=seed, stream="bench")
    landing, day_list, rng, asm = run.landing, run.days, run.rng, run.asm
    pool = [run.bodies.make() for _ in range(min(_BENCH_POOL, max(events, 1)))]
    counts = _day_counts(rng, day_list, events)
    rand = rng.random
    pool_n = len(pool)
    paths = [landing / f"bench-{k:04d}.jsonl" for k in range(files)]

    boundaries = [events * (k + 1) // files for k in range(files)]  # chunk k ends before boundaries[k]
    chunk = 0
    handle = paths[0].open("w", encoding="utf-8", newline="\n", buffering=1 << 20)
    pending: list[str] = []  # late lines of the previous chunk, spread into this file
    carry: list[str] = []  # late lines of this chunk, for the next file
    late_events = 0
    written = 0
    next_progress = 50_000
    buf: list[str] = []

    def spread_rate() -> float:
        own = boundaries[chunk] - (boundaries[chunk - 1] if chunk else 0)
        return min(1.0, 2.0 * len(pending) / own) if own else 1.0

    rate = 0.0
    try:
        for d, n in zip(day_list, counts):
            if n == 0:
                continue
            for line in asm.day_lines(d, [pool[int(rand() * pool_n)] for _ in range(n)]):
                while written >= boundaries[chunk]:
                    handle.write("".join(buf))
                    buf.clear()
                    handle.write("".join(late + "\n" for late in pending))
                    handle.close()
                    chunk += 1
                    handle = paths[chunk].open("w", encoding="utf-8", newline="\n", buffering=1 << 20)
                    pending, carry = carry, []
                    rate = spread_rate()
                written += 1
                if chunk < files - 1 and rand() < 0.01:
                    carry.append(line)
                    late_events += 1
                else:
                    buf.append(line + "\n")
                if pending and rand() < rate:
                    buf.append(pending.pop() + "\n")
                if len(buf) >= 4096:
                    handle.write("".join(buf))
                    buf.clear()
                if progress is not None and written >= next_progress:
                    progress(written)
                    next_progress += 50_000
        handle.write("".join(buf))
        handle.write("".join(line + "\n" for line in pending))
        handle.close()
        # Only when events < files: trailing chunks are empty; the last carry goes to the next file.
        for k in range(chunk + 1, files):
            paths[k].write_text("".join(line + "\n" for line in carry), encoding="utf-8")
            carry = []
    finally:
        if not handle.closed:
            handle.close()
    if progress is not None:
        progress(written)
    return SampleReport(
        files=paths,
        events=events,
        duplicate_lines=0,
        malformed_lines=0,
        late_events=late_events,
        blank_lines=0,
        start_day=day_list[0],
        end_day=day_list[-1],
        malformed_reasons={},
    )
