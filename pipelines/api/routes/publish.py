"""The publisher API: events in over HTTP, through the landing area and the normal ingest.

    POST /api/projects/{project_id}/activity_log/events        events of a project
    POST /api/organizations/{org_id}/activity_log/events       organization-level events (admin keys)

The body is one event (a JSON object) or a batch ``{"events": [...]}`` (an object whose only member
is ``events``); at most ``publish.max_events`` events and ``publish.max_bytes`` bytes (413 beyond,
naming the limit). Keys need the scope ``activity_log:write`` (403 without it); the path's project
or organization must be the key's (404 otherwise, as on the read routes).

Each event is checked by the ingest's own rules (``transforms.validate``: the same split, parse and
validation a landing file gets) after the path has set ``team_id`` and ``organization_id`` (the path
wins over the body; an organization route publishes organization-level events, ``team_id`` null).
The response lists every index: ``accepted`` with the event's ``id`` and ``sha256``, the hex SHA-256
of its RFC 8785 canonical JSON as stored, or ``rejected`` with the reason. An event RFC 8785 cannot
represent exactly (an integer beyond ±2^53, a number beyond a double's range, an unpaired surrogate)
is rejected, saying so: its receipt could not be computed. ``?atomic=true``: nothing is accepted
when any event is rejected. 202 when something was accepted, else 422.

Accepted events are durable before the response: one spool file per request in the landing area
(``transforms.spool``), which the landing sensor or ``activitylog ingest`` then reads; an event id
already stored is a duplicate there (same content) or quarantined (other content), as for any file.

``Idempotency-Key`` (at most 255 visible ASCII characters): the response to a key of an API key is
remembered for ``publish.idempotency_ttl`` (24h); the same request again gets the same bytes and
writes nothing, another request with the key gets 422.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Literal

import msgspec
import polars as pl
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel

from pipelines.api.deps import SCOPE_EXTENSION, Access, ApiError, require_access
from transforms import jsontext
from transforms.commitments import CommitmentError, canonical, fast_canonical, plain_texts
from transforms.keys import WRITE_SCOPE
from transforms.landing import LandingLimits, describe_bytes
from transforms.spool import (
    MAX_IDEMPOTENCY_KEY,
    IdempotencyRecord,
    IdempotencyStore,
    SpoolError,
    request_digest,
    write_spool,
)
from transforms.validate import (
    REJECTED_SCHEMA,
    ValidationSettings,
    _array_elements,
    _member_start,
    _split_off_long,
    parse_keys,
    validate,
)

router = APIRouter(tags=["publish"])
_EVENT_SCHEMA = {"type": "object", "required": ["id", "activity", "scope", "created_at"],
                 "properties": {"id": {"type": "string"}, "activity": {"type": "string"}, "scope": {"type": "string"},
                                "created_at": {"type": "string", "format": "date-time"},
                                "item_id": {"type": "string"}, "user": {"type": "object"},
                                "detail": {"type": "object"}, "is_system": {"type": "boolean"},
                                "was_impersonated": {"type": "boolean"}}}
#: The scope the routes need, and their body in the OpenAPI document (read raw: the limits hold while it streams).
WRITE = {SCOPE_EXTENSION: WRITE_SCOPE, "requestBody": {"required": True, "content": {"application/json": {"schema": {
    "oneOf": [_EVENT_SCHEMA, {"type": "object", "required": ["events"], "additionalProperties": False,
                              "properties": {"events": {"type": "array", "items": _EVENT_SCHEMA}}}]}}}}}
SWEEP_EVERY = 3600.0  # seconds between removals of expired idempotency records


class AcceptedEvent(BaseModel):
    index: int
    status: Literal["accepted"]
    id: str
    sha256: str


class RejectedEvent(BaseModel):
    index: int
    status: Literal["rejected"]
    reason: str


class PublishResponse(BaseModel):
    accepted: int
    rejected: int
    results: list[AcceptedEvent | RejectedEvent]


class Publishing:
    """What the routes need: limits, the landing area, the validation settings, the idempotency store."""

    def __init__(self, landing: str, validation: ValidationSettings, limits: LandingLimits, *, max_events: int,
                 max_bytes: int, ttl_seconds: float | None) -> None:
        self.landing, self.validation, self.limits = landing, validation, limits
        self.max_events, self.max_bytes = max_events, max_bytes
        self.store = IdempotencyStore(landing, ttl_seconds)
        self._swept = time.monotonic()
        self._sweep_lock = threading.Lock()

    def maybe_sweep(self) -> None:
        with self._sweep_lock:
            if time.monotonic() - self._swept < SWEEP_EVERY:
                return
            self._swept = time.monotonic()
        self.store.sweep()


def install(app: FastAPI) -> None:
    """Include the publish routes in ``app``, with the landing area and limits of the environment and
    the configuration file (``publish:``)."""
    from pipelines.config import PublishConfig
    from pipelines.config.loader import load_section
    from transforms.settings import Settings

    settings = Settings.from_env()
    # Only its own section: the server neither reads the other sections nor needs their secrets.
    section = load_section("publish", PublishConfig)
    app.state.publishing = Publishing(settings.landing, settings.validation, settings.landing_limits,
                                      max_events=section.max_events, max_bytes=section.max_bytes,
                                      ttl_seconds=section.idempotency_seconds)
    app.include_router(router)


_RESPONSES = {202: {"description": "something was accepted (durably spooled)"},
              400: {"description": "malformed JSON, a body of another shape, a bad Idempotency-Key"},
              413: {"description": "more than publish.max_bytes or publish.max_events"},
              422: {"description": "nothing accepted (every event rejected, or an atomic batch with a rejection), "
                                   "or an Idempotency-Key reused with another request"}}


@router.post("/api/projects/{project_id}/activity_log/events", status_code=202, response_model=PublishResponse,
             responses=_RESPONSES, openapi_extra=WRITE)
async def publish_project_events(request: Request, project_id: int, atomic: bool = Query(False),
                                 idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
                                 access: Access = Depends(require_access)) -> Response:
    del project_id  # require_access resolved it
    overrides = {"team_id": access.project_id, "organization_id": access.organization_id}
    return await _publish(request, access, overrides, atomic, idempotency_key)


@router.post("/api/organizations/{org_id}/activity_log/events", status_code=202, response_model=PublishResponse,
             responses=_RESPONSES, openapi_extra=WRITE)
async def publish_organization_events(request: Request, org_id: str, atomic: bool = Query(False),
                                      idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
                                      access: Access = Depends(require_access)) -> Response:
    del org_id
    overrides = {"team_id": None, "organization_id": access.organization_id}
    return await _publish(request, access, overrides, atomic, idempotency_key)


# ------------------------------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = ApiError(413, f"request body is larger than publish.max_bytes ({describe_bytes(limit)})",
                         "max_bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _check_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY or not all(0x21 <= ord(c) <= 0x7E for c in value):
        raise ApiError(400, f"must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters", "Idempotency-Key")
    return value


async def _publish(request: Request, access: Access, overrides: dict, atomic: bool,
                   idempotency_key: str | None) -> Response:
    publishing: Publishing = request.app.state.publishing
    idempotency_key = _check_idempotency_key(idempotency_key)
    body = await _read_body(request, publishing.max_bytes)
    digest = request_digest(request.method, request.url.path, "atomic" if atomic else "", body)

    def run() -> Response:
        if idempotency_key is None:
            status, content = _process(publishing, body, overrides, atomic)
            return _response(status, content)
        store = publishing.store
        with store.claim(access.key.key_id, idempotency_key):
            record = store.get(access.key.key_id, idempotency_key)
            if record is not None:
                if record.request_sha256 != digest:
                    raise ApiError(422, "this Idempotency-Key was used with another request (path, atomic or body) "
                                        "by this key; use a new key for a new request", "Idempotency-Key")
                return _response(record.status, record.body, replayed=True)
            status, content = _process(publishing, body, overrides, atomic)
            store.put(access.key.key_id, idempotency_key, IdempotencyRecord(digest, status, content, time.time()))
        publishing.maybe_sweep()
        return _response(status, content)

    try:
        return await run_in_threadpool(run)
    except SpoolError:
        raise ApiError(503, "the request could not be completed durably: retry it with the same Idempotency-Key "
                            "(an event spooled twice is counted once, as a duplicate, by the ingest)",
                       headers={"Retry-After": "1"}) from None


def _response(status: int, content: bytes, replayed: bool = False) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return Response(content, status_code=status, media_type="application/json", headers=headers)


_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])


def _elements(body: bytes) -> list[str]:
    """The exact text of each event of the body (400 for a body that is not one event or a batch)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"request body is not UTF-8 (byte {exc.start + 1})") from None
    try:  # the common case, standard JSON, sliced by msgspec without building values
        members = _MEMBERS.decode(body)
        if list(members) == ["events"]:
            return [bytes(raw).decode("utf-8") for raw in _ARRAY.decode(members["events"])]
        return [text.strip()]
    except (msgspec.DecodeError, RecursionError):
        pass  # anything else (NaN, another shape, malformed) is judged and worded as before
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply") from None
    start = len(text) - len(text.lstrip())
    if isinstance(document, dict) and list(document) == ["events"]:
        if not isinstance(document["events"], list):
            raise ApiError(400, "events must be an array of event objects", "events")
        return _array_elements(text, _member_start(text, start, "events"))
    if isinstance(document, dict):
        return [text.strip()]
    raise ApiError(400, 'the body must be one event (a JSON object) or a batch {"events": [...]}, not '
                        + ("an array" if isinstance(document, list) else "a JSON " + type(document).__name__))


def _one_line(text: str) -> str:
    """An event's text on one line: a raw CR or LF can only be whitespace between tokens in valid JSON
    (strings hold them escaped), so each becomes a space; every value keeps its exact text."""
    return text.replace("\r", " ").replace("\n", " ")


def _with_path(text: str, overrides: dict) -> str | None:
    """The event with the path's ``team_id``/``organization_id``; None when its text is not an object
    whose members can be set (it is then rejected by the ingest's rules or as such)."""
    try:
        return jsontext.replace_members(text, overrides)
    except (ValueError, TypeError, RecursionError):
        return None


def _receipt(text: str) -> tuple[str | None, str | None]:
    """(hex SHA-256 of the RFC 8785 canonical JSON, None) or (None, why it has none)."""
    try:
        value = json.loads(text)
        return hashlib.sha256(canonical(value)).hexdigest(), None
    except CommitmentError as exc:
        return None, (f"{exc}: values RFC 8785 cannot represent exactly (integers beyond ±2^53, numbers beyond "
                      "a double's range, unpaired surrogates) are not accepted over HTTP; send them as strings")
    except (ValueError, RecursionError, UnicodeError) as exc:
        return None, f"not representable as RFC 8785 canonical JSON: {exc}"


def _receipts(texts: list[str]) -> list[tuple[str | None, str | None]]:
    """:func:`_receipt` of many events: those whose text is plain (:func:`transforms.commitments.plain_texts`,
    decided at once) are encoded by the fast canonical writer, the others by the exact path."""
    plain = plain_texts(pl.Series(texts, dtype=pl.String)).to_list() if texts else []
    found = []
    for text, fast in zip(texts, plain):
        if fast:
            try:
                found.append((hashlib.sha256(fast_canonical(json.loads(text))).hexdigest(), None))
                continue
            except (ValueError, TypeError, RecursionError):  # the exact path says why
                pass
        found.append(_receipt(text))
    return found


def _process(publishing: Publishing, body: bytes, overrides: dict, atomic: bool) -> tuple[int, bytes]:
    elements = _elements(body)
    if not elements:
        raise ApiError(400, "events is empty: send at least one event", "events")
    if len(elements) > publishing.max_events:
        raise ApiError(413, f"{len(elements):,} events is more than publish.max_events ({publishing.max_events:,})",
                       "max_events")
    reasons: dict[int, str] = {}
    texts: list[str] = []
    for index, element in enumerate(elements):
        element = _one_line(element)
        replaced = _with_path(element, overrides)
        texts.append(element if replaced is None else replaced)
        if replaced is None:
            reasons[index] = "the event is not a JSON object whose team_id and organization_id can be set"
    # The ingest's own rules, on the lines a landing file of these events would have (line = index + 1).
    lines = pl.DataFrame({"line": range(1, len(texts) + 1), "text": texts}, schema={"line": pl.Int64, "text": pl.String})
    lines, too_long = _split_off_long(lines, publishing.limits.max_line_bytes)
    parsed, not_json = parse_keys(lines)
    accepted, invalid = validate(parsed, publishing.validation)
    # The ingest's reason wins over ours: it says what is wrong with the event as sent.
    for line, reason in pl.concat([too_long.select(REJECTED_SCHEMA.keys()), not_json, invalid]).select(
            "line", "quarantine_reason").iter_rows():
        reasons[line - 1] = reason
    receipts: dict[int, tuple[str, str]] = {}
    expected_team = overrides["team_id"]
    rows = accepted.select("line", "id", "team_id", "organization_id", "text").rows()
    for (line, event_id, team_id, organization_id, text), (sha256, problem) in zip(
            rows, _receipts([row[4] for row in rows])):
        index = line - 1
        if index in reasons:
            continue
        if team_id != expected_team or organization_id != overrides["organization_id"]:  # never another tenant's
            reasons[index] = "the event's team_id and organization_id could not be set from the path"
            continue
        if problem:
            reasons[index] = problem
            continue
        receipts[index] = (event_id, sha256)
    if atomic and reasons:
        first = min(reasons)
        for index in receipts:
            reasons[index] = f"not accepted: the batch is atomic and event {first} was rejected"
        receipts = {}
    if receipts:
        write_spool(publishing.landing, [texts[index] for index in sorted(receipts)])
    results = []
    for index in range(len(elements)):
        if index in receipts:
            event_id, sha256 = receipts[index]
            results.append({"index": index, "status": "accepted", "id": event_id, "sha256": sha256})
        else:
            results.append({"index": index, "status": "rejected", "reason": reasons[index]})
    content = json.dumps({"accepted": len(receipts), "rejected": len(elements) - len(receipts), "results": results},
                         separators=(",", ":")).encode()
    return (202 if receipts else 422), content
