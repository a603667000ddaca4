"""Deterministic sample data: PostHog-format activity-log change events.

Everything here is a pure function of its arguments (the seed, the day range, the sizes): the same call
writes the same bytes. No Dagster, nothing printed; callers report progress through ``progress``.

- :func:`write_demo_landing` writes a realistic landing directory for the demo and the end-to-end tests:
  one NDJSON file per day plus every input format the ingest accepts (``.jsonl``, ``.jsonl.gz``, a BOM +
  CRLF ``.ndjson``, a ``.json`` array, a PostHog API page), late events, duplicates, blank lines and a
  small set of bad lines, with exact counts in the returned :class:`SampleReport`.
- :func:`write_bench_landing` writes large, clean NDJSON files quickly (~850 bytes a line) for benchmarks.
- :func:`write_reference_data` writes the users / projects / organizations CSVs of the same universe
  (the universe is a function of the seed, so pass the events' seed).

Modules: ``universe`` (organizations, projects, users; the reference CSVs), ``vocabulary`` (the data
tables), ``changes`` and ``bodies`` (what an event says), ``events`` (whole JSON lines: times, ids,
actors), ``landing`` and ``bench_landing`` (the two writers).
"""

from __future__ import annotations

from pipelines.demo.bench_landing import write_bench_landing
from pipelines.demo.events import SampleReport
from pipelines.demo.landing import write_demo_landing
from pipelines.demo.universe import write_reference_data

__all__ = [
    "SampleReport",
    "write_demo_landing",
    "write_bench_landing",
    "write_reference_data",
]
