"""The log audits its own readers: who read, exported, downloaded or was given access to the log.

Every audit record is a system activity event of PostHog's shape (scope ``ActivityLog``, ``user`` null,
``is_system`` true) that belongs to the tenant it is about: the project read (``team_id``) and its
organization, or only the organization for organization-level reads. It goes into the log through the
normal path: a spool file in the landing area (:func:`transforms.spool.write_spool`), which the ingest
validates, dedupes, chains and refreshes like any event; so audit records are queried, exported,
streamed and notified on like everything else, and erased or expired by the same rules.

A record carries what was asked and how much was returned, never the rows themselves: the route, the
key id (never the key), the request's filter parameters, the row count and the status.

    activity      item_id             kind        when
    viewed        the route's last    reads       a read route or page answered rows (or filter choices)
                  named segment
    exported      the export id       exports     an export was accepted (API or page)
    downloaded    the export id       exports     an export's file was handed out
    key_created   the key id          keys        ``activitylog keys create`` made a key
    key_revoked   the key id          keys        ``activitylog keys revoke`` revoked one
    viewer_token_issued  the key id   keys        a viewer token was issued for a key

Retention runs and erasures record themselves already (``retention_deleted``, ``user_erased``, in the
system organization) and are always recorded: they change the record itself.

:class:`AuditLog` buffers records and spools them in batches: ``durable`` records (exports, keys) are
written before the caller answers; reads are written at most ``flush_seconds`` later (a process killed
with ``kill -9`` loses at most that window of read records, never an export's or a key's).

No Dagster, no FastAPI.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from transforms import jsontext

AUDIT_SCOPE = "ActivityLog"
AUDIT_CLIENT = "activitylog"
KINDS = ("reads", "exports", "keys")
#: Query parameters never written into a record (credentials that may travel in a URL).
SECRET_PARAMETERS = frozenset({"token", "api_key", "key", "access_token", "csrf"})
MAX_PARAMETER_TEXT = 1_000  # a filter value longer than this is cut (the record stays small)
MAX_PARAMETERS = 50


@dataclass(frozen=True)
class AuditSettings:
    """Which kinds are recorded (the configuration file's ``audit:`` section) and how often read
    records are written."""

    reads: bool = False
    exports: bool = True
    keys: bool = True
    flush_seconds: float = 1.0

    def records(self, kind: str) -> bool:
        if kind not in KINDS:
            raise ValueError(f"unknown audit kind {kind!r}: one of {', '.join(KINDS)}")
        return bool(getattr(self, kind))


def _now_text(now: datetime | None) -> str:
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _text(value: str) -> str:
    """Valid Unicode (an unpaired surrogate becomes ``?``): every record encodes as JSON."""
    return value.encode("utf-8", "replace").decode("utf-8")


def filter_parameters(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """A request's query parameters as ``{name: [values]}``, without credentials, bounded in size."""
    found: dict[str, list[str]] = {}
    for name, value in items:
        if name.lower() in SECRET_PARAMETERS:
            continue
        if name not in found and len(found) >= MAX_PARAMETERS:
            continue
        text = value if len(value) <= MAX_PARAMETER_TEXT else value[:MAX_PARAMETER_TEXT] + "…"
        found.setdefault(_text(name[:100]), []).append(_text(text))
    return found


def audit_event(activity: str, *, organization_id: str, project_id: int | None, item_id: str, context: dict[str, Any],
                name: str | None = None, ip_address: str | None = None, now: datetime | None = None,
                event_id: str | None = None) -> dict[str, Any]:
    """One audit record: a system event of the tenant it is about (``project_id`` None: organization-level)."""
    event: dict[str, Any] = {
        "id": event_id or f"audit-{uuid.uuid4().hex}", "activity": activity, "scope": AUDIT_SCOPE,
        "item_id": item_id[:72],
        "detail": {"name": name or item_id, "short_id": None, "type": "audit", "changes": None, "trigger": None,
                   "context": context},
        "user": None, "created_at": _now_text(now), "is_system": True, "was_impersonated": False,
        "team_id": project_id, "organization_id": organization_id, "client": AUDIT_CLIENT,
    }
    if ip_address:
        event["ip_address"] = ip_address
    return event


def read_event(*, organization_id: str, project_id: int | None, route: str, key_id: str,
               parameters: dict[str, list[str]], rows: int | None, status: int = 200, cached: bool = False,
               ip_address: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """``viewed``: a read of ``route`` by ``key_id`` that answered ``rows`` rows (None: not a row listing)."""
    segments = [part for part in route.split("/") if part and not part.startswith("{")]
    resource = segments[-1] if segments else "feed"  # the page at / is the feed
    return audit_event("viewed", organization_id=organization_id, project_id=project_id, item_id=resource,
                       name=route, ip_address=ip_address, now=now,
                       context={"route": route, "key_id": key_id, "filter": parameters, "rows": rows,
                                "status": status, "cached": cached})


def key_event(activity: str, key: Any, *, now: datetime | None = None, **context: Any) -> dict[str, Any]:
    """``key_created`` / ``key_revoked`` for an :class:`transforms.keys.ApiKey`: in the key's project
    when it names exactly one and is not an admin key, else at its organization's level."""
    project = key.projects[0] if len(key.projects) == 1 and not key.admin else None
    return audit_event(activity, organization_id=key.organization_id, project_id=project, item_id=key.key_id,
                       name=f"API key {key.key_id}", now=now,
                       context={"key_id": key.key_id, "projects": list(key.projects), "admin": key.admin,
                                "scopes": list(key.scopes), "label": key.label, **context})


def spool_events(landing: str, events: list[dict[str, Any]]) -> str:
    """Write events as one durable spool file of the landing area (:func:`transforms.spool.write_spool`);
    its URI. How every record of the log about itself reaches the ingest."""
    from transforms.spool import write_spool

    return write_spool(landing, [jsontext.encode(event) for event in events])


class AuditLog:
    """Audit records on their way into the landing area.

    ``write`` is how a batch of records (JSON texts) becomes durable (e.g. ``lambda lines:
    write_spool(landing, lines)``). :meth:`record` with ``durable=True`` writes the record's batch at
    once and raises if that fails (the caller then fails its request: an export nobody can audit is
    not handed out); otherwise the record waits for the next flush: every ``settings.flush_seconds``
    by a background thread, when ``max_batch`` records wait, and at :meth:`close`. A failed background
    write keeps the records for the next attempt (bounded by ``max_pending``; beyond it the oldest are
    counted in ``dropped`` and reported by :meth:`stats`)."""

    def __init__(self, settings: AuditSettings, write: Callable[[list[str]], Any], *, max_batch: int = 1_000,
                 max_pending: int = 100_000, on_error: Callable[[str], None] | None = None) -> None:
        self.settings, self._write = settings, write
        self.max_batch, self.max_pending = max_batch, max_pending
        self._on_error = on_error
        self._pending: list[str] = []
        self._lock = threading.Lock()          # guards _pending and the counters
        self._write_lock = threading.Lock()    # one write at a time, in order
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None

    def enabled(self, kind: str) -> bool:
        return self.settings.records(kind)

    def record(self, kind: str, event: dict[str, Any], *, durable: bool = False) -> bool:
        """Record ``event`` if ``kind`` is on; returns whether it was recorded."""
        if not self.enabled(kind):
            return False
        line = jsontext.encode(event)
        if durable:
            with self._write_lock:
                self._write([line])
            with self._lock:
                self.written += 1
            return True
        with self._lock:
            self._pending.append(line)
            if len(self._pending) > self.max_pending:
                overflow = len(self._pending) - self.max_pending
                del self._pending[:overflow]
                self.dropped += overflow
            full = len(self._pending) >= self.max_batch
        self._start()
        if full:
            self._wake.set()
        return True

    def flush(self) -> int:
        """Write what waits; returns how many records were written (raises if the write fails; the
        records then wait for the next attempt)."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return 0
            done = 0
            try:
                while done < len(batch):
                    chunk = batch[done:done + self.max_batch]
                    self._write(chunk)
                    done += len(chunk)
            except BaseException:
                with self._lock:  # what was not written waits, ahead of anything recorded since
                    self._pending[:0] = batch[done:]
                    self.written += done
                raise
            with self._lock:
                self.written += len(batch)
            return len(batch)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"pending": len(self._pending), "written": self.written, "dropped": self.dropped,
                    "last_error": self.last_error}

    def close(self) -> None:
        """Stop the background thread and write what waits (at shutdown)."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._flush_reporting()

    def _start(self) -> None:
        if self._thread is not None or self._closed:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-flush", daemon=True)
                self._thread.start()

    def _flush_reporting(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - kept for the next attempt, reported
            message = f"audit records not written yet ({type(exc).__name__}: {exc}); retrying"
            with self._lock:
                self.last_error = message
            if self._on_error is not None:
                self._on_error(message)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.settings.flush_seconds)
            self._wake.clear()
            self._flush_reporting()
