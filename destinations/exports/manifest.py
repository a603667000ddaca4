"""The manifest's integrity section, and verifying an export against its manifest."""

from __future__ import annotations

import json
from datetime import date

import polars as pl

from destinations.exports.errors import ExportError
from destinations.exports.targets import read_bytes, sha256_of
from transforms.lake import Lake


def integrity_of(lake: Lake, days: list[str]) -> dict | None:
    """The integrity-chain digest of each day covered (``activitylog verify`` checks the chain)."""
    from transforms.integrity import ACTIVITY_DIGESTS, digests, latest

    if not lake.exists(ACTIVITY_DIGESTS) or not days:
        return None
    rows = latest(digests(lake)).filter(pl.col("day").is_in([date.fromisoformat(d) for d in days]))
    return {"table": ACTIVITY_DIGESTS, "days": {row["day"].isoformat(): {
        "digest": row["digest"], "version": row["version"], "events": row["events"],
        "signature_kind": row["signature_kind"]} for row in rows.sort("day").iter_rows(named=True)}}


def verify_manifest(manifest_uri: str) -> tuple[dict, list[str]]:
    """Recompute the SHA-256 and size of every file the manifest lists. Returns (manifest, problems)."""
    try:
        text = b"".join(read_bytes(manifest_uri)).decode("utf-8")
    except FileNotFoundError:
        raise ExportError(f"{manifest_uri}: no such manifest") from None
    except Exception as exc:  # noqa: BLE001 - S3 errors come in many types; say which
        raise ExportError(f"{manifest_uri}: cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        manifest = json.loads(text)
        files = manifest["files"]
    except (ValueError, KeyError, TypeError):
        raise ExportError(f"{manifest_uri}: not an export manifest") from None
    base = manifest_uri.rsplit("/", 1)[0] if "/" in manifest_uri else "."
    problems = []
    for entry in files:
        uri = f"{base}/{entry['path']}"
        try:
            digest, size = sha256_of(uri)
        except FileNotFoundError:
            problems.append(f"{entry['path']}: missing")
            continue
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{entry['path']}: cannot be read ({type(exc).__name__})")
            continue
        if size != entry["bytes"]:
            problems.append(f"{entry['path']}: {size:,} bytes, the manifest says {entry['bytes']:,}")
        if digest != entry["sha256"]:
            problems.append(f"{entry['path']}: SHA-256 {digest} does not match the manifest's {entry['sha256']}")
    return manifest, problems
