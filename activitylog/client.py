"""A client of the publisher API: :class:`Publisher` batches events and posts them in the background.

    from activitylog.client import Publisher

    with Publisher("http://127.0.0.1:8000", token, project_id=1) as publisher:
        publisher.publish({"id": "…", "activity": "updated", "scope": "FeatureFlag",
                           "created_at": "2024-05-01T10:00:00Z", "detail": {...}})
    # leaving the block flushes: every event was sent, and each batch's response is in .results

Events are sent in batches of at most ``batch_size`` events (and ``max_batch_bytes`` bytes) when a
batch is full, every ``flush_interval`` seconds, on :meth:`flush` and on :meth:`close`. Each batch has
one ``Idempotency-Key`` for all its attempts: a retry after a lost response, a refused connection, a
timeout, 429 or a 5xx never stores a batch twice. Events the server rejects are listed in
:attr:`Publisher.rejected` with the reason; a batch that could not be delivered (retries exhausted,
or refused: 400, 401, 403, 404, 413) is in :attr:`Publisher.failed`, and :meth:`flush` / :meth:`close`
raise :class:`PublishError` for it, carrying the events: nothing is dropped in silence.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential_jitter

__all__ = ["BatchResult", "PublishError", "Publisher"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class PublishError(Exception):
    """Batches that could not be delivered; ``batches`` holds them with their events."""

    def __init__(self, batches: list["BatchResult"]) -> None:
        self.batches = batches
        first = batches[0]
        super().__init__(f"{len(batches)} batch(es) of {sum(len(b.events) for b in batches)} events not delivered; "
                         f"first: {first.error}")


@dataclass
class BatchResult:
    """One batch: its events, its idempotency key, the attempts it took and the server's answer."""

    events: list[dict]
    idempotency_key: str
    attempts: int = 0
    status: int | None = None          # the final HTTP status (None: no response at all)
    body: dict | None = None           # the final response's JSON
    error: str | None = None           # why the batch was not delivered (None when it was)

    @property
    def delivered(self) -> bool:
        return self.error is None


class _Retry(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _retryable(error: BaseException) -> bool:
    return isinstance(error, (_Retry, httpx.TransportError))


@dataclass
class _Pending:
    events: deque = field(default_factory=deque)   # (event, its JSON bytes)
    in_flight: int = 0


class Publisher:
    """Posts events to ``{url}/api/projects/{project_id}/activity_log/events`` (or the organization's
    route with ``organization_id``) with a key of scope ``activity_log:write``."""

    def __init__(self, url: str, token: str, *, project_id: int | None = None, organization_id: str | None = None,
                 batch_size: int = 100, max_batch_bytes: int = 4 * 1024 * 1024, flush_interval: float = 1.0,
                 max_attempts: int = 8, max_retry_seconds: float = 60.0, timeout: float = 10.0, atomic: bool = False,
                 on_batch: Callable[[BatchResult], None] | None = None,
                 client: httpx.Client | None = None) -> None:
        if (project_id is None) == (organization_id is None):
            raise ValueError("give exactly one of project_id and organization_id")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        where = f"projects/{int(project_id)}" if project_id is not None else f"organizations/{organization_id}"
        self.endpoint = f"{url.rstrip('/')}/api/{where}/activity_log/events"
        self.batch_size, self.max_batch_bytes, self.flush_interval = batch_size, max_batch_bytes, flush_interval
        self.atomic, self.on_batch = atomic, on_batch
        self.results: list[BatchResult] = []
        self.rejected: list[tuple[dict, str]] = []     # (event, reason)
        self.failed: list[BatchResult] = []
        self.callback_errors: list[Exception] = []     # what ``on_batch`` raised
        self._reported = 0                              # failures already raised by flush()
        self._client = client or httpx.Client(timeout=timeout)
        self._own_client = client is None
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._retrying = dict(stop=stop_after_attempt(max_attempts) | stop_after_delay(max_retry_seconds),
                              wait=wait_exponential_jitter(initial=0.1, max=5.0),
                              retry=retry_if_exception(_retryable), reraise=True)
        self._pending = _Pending()
        self._lock = threading.Condition()
        self._flush_now = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="activitylog-publisher", daemon=True)
        self._thread.start()

    # -- the caller's side

    def publish(self, event: dict) -> None:
        """Queue one event (a JSON object). It is encoded at once: an event that is not JSON fails here."""
        if not isinstance(event, dict):
            raise TypeError("an event is a dict (a JSON object)")
        encoded = json.dumps(event, separators=(",", ":"), allow_nan=False).encode()
        with self._lock:
            if self._closed:
                raise RuntimeError("the publisher is closed")
            self._pending.events.append((event, encoded))
            if len(self._pending.events) >= self.batch_size:
                self._lock.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued and wait for the answers. Raises :class:`PublishError` for batches that
        failed since the last flush, and ``TimeoutError`` when ``timeout`` passes first."""
        with self._lock:
            self._flush_now = True
            self._lock.notify_all()
            if not self._lock.wait_for(lambda: not self._pending.events and not self._pending.in_flight
                                       or not self._thread.is_alive(), timeout):
                raise TimeoutError(f"{len(self._pending.events)} events not sent within {timeout}s")
            if self._pending.events:
                raise RuntimeError(f"the publisher's thread stopped: {len(self._pending.events)} events not sent")
            new_failures = self.failed[self._reported:]
            self._reported = len(self.failed)
        if new_failures:
            raise PublishError(new_failures)

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the background thread (and the HTTP client it made)."""
        try:
            self.flush(timeout)
        finally:
            with self._lock:
                self._closed = True
                self._lock.notify_all()
            self._thread.join(timeout)
            if self._own_client:
                self._client.close()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- the background thread

    def _take(self) -> list[tuple[dict, bytes]]:
        batch, size = [], 0
        events = self._pending.events
        while events and len(batch) < self.batch_size:
            event, encoded = events[0]
            if batch and size + len(encoded) + 1 > self.max_batch_bytes:
                break
            batch.append(events.popleft())
            size += len(encoded) + 1
        return batch

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._closed or self._flush_now
                                    or len(self._pending.events) >= self.batch_size, self.flush_interval)
                if not self._pending.events:
                    self._flush_now = False
                    self._lock.notify_all()
                    if self._closed:
                        return
                    continue
                batch = self._take()
                self._pending.in_flight += 1
            try:
                self._send(batch)
            finally:
                with self._lock:
                    self._pending.in_flight -= 1
                    self._lock.notify_all()

    def _send(self, batch: list[tuple[dict, bytes]]) -> None:
        result = BatchResult(events=[event for event, _ in batch], idempotency_key=uuid.uuid4().hex)
        body = b'{"events":[' + b",".join(encoded for _, encoded in batch) + b"]}"
        headers = {**self._headers, "Idempotency-Key": result.idempotency_key}
        params = {"atomic": "true"} if self.atomic else None

        def attempt() -> httpx.Response:
            result.attempts += 1
            response = self._client.post(self.endpoint, content=body, headers=headers, params=params)
            if response.status_code in RETRY_STATUSES:
                raise _Retry(response)
            return response

        try:
            response = Retrying(**self._retrying)(attempt)
        except _Retry as exc:
            result.status, result.error = exc.response.status_code, f"HTTP {exc.response.status_code} after " \
                f"{result.attempts} attempts: {exc.response.text[:300]}"
        except httpx.HTTPError as exc:
            result.error = f"{type(exc).__name__} after {result.attempts} attempts: {exc}"
        else:
            result.status = response.status_code
            try:
                result.body = response.json()
            except ValueError:
                result.body = None
            if response.status_code not in (202, 422) or not isinstance(result.body, dict) \
                    or "results" not in result.body:
                result.error = f"HTTP {response.status_code}: {response.text[:300]}"
        with self._lock:
            self.results.append(result)
            if result.error is not None:
                self.failed.append(result)
            else:
                for item in result.body["results"]:
                    if item.get("status") == "rejected":
                        self.rejected.append((result.events[item["index"]], item.get("reason", "")))
        if self.on_batch is not None:
            try:
                self.on_batch(result)
            except Exception as exc:  # noqa: BLE001 - a failing callback must not stop the deliveries
                self.callback_errors.append(exc)
