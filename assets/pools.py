"""Concurrency pools: every op that writes a Delta table is in the pool named after that table, so a
pool limit of 1 (deploy/dagster.yaml: ``pools: default_limit``) lets one run at a time write it.

Delta commits are optimistic (a losing commit is retried and nothing is lost), so the pools are not
what keeps the lake correct; they keep runs from repeating each other's work on a table, and keep
the writers of ``activity_raw`` and the integrity chain (ingest, retention, erasure) in one line.
Raise one pool's limit with ``dagster instance concurrency set <pool> <limit>``.
"""

from transforms.lake import ACTIVITY_RAW


def table_pool(table: str) -> str:
    return f"delta_{table}"


# ingest, retention and erase-user all write activity_raw and extend the digest chain over it
RAW_POOL = table_pool(ACTIVITY_RAW)
