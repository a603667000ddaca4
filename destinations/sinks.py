"""SIEM sinks: S3 (or a local directory), Splunk HEC, Datadog logs, syslog (RFC 5424 over TCP or TLS,
JSON or CEF), one client each, in a registry keyed by the configuration's ``type`` discriminator.

Every sink takes a batch of records and either accepts it or raises :class:`DeliveryFailed`. Retries
(429, 5xx, timeouts, connection errors) use the same policy as notifications. The pass that feeds them
is :mod:`destinations.siem`.
"""

from __future__ import annotations

import gzip
import os
import socket
import ssl
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from destinations.delivery import DeliveryFailed, RetryPolicy, post
from transforms import jsontext, storage

HOSTNAME = socket.gethostname()
DATADOG_MAX_BYTES = 5 * 2**20
SYSLOG_FACILITY_SEVERITY = 13 * 8 + 6  # facility 13 (log audit), severity 6 (informational)


def _dumps(record: Any) -> str:
    return jsontext.encode(record)  # nested JSON texts (detail) embedded exactly


def _http_call(client: httpx.Client, policy: RetryPolicy, what: str, **request) -> None:
    post(client, policy, what, lambda: request, permanent=frozenset({401, 403, 404, 410}))


class S3SinkClient:
    """Gzipped NDJSON objects under ``<uri>YYYY/MM/DD/HH/<batch id>.json.gz`` (s3:// or a local directory)."""

    def __init__(self, spec, policy: RetryPolicy, where: str = "") -> None:
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


class _HttpSink:
    """A sink reached by HTTPS POSTs: its URL, its credential (the configuration field ``credential``
    names, a secret reference) and one connection pool."""

    credential = ""

    def __init__(self, spec, policy: RetryPolicy, where: str = "") -> None:
        self.url = spec.url.value(f"{where}.sink.url")
        self.secret = getattr(spec, self.credential).value(f"{where}.sink.{self.credential}")
        self.spec = spec
        self.policy = policy
        self.client = httpx.Client(timeout=spec.timeout)


class SplunkClient(_HttpSink):
    """HTTP Event Collector: ``Authorization: Splunk <token>``, batched ``{time, host, source, sourcetype, event}``."""

    credential = "token"

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
                   headers={"Authorization": f"Splunk {self.secret}", "Content-Type": "application/json",
                            "X-Splunk-Request-Channel": batch_id})
        return self.url


class DatadogClient(_HttpSink):
    """Logs intake v2: ``DD-API-KEY``, gzipped JSON arrays of at most 1,000 entries and 5 MB."""

    credential = "api_key"

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
                               headers={"DD-API-KEY": self.secret, "Content-Type": "application/json",
                                        "Content-Encoding": "gzip"})
                chunk, size = [], 2
            if entry is not None:
                chunk.append(entry)
                size += len(entry.encode()) + 1
        return self.url


class SyslogClient:
    """TCP (optionally TLS), RFC 6587 octet-counting frames; RFC 5424 messages with a JSON body, or CEF."""

    def __init__(self, spec, policy: RetryPolicy, where: str = "") -> None:
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


SINKS = {"s3": S3SinkClient, "splunk_hec": SplunkClient, "datadog": DatadogClient, "syslog": SyslogClient}


def make_sink(name: str, spec, policy: RetryPolicy | None = None):
    """The client of a stream's sink (``spec.sink``), with the stream's retry policy."""
    sink = spec.sink
    policy = policy or RetryPolicy(max_attempts=getattr(sink, "max_attempts", 5))
    try:
        client = SINKS[sink.type]
    except KeyError:
        raise ValueError(f"streams.{name}.sink: no client for sinks of type {sink.type!r}") from None
    return client(sink, policy, f"streams.{name}")
