"""SIEM sinks and the stream pass: S3 (or a local directory), Splunk HEC, Datadog logs, syslog.

Every sink takes a batch of records and either accepts it or raises :class:`DeliveryFailed`; the pass
(:func:`run_streams`) records the batch's event ids as acknowledged only after that. Retries (429,
5xx, timeouts, connection errors) use the same policy as notifications. A stream whose sink fails
stops where it is (its progress stays) and resumes from there on the next run, losing nothing.
"""

from __future__ import annotations

import gzip
import os
import socket
import ssl
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import httpx

from destinations.delivery import DeliveryFailed, RetryPolicy, post
from transforms import jsontext, storage
from transforms.lake import Lake
from transforms.streams import (
    PAUSED, acknowledged, due_days, health_event, next_health, record_acks, record_health, record_progress, records,
    stream_health, stream_rows,
)

HOSTNAME = socket.gethostname()
DATADOG_MAX_BYTES = 5 * 2**20
SYSLOG_FACILITY_SEVERITY = 13 * 8 + 6  # facility 13 (log audit), severity 6 (informational)


def _dumps(record: Any) -> str:
    return jsontext.encode(record)  # nested JSON texts (detail) embedded exactly


def _http_call(client: httpx.Client, policy: RetryPolicy, what: str, **request) -> None:
    post(client, policy, what, lambda: request, permanent=frozenset({401, 403, 404, 410}))


class S3Sink:
    """Gzipped NDJSON objects under ``<uri>YYYY/MM/DD/HH/<batch id>.json.gz`` (s3:// or a local directory)."""

    def __init__(self, spec, policy: RetryPolicy) -> None:
        self.uri = spec.uri if spec.uri.endswith("/") else spec.uri + "/"
        self.policy = policy

    def send(self, batch: list[dict], batch_id: str) -> str:
        now = datetime.now(timezone.utc)
        key = f"{now:%Y/%m/%d/%H}/{batch_id}.json.gz"
        body = gzip.compress("".join(_dumps(r) + "\n" for r in batch).encode(), compresslevel=6)
        if storage.is_s3(self.uri):
            from botocore.exceptions import BotoCoreError, ClientError

            def put() -> None:
                try:
                    storage.put_bytes(self.uri + key, body, ContentType="application/x-ndjson",
                                      ContentEncoding="gzip")
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code", "")
                    raise DeliveryFailed(f"S3 {code}: {exc}", retryable=code in ("SlowDown", "InternalError",
                                                                                 "ServiceUnavailable", "503")) from None
                except BotoCoreError as exc:
                    raise DeliveryFailed(f"S3 unreachable: {exc}", retryable=True) from None
                except storage.StorageError as exc:
                    raise DeliveryFailed(str(exc), retryable=False) from None

            self.policy.call(put, "S3")
            return self.uri + key
        target = Path(self.uri) / key
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_bytes(body)
        os.replace(partial, target)  # readers never see half an object
        return str(target)


class SplunkSink:
    """HTTP Event Collector: ``Authorization: Splunk <token>``, batched ``{time, host, source, sourcetype, event}``."""

    def __init__(self, spec, policy: RetryPolicy, where: str) -> None:
        self.url = spec.url.value(f"{where}.sink.url")
        self.token = spec.token.value(f"{where}.sink.token")
        self.spec = spec
        self.policy = policy
        self.client = httpx.Client(timeout=spec.timeout)

    def send(self, batch: list[dict], batch_id: str) -> str:
        events = []
        for record in batch:
            moment = record.get("time") / 1000 if isinstance(record.get("time"), int) else _epoch(record.get("created_at"))
            event = {"time": moment, "host": HOSTNAME, "source": self.spec.source,
                     "sourcetype": self.spec.sourcetype, "event": record}
            if self.spec.index:
                event["index"] = self.spec.index
            events.append(_dumps(event))
        _http_call(self.client, self.policy, "Splunk HEC", url=self.url, content="\n".join(events).encode(),
                   headers={"Authorization": f"Splunk {self.token}", "Content-Type": "application/json",
                            "X-Splunk-Request-Channel": batch_id})
        return self.url


class DatadogSink:
    """Logs intake v2: ``DD-API-KEY``, gzipped JSON arrays of at most 1,000 entries and 5 MB."""

    def __init__(self, spec, policy: RetryPolicy, where: str) -> None:
        self.url = spec.url.value(f"{where}.sink.url")
        self.api_key = spec.api_key.value(f"{where}.sink.api_key")
        self.spec = spec
        self.policy = policy
        self.client = httpx.Client(timeout=spec.timeout)

    def send(self, batch: list[dict], batch_id: str) -> str:
        entries = [_dumps({"ddsource": "activitylog", "service": self.spec.service, "hostname": HOSTNAME,
                           "ddtags": f"scope:{_scope(r)},activity:{_activity(r)}",
                           "message": r.get("summary") or r.get("message") or "", "activity_log": r}) for r in batch]
        chunk: list[str] = []
        size = 2
        for entry in entries + [None]:  # None flushes the last chunk
            if entry is None or len(chunk) == 1000 or size + len(entry) + 1 > DATADOG_MAX_BYTES:
                if chunk:
                    body = gzip.compress(("[" + ",".join(chunk) + "]").encode())
                    _http_call(self.client, self.policy, "Datadog", url=self.url, content=body,
                               headers={"DD-API-KEY": self.api_key, "Content-Type": "application/json",
                                        "Content-Encoding": "gzip"})
                chunk, size = [], 2
            if entry is not None:
                chunk.append(entry)
                size += len(entry.encode()) + 1
        return self.url


class SyslogSink:
    """TCP (optionally TLS), RFC 6587 octet-counting frames; RFC 5424 messages with a JSON body, or CEF."""

    def __init__(self, spec, policy: RetryPolicy) -> None:
        self.spec = spec
        self.policy = policy

    def send(self, batch: list[dict], batch_id: str) -> str:
        frames = b"".join(_frame(self._message(r)) for r in batch)

        def deliver() -> None:
            try:
                with socket.create_connection((self.spec.host, self.spec.port), timeout=self.spec.timeout) as raw:
                    sock = ssl.create_default_context().wrap_socket(raw, server_hostname=self.spec.host) \
                        if self.spec.tls else raw
                    sock.sendall(frames)
                    sock.shutdown(socket.SHUT_WR)  # a clean close: the receiver got every byte
            except OSError as exc:
                raise DeliveryFailed(f"syslog {self.spec.host}:{self.spec.port}: {exc}", retryable=True) from None

        self.policy.call(deliver, "syslog")
        return f"{self.spec.host}:{self.spec.port}"

    def _message(self, record: dict) -> bytes:
        when = record.get("created_at") or record.get("metadata", {}).get("original_time") or "-"
        scope, activity = _scope(record), _activity(record)
        event_id = record.get("id") or record.get("metadata", {}).get("uid", "-")
        body = cef(record) if self.spec.format == "cef" else _dumps(record)
        data = f'[activitylog@32473 id="{_sd(event_id)}" scope="{_sd(scope)}" activity="{_sd(activity)}"]'
        header = f"<{SYSLOG_FACILITY_SEVERITY}>1 {when} {HOSTNAME} activitylog - {_token(scope)}.{_token(activity)} {data} "
        return (header + body).encode()


def _frame(message: bytes) -> bytes:
    return f"{len(message)} ".encode() + message


def _sd(value: Any) -> str:
    """An RFC 5424 structured-data parameter value: escape \\, " and ]."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _token(value: str) -> str:
    return "".join(c for c in str(value) if 33 <= ord(c) <= 126)[:32] or "-"


def _scope(record: dict) -> str:
    return record.get("scope") or record.get("api", {}).get("operation", ".").split(".")[0]


def _activity(record: dict) -> str:
    return record.get("activity") or record.get("api", {}).get("operation", ".").split(".")[-1]


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _cef_header(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _cef_value(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("=", "\\=").replace("\n", "\\n").replace("\r", "\\r")


def cef(record: dict) -> str:
    """ArcSight CEF: ``CEF:0|vendor|product|version|signature|name|severity|extensions``."""
    native = record if "scope" in record else None
    scope, activity = _scope(record), _activity(record)
    created = (native or {}).get("created_at") or record.get("metadata", {}).get("original_time")
    user = (native or {}).get("user") or {}
    extension = {
        "rt": int(_epoch(created) * 1000) if created else None,
        "suser": user.get("email") or record.get("actor", {}).get("user", {}).get("email_addr"),
        "suid": user.get("uuid") or record.get("actor", {}).get("user", {}).get("uid"),
        "src": (native or {}).get("ip_address") or record.get("src_endpoint", {}).get("ip"),
        "externalId": (native or {}).get("id") or record.get("metadata", {}).get("uid"),
        "cs1Label": "scope", "cs1": scope,
        "cs2Label": "item_id", "cs2": (native or {}).get("item_id") or (record.get("resources") or [{}])[0].get("uid"),
        "cs3Label": "project_id", "cs3": (native or {}).get("project_id") or record.get("unmapped", {}).get("project_id"),
        "msg": (native or {}).get("summary") or record.get("message"),
    }
    name = (native or {}).get("summary") or record.get("message") or f"{scope} {activity}"
    fields = " ".join(f"{k}={_cef_value(v)}" for k, v in extension.items() if v is not None)
    return f"CEF:0|PostHog|activitylog|1.0|{_cef_header(scope + '.' + activity)}|{_cef_header(name)}|3|{fields}"


def make_sink(name: str, spec, policy: RetryPolicy | None = None):
    where = f"streams.{name}"
    policy = policy or RetryPolicy(max_attempts=getattr(spec.sink, "max_attempts", 5))
    sink = spec.sink
    if sink.type == "s3":
        return S3Sink(sink, policy)
    if sink.type == "splunk_hec":
        return SplunkSink(sink, policy, where)
    if sink.type == "datadog":
        return DatadogSink(sink, policy, where)
    return SyslogSink(sink, policy)


@dataclass
class StreamReport:
    streams: dict[str, Counter] = field(default_factory=dict)  # name → sent, batches, days
    errors: dict[str, str] = field(default_factory=dict)       # name → the error that paused it
    health: dict[str, dict] = field(default_factory=dict)      # name → state after this run (stream_health)
    alerts: list[dict] = field(default_factory=list)           # stream_failing / stream_recovered events

    def as_rows(self) -> list[dict[str, Any]]:
        def status(name: str) -> str:
            if name in self.errors:
                return "paused: " + self.errors[name]
            return "paused by the configuration" if self.health.get(name, {}).get("state") == PAUSED else "up to date"

        return [{"stream": n, "days": c["days"], "sent": c["sent"], "batches": c["batches"], "status": status(n)}
                for n, c in sorted(self.streams.items())]


def run_streams(lake: Lake, streams: dict, names: list[str] | None = None, *, log: Callable[[str], None] = print,
                policy: RetryPolicy | None = None, after_batch: Callable[[str, int], None] | None = None,
                alert: Callable[[dict], None] | None = None) -> StreamReport:
    """Deliver every due day of each stream (all, or ``names``). ``after_batch`` is a test hook called
    after each acknowledged batch. ``alert`` receives the system event of a stream entering or leaving
    ``failing`` (:func:`transforms.streams.health_event`) before the new state is recorded; if it
    raises, the state is not recorded, so the next run raises the alert again."""
    from transforms.query import team_organizations

    report = StreamReport()
    for name in names or sorted(streams):
        if name not in streams:
            raise KeyError(f"no stream named {name!r} (streams: {', '.join(sorted(streams)) or 'none configured'})")
        spec = streams[name]
        counts = report.streams.setdefault(name, Counter())
        if getattr(spec, "paused", False):
            now = datetime.now(timezone.utc)
            health = next_health(stream_health(lake).get(name), PAUSED, held=False, failing_after=0, now=now)
            record_health(lake, name, health, now)
            report.health[name] = health
            log(f"stream {name} is paused (paused: true): nothing sent, its days stay due")
            continue
        sink = make_sink(name, spec, policy)
        batch_size = getattr(spec.sink, "batch_size", 500)
        organizations = None
        if spec.filter.team_ids and spec.filter.include_organization:
            organizations = team_organizations(lake, spec.filter.team_ids, lake.scan("activity_log"))
        try:
            for day in due_days(lake, name):
                started = datetime.now(timezone.utc)
                rows = stream_rows(lake, spec.filter, day, acknowledged(lake, name, day).to_list(), organizations)
                for start in range(0, rows.height, batch_size):
                    batch = rows.slice(start, batch_size)
                    batch_id = uuid.uuid4().hex
                    where = sink.send(records(batch, spec.schema_name, spec.include_values), batch_id)
                    record_acks(lake, name, day, batch["id"].to_list(), batch_id)
                    counts["sent"] += batch.height
                    counts["batches"] += 1
                    if after_batch is not None:
                        after_batch(name, counts["batches"])
                    log(f"{name}: {day} batch of {batch.height} → {where}")
                record_progress(lake, name, day, started)
                counts["days"] += 1
        except DeliveryFailed as exc:
            report.errors[name] = str(exc)
            log(f"stream {name} paused: {exc} (nothing acknowledged is lost; the next run resumes here)")
            error, held = str(exc), not exc.retryable
        else:
            error, held = None, False
        now = datetime.now(timezone.utc)
        previous = stream_health(lake).get(name)
        health = next_health(previous, error, held=held, failing_after=getattr(spec, "failing_after", 900.0), now=now)
        event = health_event(name, previous, health, now)
        if event is not None:
            if alert is not None:
                alert(event)
            report.alerts.append(event)
            log(f"stream {name}: {event['activity']}")
        record_health(lake, name, health, now)
        report.health[name] = health
    return report
