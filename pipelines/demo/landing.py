"""The demo landing: a realistic landing directory for the demo and the end-to-end tests, in every input
format the ingest accepts, with late events, duplicates, blank lines and deliberate bad lines."""

from __future__ import annotations

import gzip
import json
import random
from datetime import date
from pathlib import Path
from typing import Any, Callable

from pipelines.demo.events import _EPOCH, _HOUR_WEIGHTS, Progress, SampleReport, _day_counts, _dumps, _Run

_N_DUPLICATES = 30


def _malformed_lines(rng: random.Random, make_valid: Callable[[], dict[str, Any]]) -> list[tuple[str, str]]:
    """(reason kind, exact line) for each deliberate bad line. Every one has an id seen nowhere else."""
    out: list[tuple[str, str]] = []

    line = _dumps(make_valid())
    out.append(("invalid_json", line[: len(line) * 3 // 5]))  # truncated mid-write
    line = _dumps(make_valid())
    out.append(("invalid_json", line[:-1] + ',"team_id": }'))
    out.append(("not_an_object", _dumps(["FeatureFlag", "updated", 12345, None])))
    ev = make_valid()
    del ev["created_at"]
    out.append(("missing_created_at", _dumps(ev)))
    ev = make_valid()
    ev["created_at"] = ev["created_at"].rstrip("Z")
    out.append(("created_at_without_timezone", _dumps(ev)))
    ev = make_valid()
    ev["created_at"] = "2999" + ev["created_at"][4:]
    out.append(("created_at_in_future", _dumps(ev)))
    ev = make_valid()
    ev["scope"] = "FeatureFlagScheduledChangeRolloutPercentageMultivariateVariantPayloadOverride"
    ev["scope"] += "History"
    out.append(("scope_too_long", _dumps(ev)))
    ev = make_valid()
    ev["id"] = ""
    out.append(("empty_id", _dumps(ev)))
    ev = make_valid()
    del ev["scope"]
    out.append(("missing_scope", _dumps(ev)))
    ev = make_valid()
    ev["item_id"] = "flag-" + "x" * 80
    out.append(("item_id_too_long", _dumps(ev)))
    assert all(len(ln) > 0 for _, ln in out)
    return out


def write_demo_landing(
    landing: Path,
    *,
    events: int = 50_000,
    days: int = 30,
    end_day: date | None = None,
    seed: int = 20240115,
    progress: Progress = None,
) -> SampleReport:
    """Write ``events`` distinct valid events over ``days`` days ending ``end_day`` into ``landing``.

    One file per day (``events-YYYY-MM-DD.<ext>``) in the formats the ingest accepts, with late events,
    exact-copy duplicates, blank lines and deliberate bad lines, all counted in the report.
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    if events < 0:
        raise ValueError("events must be >= 0")
    run = _Run.start(landing, days=days, end_day=end_day, seed=seed, stream="demo")
    landing, day_list, rng, bodies, asm = run.landing, run.days, run.rng, run.bodies, run.asm
    start_day, end_day = day_list[0], day_list[-1]
    counts = _day_counts(rng, day_list, events)

    # 1. Events per day, chronological, serialized.
    per_day: list[list[str]] = []
    written = 0
    for d, n in zip(day_list, counts):
        per_day.append(list(asm.day_lines(d, [bodies.make() for _ in range(n)])))
        written += n
        if progress is not None:
            progress(written)

    # 2. Late events: ~2% of a day's events arrive in a file 1-3 days later (or the last day's file).
    files: list[list[str]] = [[] for _ in day_list]
    late: list[tuple[int, str]] = []
    last = days - 1
    for i, lines in enumerate(per_day):
        for line in lines:
            if i < last and rng.random() < 0.02:
                late.append((min(i + rng.randint(1, 3), last), line))
            else:
                files[i].append(line)
    for target, line in late:
        files[target].insert(rng.randrange(len(files[target]) + 1), line)

    # 3. Formats: the last day stays plain; a few others get every format the ingest accepts.
    fmt = ["jsonl"] * days
    candidates = list(range(days - 1))
    rng.shuffle(candidates)
    for kind in ("array", "page", "crlf_bom"):
        if candidates:
            fmt[candidates.pop()] = kind
    for _ in range(min(3, max(1, days // 10))):
        if candidates:
            fmt[candidates.pop()] = "gz"
    ndjson_files = [i for i in range(days) if fmt[i] in ("jsonl", "gz", "crlf_bom")]

    def insert_pos(i: int) -> int:
        # Never before the first line of the BOM file: the BOM stays glued to a valid event.
        lo = 1 if fmt[i] == "crlf_bom" and files[i] else 0
        return rng.randint(lo, len(files[i]))

    # 4. Duplicates: exact copies of valid lines, in the same file or another NDJSON file.
    all_positions = [(i, j) for i in range(days) for j in range(len(files[i]))]
    n_dup = min(_N_DUPLICATES, len(all_positions))
    originals = [(i, files[i][j]) for i, j in rng.sample(all_positions, n_dup)]
    for k, (src, line) in enumerate(originals):
        if fmt[src] in ("jsonl", "gz", "crlf_bom") and (k % 2 == 0 or len(ndjson_files) == 1):
            target = src
        else:
            others = [i for i in ndjson_files if i != src] or ndjson_files
            target = rng.choice(others)
        files[target].insert(insert_pos(target), line)

    # 5. Bad lines, then blank lines, only in NDJSON files.
    def make_valid() -> dict[str, Any]:
        d = rng.choice(day_list)
        us = (rng.choices(asm.hours, _HOUR_WEIGHTS)[0] * 3600 + rng.randrange(3600)) * 10**6 + rng.randrange(10**6)
        body = bodies.make()
        return json.loads(asm.line(body, (d - _EPOCH).days * 86400, d.isoformat(), us))

    reasons: dict[str, int] = {}
    bad = _malformed_lines(rng, make_valid)
    for kind, line in bad:
        target = rng.choice(ndjson_files)
        files[target].insert(insert_pos(target), line)
        reasons[kind] = reasons.get(kind, 0) + 1
    blank_targets = [rng.choice(ndjson_files) for _ in range(5)]
    crlf = [i for i in ndjson_files if fmt[i] == "crlf_bom"]
    gz = [i for i in ndjson_files if fmt[i] == "gz"]
    blank_targets += crlf[:1] + gz[:1]
    for target in blank_targets:
        files[target].insert(insert_pos(target), "")
    files[last].append("")  # a trailing blank line at the end of a file
    blank_lines = len(blank_targets) + 1

    # 6. Write.
    paths: list[Path] = []
    for i, d in enumerate(day_list):
        stem = f"events-{d.isoformat()}"
        lines = files[i]
        kind = fmt[i]
        if kind == "jsonl":
            path = landing / f"{stem}.jsonl"
            path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
        elif kind == "gz":
            path = landing / f"{stem}.jsonl.gz"
            data = ("\n".join(lines) + "\n").encode("utf-8")
            with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gzf:
                gzf.write(data)
        elif kind == "crlf_bom":
            path = landing / f"{stem}.ndjson"
            path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode("utf-8"))
        elif kind == "array":
            path = landing / f"{stem}.json"
            path.write_bytes(("[\n" + ",\n".join(lines) + "\n]\n").encode("utf-8"))
        else:  # PostHog API page
            path = landing / f"{stem}.json"
            path.write_bytes(('{"results": [\n' + ",\n".join(lines) + '\n], "next": null}\n').encode("utf-8"))
        paths.append(path)

    return SampleReport(
        files=paths,
        events=events,
        duplicate_lines=n_dup,
        malformed_lines=len(bad),
        late_events=len(late),
        blank_lines=blank_lines,
        start_day=start_day,
        end_day=end_day,
        malformed_reasons=reasons,
    )

