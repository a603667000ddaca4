"""Reference data an operator provides: ``users``, ``projects``, ``organizations``.

Each is a CSV file, a Parquet file or a Delta table (local path or s3:// URI). Columns:

- users: ``uuid`` (key), optional ``id, email, first_name, last_name, role``
- projects: ``team_id`` (key, integer), optional ``name, organization_id``
- organizations: ``organization_id`` (key), optional ``name``

A key that appears twice keeps its last row, so a join never multiplies events; an event without a
reference row keeps null names.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from deltalake import DeltaTable

from transforms.lake import s3_storage_options

REFERENCE_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "users": {"uuid": pl.String(), "id": pl.Int64(), "email": pl.String(), "first_name": pl.String(),
              "last_name": pl.String(), "role": pl.String()},
    "projects": {"team_id": pl.Int64(), "name": pl.String(), "organization_id": pl.String()},
    "organizations": {"organization_id": pl.String(), "name": pl.String()},
}
KEYS = {"users": "uuid", "projects": "team_id", "organizations": "organization_id"}


class ReferenceError(ValueError):
    """A reference table cannot be read or lacks its key column; the message names it."""


def empty_reference(name: str) -> pl.DataFrame:
    return pl.DataFrame(schema=REFERENCE_SCHEMAS[name])


def _read(uri: str) -> pl.DataFrame:
    options = s3_storage_options() if uri.startswith("s3://") else None
    lowered = uri.lower().rstrip("/")
    if lowered.endswith(".csv"):
        return pl.read_csv(uri, infer_schema=False, storage_options=options)  # all text, cast below
    if lowered.endswith(".parquet"):
        return pl.read_parquet(uri, storage_options=options)
    if DeltaTable.is_deltatable(uri, storage_options=options):
        return pl.read_delta(uri, storage_options=options)
    if not uri.startswith("s3://") and not Path(uri).exists():
        raise ReferenceError(f"reference table {uri} does not exist")
    raise ReferenceError(f"reference table {uri} is not a .csv file, a .parquet file or a Delta table")


def load_reference(name: str, uri: str | None) -> pl.DataFrame:
    """One reference table with the documented columns (missing optional columns are null)."""
    schema = REFERENCE_SCHEMAS[name]
    if uri is None:
        return empty_reference(name)
    try:
        frame = _read(uri)
    except ReferenceError:
        raise
    except Exception as exc:  # a parse or I/O error of a file the operator gave us
        raise ReferenceError(f"reference table {name} ({uri}) cannot be read: {exc}".splitlines()[0]) from exc
    key = KEYS[name]
    if key not in frame.columns:
        raise ReferenceError(f"reference table {name} ({uri}) has no {key!r} column (columns: {', '.join(frame.columns)})")
    columns = []
    for column, dtype in schema.items():
        if column in frame.columns:
            columns.append(pl.col(column).cast(pl.String).str.strip_chars().cast(dtype, strict=False))
        else:
            columns.append(pl.lit(None, dtype=dtype).alias(column))
    return (
        frame.select(columns)
        .filter(pl.col(key).is_not_null())
        .unique(key, keep="last", maintain_order=True)
    )


def load_references(uris: dict[str, str]) -> dict[str, pl.DataFrame]:
    return {name: load_reference(name, uris.get(name)) for name in REFERENCE_SCHEMAS}


def lake_reference_uris(lake_root: str) -> dict[str, str]:
    """Reference tables found under ``<lake>/reference/``: a Delta table ``<name>/``, or
    ``<name>.parquet`` / ``<name>.csv`` (local lakes)."""
    options = s3_storage_options() if lake_root.startswith("s3://") else None
    found: dict[str, str] = {}
    for name in REFERENCE_SCHEMAS:
        base = f"{lake_root.rstrip('/')}/reference/{name}"
        if DeltaTable.is_deltatable(base, storage_options=options):
            found[name] = base
            continue
        for suffix in (".parquet", ".csv"):
            if not lake_root.startswith("s3://") and Path(base + suffix).is_file():
                found[name] = base + suffix
                break
    return found
