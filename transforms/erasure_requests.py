"""Erasure requests: who is to be erased, and why, handed to the erasure run without naming them in it.

A Dagster run's configuration is stored in ``DAGSTER_HOME`` (``runs.db``) for ever; an email there
would outlive its erasure. So ``activitylog erase-user`` writes the request (the user's uuid or email,
the reason, who asked) to a file of its own under ``<lake>/_system/erasure_requests/<id>.json`` and
starts the run with the opaque id only. The run reads the request, erases, records the reason and the
requester in its ``user_erased`` event, and deletes the file. A request whose run was killed stays
until a later ``erase-user`` run finishes it (:func:`pending_requests`).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone

from transforms.lake import Lake

REQUESTS_DIR = "_system/erasure_requests"
_ID = re.compile(r"^[0-9a-f]{32}$")


class RequestError(ValueError):
    """No such request, or not one of ours."""


def _where(lake: Lake):
    from transforms.landing import _filesystem  # the same local/S3 handling as the landing area

    return _filesystem(f"{lake.root}/{REQUESTS_DIR}")


def write_request(lake: Lake, user: str, *, reason: str | None = None, requested_by: str | None = None) -> str:
    """Record a request; returns its id (32 hex characters, nothing of the user)."""
    request_id = uuid.uuid4().hex
    body = {"id": request_id, "user": user, "reason": reason, "requested_by": requested_by,
            "requested_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")}
    filesystem, base = _where(lake)
    filesystem.create_dir(base, recursive=True)
    with filesystem.open_output_stream(f"{base}/{request_id}.json") as stream:
        stream.write(json.dumps(body, ensure_ascii=False).encode())
    return request_id


def read_request(lake: Lake, request_id: str) -> dict:
    if not _ID.match(request_id or ""):
        raise RequestError(f"{request_id!r} is not an erasure request id (32 hex characters)")
    filesystem, base = _where(lake)
    try:
        with filesystem.open_input_stream(f"{base}/{request_id}.json") as stream:
            return json.loads(stream.read())
    except FileNotFoundError:
        raise RequestError(f"no erasure request {request_id} (finished already, or never made)") from None


def drop_request(lake: Lake, request_id: str) -> None:
    """Delete a finished request (the last place its user's identity was written)."""
    filesystem, base = _where(lake)
    try:
        filesystem.delete_file(f"{base}/{request_id}.json")
    except FileNotFoundError:
        pass


def pending_requests(lake: Lake) -> list[str]:
    """Ids of requests whose run has not finished them, oldest first."""
    import pyarrow.fs as pafs

    filesystem, base = _where(lake)
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    except FileNotFoundError:
        return []
    found = [(info.mtime_ns or 0, info.base_name[:-5]) for info in infos
             if info.type == pafs.FileType.File and info.base_name.endswith(".json") and _ID.match(info.base_name[:-5])]
    return [request_id for _, request_id in sorted(found)]
