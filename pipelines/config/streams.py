"""``streams: {NAME: {filter, schema, sink}}``: matching events delivered incrementally to a SIEM sink.

The sink models (:class:`S3Sink`, :class:`SplunkSink`, ...) are configuration only; the clients that
send live in :mod:`destinations.sinks`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, Field, ValidationInfo, field_validator

from .base import Section, fail, kind_of
from .fields import NAME_PATTERN, activity_filter, directory_uri
from .secrets import SecretRef

__all__ = [
    "SINK_TYPES",
    "DatadogSink",
    "S3Sink",
    "Sink",
    "SplunkSink",
    "StreamConfig",
    "SyslogSink",
    "sink_shape",
    "streams_shape",
]


class S3Sink(Section):
    """Gzipped NDJSON objects under ``<uri>/YYYY/MM/DD/HH/<uuid>.json.gz`` (an s3:// URI or a local directory)."""

    type: Literal["s3"]
    uri: str

    @field_validator("uri", mode="plain")
    @classmethod
    def _uri(cls, value: Any, info: ValidationInfo) -> str:
        return directory_uri(value, info)


class SplunkSink(Section):
    """Splunk HTTP Event Collector (``url`` is the collector endpoint, e.g. …/services/collector/event)."""

    type: Literal["splunk_hec"]
    url: SecretRef
    token: SecretRef
    source: str = "activitylog"
    sourcetype: str = "activitylog:json"
    index: str | None = None
    batch_size: int = Field(default=500, ge=1, le=10_000)
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout: float = Field(default=10.0, gt=0)


class DatadogSink(Section):
    """Datadog logs intake v2 (``url``, e.g. https://http-intake.logs.datadoghq.eu/api/v2/logs)."""

    type: Literal["datadog"]
    url: SecretRef
    api_key: SecretRef
    service: str = "activitylog"
    batch_size: int = Field(default=1000, ge=1, le=1000)
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout: float = Field(default=10.0, gt=0)


class SyslogSink(Section):
    """Syslog over TCP, RFC 6587 octet counting; messages RFC 5424 (JSON body) or CEF."""

    type: Literal["syslog"]
    host: str
    port: int = Field(ge=1, le=65535)
    format: Literal["rfc5424", "cef"] = "rfc5424"
    tls: bool = False  # RFC 5425 (port 6514 is usually TLS)
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout: float = Field(default=10.0, gt=0)


Sink = Annotated[Union[S3Sink, SplunkSink, DatadogSink, SyslogSink], Field(discriminator="type")]
SINK_TYPES = {"s3": S3Sink, "splunk_hec": SplunkSink, "datadog": DatadogSink, "syslog": SyslogSink}


def sink_shape(value: Any) -> Any:
    """A ``before`` validator: a mapping with a known ``type``, so the error names the type, not the union."""
    if isinstance(value, BaseModel):
        return value
    if not isinstance(value, dict):
        raise fail(f"must be a mapping with a type ({', '.join(SINK_TYPES)}), not {kind_of(value)}")
    if value.get("type") not in SINK_TYPES:
        shown = "type is required" if "type" not in value else f"type {value['type']!r} is not one of"
        raise fail(f"{shown} {', '.join(SINK_TYPES)}" if "type" in value else f"{shown} ({', '.join(SINK_TYPES)})")
    return value


class StreamConfig(Section):
    """``{filter, schema, sink}``: matching events delivered incrementally to a SIEM sink."""

    filter: Any = Field(default=None, validate_default=True)
    schema_: Literal["native", "ocsf", "ocsf_api_activity"] = Field(default="native", alias="schema")
    #: ``ocsf`` only: the before and after values of changed fields (``entity.data``/``entity_result.data``).
    include_values: bool = False
    sink: Annotated[Sink, BeforeValidator(sink_shape)]
    #: Seconds a stream may keep failing (state ``degraded``) before its state is ``failing``.
    failing_after: float = Field(default=900.0, ge=0)
    #: ``true``: nothing is sent (state ``paused``); its days stay due and are sent once it is resumed.
    paused: bool = False

    @field_validator("filter", mode="plain")
    @classmethod
    def _filter(cls, value: Any) -> Any:
        return activity_filter(value)

    @property
    def schema_name(self) -> str:
        return self.schema_


def streams_shape(value: Any) -> Any:
    """A ``before`` validator for the whole section: a mapping of valid stream names (``None``: no streams)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(f"must be a mapping of stream name → stream, not {kind_of(value)}")
    for name in value:
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise fail(f"stream names are letters, digits, '-', '_' or '.', not {name!r}")
    return value
