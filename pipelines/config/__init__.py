"""The one configuration file of the project: ``activitylog.yaml``.

Where it is read from (first that applies):

1. the ``path`` given to :func:`load_config` (e.g. a CLI flag),
2. the environment variable ``ACTIVITYLOG_CONFIG``,
3. ``./activitylog.yaml``.

A missing file named by (1) or (2) is an error; a missing implicit ``./activitylog.yaml`` and an empty
file mean "all defaults". The whole file is validated at load with pydantic models; every error is one
line naming the file, the section, the entry and the field, e.g.::

    activitylog.yaml: masking.fields[2]: must be a non-empty string, not a number
    activitylog.yaml: reference.users: file ./users.csv does not exist (resolved to /etc/al/users.csv)
    activitylog.yaml: colour: unknown section (allowed: notifications, streams, exports, ...)

Shape of the file (every section is optional)::

    notifications: {max_event_age: 7d, destinations: {...}, subscriptions: [...]}
    streams:       {NAME: {filter: {...}, schema: native|ocsf, sink: {type: s3|splunk_hec|..., ...}}}
    exports:       [{name, schedule (cron, UTC), format, window, filter, destination}]
    retention:     {default: 5y, organizations: {ORG_ID: 2mo}, projects: {TEAM_ID: 7d}, vacuum_grace: 7d}

    masking:
      # Field names whose values are masked in before/after of changes. A plain name masks the field
      # in every scope; ``Scope.field`` masks it only in that scope. Listing ``fields`` replaces the
      # defaults below (repeat them to keep them); ``fields: []`` masks nothing.
      fields: [password, encrypted_inputs, secret, token, api_key, Integration.config]

    reference:
      # Lookup tables used to enrich events; each optional. A local path (file or directory; relative
      # paths are resolved against the directory of this file, and must exist) or an s3:// URI.
      users: ./reference/users.csv
      projects: s3://bucket/reference/projects.parquet
      organizations: /srv/reference/organizations.csv

``masking`` and ``reference`` are typed now. ``notifications``, ``streams``, ``exports`` and
``retention`` are kept raw (a mapping or a list) until their own models land; any other top-level key
is an error listing the allowed sections, and unknown keys inside typed sections are errors naming
the key.

Conventions for every section:

* **Durations** (:func:`parse_duration`, or the pydantic type :data:`DurationValue`): ``12h``, ``7d``,
  ``2w``, ``2mo``, ``5y`` (one number and one unit; ``mo`` and ``y`` are calendar months/years, so
  :meth:`Duration.before` of 2024-03-31 by ``1mo`` is 2024-02-29), or ``none``/``forever`` (→ ``None``).
* **Secrets** are never literal: ``{env: NAME}`` only (:class:`SecretRef`, :func:`resolve_secret`); a
  variable that is not set is a load error naming it.

No Dagster import here: the read-only CLI commands load this module.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from transforms.changes import DEFAULT_MASKED_FIELDS as _TRANSFORM_DEFAULT_MASKED_FIELDS
from transforms.values import kind_of as _kind  # one wording everywhere
from transforms.durations import (  # re-exported: part of this module's API
    Duration,
    DurationError,
    duration_or_problem,
)

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "DEFAULT_MASKED_FIELDS",
    "SECTIONS",
    "ActivityLogConfig",
    "ConfigError",
    "Duration",
    "DurationError",
    "DurationValue",
    "MaskingConfig",
    "ReferenceConfig",
    "SecretRef",
    "load_config",
    "parse_duration",
    "resolve_secret",
    "validate_model",
]


CONFIG_ENV = "ACTIVITYLOG_CONFIG"
DEFAULT_CONFIG = "activitylog.yaml"

#: Masked unless the file lists its own ``masking.fields`` (PostHog masks the same ones).
DEFAULT_MASKED_FIELDS: tuple[str, ...] = _TRANSFORM_DEFAULT_MASKED_FIELDS

#: Top-level sections, in the order the design lists them.
SECTIONS: tuple[str, ...] = ("notifications", "streams", "exports", "retention", "masking", "reference")


class ConfigError(ValueError):
    """The configuration cannot be used. The message is one line naming the file, section, entry, field."""

    def __init__(self, message: str):
        super().__init__(re.sub(r"\s*\n\s*", " ", str(message)).strip())


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


def _fail(message: str) -> PydanticCustomError:
    """An error for pydantic whose message is exactly ``message`` (braces included)."""
    return PydanticCustomError("activitylog", "{message}", {"message": message})


# ----------------------------------------------------------------------------------------------
# Durations
# ----------------------------------------------------------------------------------------------

def parse_duration(text: Any, where: str) -> Duration | None:
    """``12h``/``7d``/``2w``/``2mo``/``5y`` → :class:`Duration`; ``none``/``forever`` → ``None``.

    ``where`` names the setting in the error, e.g. ``"activitylog.yaml: retention.default"``.
    """
    duration, problem = duration_or_problem(text)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    return duration


def _validate_duration(value: Any) -> Duration | None:
    if isinstance(value, Duration):
        return value
    duration, problem = duration_or_problem(value)
    if problem:
        raise _fail(problem)
    return duration


#: A duration field for pydantic models: ``vacuum_grace: DurationValue = Duration(days=7)``.
#: Validates the text like :func:`parse_duration`; ``None`` means none/forever; serializes back to text.
DurationValue = Annotated[
    Union[Duration, None],
    PlainValidator(_validate_duration),
    PlainSerializer(lambda d: "forever" if d is None else str(d), return_type=str),
]


# ----------------------------------------------------------------------------------------------
# Secrets
# ----------------------------------------------------------------------------------------------

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_SHAPE = "must be {env: NAME}"


def _env_name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        shown = repr(name) if isinstance(name, str) else _kind(name)
        return f"env must be an environment variable name, not {shown}"
    return None


def _env_value(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def _missing_env(name: str) -> str:
    return f"environment variable {name} is not set"


class SecretRef(BaseModel):
    """A secret in the file: ``{env: NAME}``; the value comes from the environment.

    A literal string where a secret belongs is refused, and so is a variable that is not set (or is
    empty) when the file is loaded. :meth:`value` reads the variable at use time.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        if isinstance(data, (SecretRef, dict)):
            return data
        if isinstance(data, str):
            raise _fail(f"{_SECRET_SHAPE}, not a literal")
        raise _fail(f"{_SECRET_SHAPE}, not {_kind(data)}")

    @field_validator("env", mode="plain")
    @classmethod
    def _env_is_set(cls, name: Any) -> str:
        problem = _env_name_problem(name)
        if problem:
            raise _fail(problem)
        if _env_value(name) is None:
            raise _fail(_missing_env(name))
        return name

    def value(self, where: str = "secret") -> str:
        found = _env_value(self.env)
        if found is None:
            raise ConfigError(f"{where}: {_missing_env(self.env)}")
        return found


def resolve_secret(value: Any, where: str) -> str:
    """The secret's value from ``{env: NAME}`` (a mapping from a raw section, or a :class:`SecretRef`).

    ``where`` names the setting in errors, e.g. ``"activitylog.yaml: notifications.destinations.ops.url"``.
    The secret's text never appears in an error message.
    """
    if isinstance(value, SecretRef):
        return value.value(where)
    if isinstance(value, str):
        raise ConfigError(f"{where}: {_SECRET_SHAPE}, not a literal")
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {_SECRET_SHAPE}, not {_kind(value)}")
    extra = sorted(str(k) for k in value if k != "env")
    if extra:
        raise ConfigError(f"{where}: {_SECRET_SHAPE}; unknown key {extra[0]!r}")
    if "env" not in value:
        raise ConfigError(f"{where}: {_SECRET_SHAPE}; env is missing")
    problem = _env_name_problem(value["env"])
    if problem:
        raise ConfigError(f"{where}: {problem}")
    found = _env_value(value["env"])
    if found is None:
        raise ConfigError(f"{where}: {_missing_env(value['env'])}")
    return found


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


def _mask_field(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail("must be a non-empty string" + ("" if isinstance(value, str) else f", not {_kind(value)}"))
    text = value.strip()
    if "." in text:
        scope, _, field = text.partition(".")
        if not scope.strip() or not field.strip() or "." in field:
            raise _fail(f"must be FIELD or Scope.FIELD, not {text!r}")
        text = f"{scope.strip()}.{field.strip()}"
    return text


class MaskingConfig(BaseModel):
    """``masking: {fields: [...]}``: fields whose values are masked in ``before``/``after``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: list[Annotated[str, PlainValidator(_mask_field)]] = Field(
        default_factory=lambda: list(DEFAULT_MASKED_FIELDS)
    )

    def rules(self) -> list[tuple[str | None, str]]:
        """``(scope, field)`` per entry, as written; scope ``None`` means every scope.

        ``Integration.config`` → ``("Integration", "config")``; ``password`` → ``(None, "password")``.
        Case folding, if any, is the caller's job.
        """
        rules: list[tuple[str | None, str]] = []
        for entry in self.fields:
            scope, dot, field = entry.partition(".")
            rules.append((scope, field) if dot else (None, entry))
        return rules


_REFERENCE_HINT = "must be a local path or an s3:// URI"


class ReferenceConfig(BaseModel):
    """``reference: {users, projects, organizations}``: enrichment tables, each a path or s3:// URI.

    Relative local paths are resolved against the config file's directory (the working directory
    when validated without a file) and stored absolute; they must exist (file or directory).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: str | None = None
    projects: str | None = None
    organizations: str | None = None

    @field_validator("users", "projects", "organizations", mode="plain")
    @classmethod
    def _uri(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if isinstance(value, Path):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise _fail(f"{_REFERENCE_HINT}" + ("" if isinstance(value, str) else f", not {_kind(value)}"))
        text = value.strip()
        scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", text)
        if scheme:
            if scheme.group(1).lower() != "s3":
                raise _fail(f"{_REFERENCE_HINT}, not a {scheme.group(1)}:// URI")
            rest = scheme.group(2).strip("/")
            if not rest or rest.startswith("/"):
                raise _fail(f"{text!r} names no bucket")
            return f"s3://{rest}"
        base = (info.context or {}).get("base_dir")
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = Path(base) / path if base is not None else Path.cwd() / path
        path = path.resolve()
        if not path.exists():
            shown = f" (resolved to {path})" if str(path) != text else ""
            raise _fail(f"file {text} does not exist{shown}")
        return str(path)

    def uris(self) -> dict[str, str]:
        """The tables that are set, ``{"users": "/abs/users.csv", ...}`` (local paths absolute)."""
        return {name: uri for name in ("users", "projects", "organizations") if (uri := getattr(self, name))}


# ----------------------------------------------------------------------------------------------
# notifications
# ----------------------------------------------------------------------------------------------


def _local_path(value: Any, info: ValidationInfo, *, must_exist: bool) -> str:
    """A local path; relative paths resolve against the config file's directory."""
    if not isinstance(value, str) or not value.strip():
        raise _fail("must be a path" + ("" if isinstance(value, str) else f", not {_kind(value)}"))
    path = Path(value.strip()).expanduser()
    if not path.is_absolute():
        base = (info.context or {}).get("base_dir")
        path = (Path(base) if base is not None else Path.cwd()) / path
    path = path.resolve()
    if must_exist and not path.is_file():
        raise _fail(f"file {value.strip()} does not exist" + (f" (resolved to {path})" if str(path) != value else ""))
    return str(path)


class SlackDestination(BaseModel):
    """A Slack incoming webhook."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["slack"]
    webhook_url: SecretRef
    #: A link to the resource, e.g. ``https://eu.posthog.com/project/{team_id}/feature_flags/{item_id}``;
    #: placeholders are activity_log columns.
    link_template: str | None = None
    #: Events of one subscription sent together in one message (Slack allows 50 blocks per message).
    batch_size: int = Field(default=10, ge=1, le=20)
    #: Seconds between two messages to this webhook (Slack allows about one per second).
    min_interval: float = Field(default=1.0, ge=0)
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout: float = Field(default=10.0, gt=0)


class WebhookDestination(BaseModel):
    """A generic webhook: one signed JSON POST per event (Standard Webhooks)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["webhook"]
    url: SecretRef
    #: The signing secret (``whsec_…`` base64, as Standard Webhooks hands them out); unsigned without.
    secret: SecretRef | None = None
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout: float = Field(default=10.0, gt=0)


class FileDestination(BaseModel):
    """Appends one JSON line per delivered event to a local file (demo, debugging)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["file"]
    path: str

    @field_validator("path", mode="plain")
    @classmethod
    def _path(cls, value: Any, info: ValidationInfo) -> str:
        return _local_path(value, info, must_exist=False)


Destination = Annotated[Union[SlackDestination, WebhookDestination, FileDestination], Field(discriminator="type")]


def _destination(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value
    if not isinstance(value, dict):
        raise _fail(f"must be a mapping with a type (slack, webhook, file), not {_kind(value)}")
    if "type" not in value:
        raise _fail("type is required (slack, webhook or file)")
    kind = value["type"]
    models = {"slack": SlackDestination, "webhook": WebhookDestination, "file": FileDestination}
    if kind not in models:
        raise _fail(f"type {kind!r} is not one of slack, webhook, file")
    return value


class Subscription(BaseModel):
    """``{name, filter, destinations, template}``: events matching ``filter`` go to ``destinations``."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str
    filter: Any = Field(default=None, validate_default=True)
    destinations: list[str]
    template: str | None = None

    @field_validator("name", mode="plain")
    @classmethod
    def _name(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _fail("must be a non-empty string" + ("" if isinstance(value, str) else f", not {_kind(value)}"))
        return value.strip()

    @field_validator("filter", mode="plain")
    @classmethod
    def _filter(cls, value: Any) -> Any:
        from transforms.filters import ActivityFilter, FilterError

        if isinstance(value, ActivityFilter):
            return value
        try:
            return ActivityFilter.from_dict(value, where="")
        except FilterError as exc:
            raise _fail(str(exc).lstrip(": ")) from None

    @field_validator("destinations", mode="plain")
    @classmethod
    def _destinations(cls, value: Any) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise _fail("must be a non-empty list of destination names")
        for name in value:
            if not isinstance(name, str) or not name.strip():
                raise _fail(f"destination names must be strings, not {_kind(name)}")
        return [name.strip() for name in value]

    @field_validator("template", mode="plain")
    @classmethod
    def _template(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = _local_path(value, info, must_exist=True)
        from destinations.templates import TemplateProblem, compile_template_file

        try:
            compile_template_file(path)
        except TemplateProblem as exc:
            raise _fail(str(exc)) from None
        return path


class NotificationsConfig(BaseModel):
    """``notifications: {max_event_age, destinations, subscriptions}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Events older than this when first evaluated are recorded as skipped, not sent.
    max_event_age: DurationValue = Duration(days=7)
    destinations: dict[str, Annotated[Destination, BeforeValidator(_destination)]] = Field(default_factory=dict)
    subscriptions: list[Subscription] = Field(default_factory=list)

    @field_validator("max_event_age", mode="after")
    @classmethod
    def _fixed_length(cls, value: Duration | None) -> Duration | None:
        if value is not None and value.is_calendar:
            raise _fail(f"{value} has no fixed length: use hours, days or weeks")
        return value

    @field_validator("destinations", mode="before")
    @classmethod
    def _destination_shapes(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _fail(f"must be a mapping of name → destination, not {_kind(value)}")
        return value

    @model_validator(mode="after")
    def _known_destinations(self) -> "NotificationsConfig":
        names = set()
        for position, subscription in enumerate(self.subscriptions):
            if subscription.name in names:
                raise _fail(f"subscriptions[{position}].name: {subscription.name!r} is used twice")
            names.add(subscription.name)
            for name in subscription.destinations:
                if name not in self.destinations:
                    known = ", ".join(sorted(self.destinations)) or "none defined"
                    raise _fail(f"subscriptions[{position}] ({subscription.name}): unknown destination {name!r} "
                                f"(destinations: {known})")
        return self

    def subscription(self, name: str) -> Subscription:
        for subscription in self.subscriptions:
            if subscription.name == name:
                return subscription
        known = ", ".join(s.name for s in self.subscriptions) or "none configured"
        raise ConfigError(f"no subscription named {name!r} (subscriptions: {known})")


# ----------------------------------------------------------------------------------------------
# retention
# ----------------------------------------------------------------------------------------------


class RetentionConfig(BaseModel):
    """``{default, organizations: {ORG_ID: window}, projects: {TEAM_ID: window}, vacuum_grace, schedule}``.

    Windows: ``7d``, ``2mo``, ``5y`` or ``forever``. A project's window wins over its organization's,
    which wins over the default. Without a ``retention:`` section nothing is ever deleted.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: DurationValue = None
    organizations: dict[str, DurationValue] = Field(default_factory=dict)
    projects: dict[int, DurationValue] = Field(default_factory=dict)
    #: How long deleted data files stay on storage (time-travel, concurrent readers) before vacuum removes them.
    vacuum_grace: DurationValue = Duration(days=7)
    #: When the retention job runs (cron, UTC).
    schedule: str = "30 3 * * *"

    @field_validator("vacuum_grace", mode="after")
    @classmethod
    def _fixed(cls, value: Duration | None) -> Duration | None:
        if value is not None and value.is_calendar:
            raise _fail(f"{value} has no fixed length: use hours, days or weeks")
        return value

    @field_validator("schedule", mode="plain")
    @classmethod
    def _cron(cls, value: Any) -> str:
        return ExportSchedule._cron(value)

    @property
    def configured(self) -> bool:
        return self.default is not None or bool(self.organizations) or bool(self.projects)


# ----------------------------------------------------------------------------------------------
# streams
# ----------------------------------------------------------------------------------------------


class S3Sink(BaseModel):
    """Gzipped NDJSON objects under ``<uri>/YYYY/MM/DD/HH/<uuid>.json.gz`` (an s3:// URI or a local directory)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["s3"]
    uri: str

    @field_validator("uri", mode="plain")
    @classmethod
    def _uri(cls, value: Any, info: ValidationInfo) -> str:
        return ExportSchedule._destination(value, info)


class SplunkSink(BaseModel):
    """Splunk HTTP Event Collector (``url`` is the collector endpoint, e.g. …/services/collector/event)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["splunk_hec"]
    url: SecretRef
    token: SecretRef
    source: str = "activitylog"
    sourcetype: str = "activitylog:json"
    index: str | None = None
    batch_size: int = Field(default=500, ge=1, le=10_000)
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout: float = Field(default=10.0, gt=0)


class DatadogSink(BaseModel):
    """Datadog logs intake v2 (``url``, e.g. https://http-intake.logs.datadoghq.eu/api/v2/logs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["datadog"]
    url: SecretRef
    api_key: SecretRef
    service: str = "activitylog"
    batch_size: int = Field(default=1000, ge=1, le=1000)
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout: float = Field(default=10.0, gt=0)


class SyslogSink(BaseModel):
    """Syslog over TCP, RFC 6587 octet counting; messages RFC 5424 (JSON body) or CEF."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["syslog"]
    host: str
    port: int = Field(ge=1, le=65535)
    format: Literal["rfc5424", "cef"] = "rfc5424"
    tls: bool = False  # RFC 5425 (port 6514 is usually TLS)
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout: float = Field(default=10.0, gt=0)


Sink = Annotated[Union[S3Sink, SplunkSink, DatadogSink, SyslogSink], Field(discriminator="type")]
SINK_TYPES = {"s3": S3Sink, "splunk_hec": SplunkSink, "datadog": DatadogSink, "syslog": SyslogSink}


def _sink(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value
    if not isinstance(value, dict):
        raise _fail(f"must be a mapping with a type ({', '.join(SINK_TYPES)}), not {_kind(value)}")
    if value.get("type") not in SINK_TYPES:
        shown = "type is required" if "type" not in value else f"type {value['type']!r} is not one of"
        raise _fail(f"{shown} {', '.join(SINK_TYPES)}" if "type" in value else f"{shown} ({', '.join(SINK_TYPES)})")
    return value


class StreamConfig(BaseModel):
    """``{filter, schema, sink}``: matching events delivered incrementally to a SIEM sink."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filter: Any = Field(default=None, validate_default=True)
    schema_: Literal["native", "ocsf"] = Field(default="native", alias="schema")
    sink: Annotated[Sink, BeforeValidator(_sink)]

    @field_validator("filter", mode="plain")
    @classmethod
    def _filter(cls, value: Any) -> Any:
        return Subscription._filter(value)

    @property
    def schema_name(self) -> str:
        return self.schema_


def _streams(value: Any) -> Any:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(f"must be a mapping of stream name → stream, not {_kind(value)}")
    for name in value:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise _fail(f"stream names are letters, digits, '-', '_' or '.', not {name!r}")
    return value


# ----------------------------------------------------------------------------------------------
# exports
# ----------------------------------------------------------------------------------------------


class ExportSchedule(BaseModel):
    """``{name, schedule, format, window, filter, destination}``: a scheduled export (cron in UTC)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    schedule: str
    format: Literal["csv", "xlsx", "jsonl"]
    #: The span each run exports, ending at the scheduled time (``7d``, ``1mo``; ``forever``: everything).
    window: DurationValue
    filter: Any = Field(default=None, validate_default=True)
    #: A directory (local, relative to this file, or ``s3://bucket/prefix/``) that receives the files.
    destination: str

    @field_validator("name", mode="plain")
    @classmethod
    def _name(cls, value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value.strip()):
            raise _fail("must be a name of letters, digits, '-', '_' or '.'" +
                        (f", not {value!r}" if isinstance(value, str) else f", not {_kind(value)}"))
        return value.strip()

    @field_validator("schedule", mode="plain")
    @classmethod
    def _cron(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(f"must be a cron expression like \"0 2 * * 1\", not {_kind(value)}")
        from dagster._utils.schedules import is_valid_cron_string  # only when exports are configured

        if not is_valid_cron_string(value.strip()):
            raise _fail(f"{value!r} is not a cron expression like \"0 2 * * 1\" (minute hour day month weekday, UTC)")
        return value.strip()

    @field_validator("filter", mode="plain")
    @classmethod
    def _filter(cls, value: Any) -> Any:
        return Subscription._filter(value)

    @field_validator("destination", mode="plain")
    @classmethod
    def _destination(cls, value: Any, info: ValidationInfo) -> str:
        if isinstance(value, str) and value.strip().startswith("s3://"):
            if not value.strip()[5:].strip("/"):
                raise _fail(f"{value!r} names no bucket")
            return value.strip().rstrip("/") + "/"
        return _local_path(value, info, must_exist=False) + "/"


def _exports(value: Any) -> Any:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(f"must be a list of exports, not {_kind(value)}")
    return value


def _raw_section(value: Any) -> Any:
    if value is None or isinstance(value, (dict, list)):
        return value
    raise _fail(f"must be a mapping or a list, not {_kind(value)}")


#: A section whose model is not written yet: kept as parsed (a mapping, a list or None).
RawSection = Annotated[Any, PlainValidator(_raw_section)]


class ActivityLogConfig(BaseModel):
    """The whole file. ``ActivityLogConfig()`` is the all-defaults configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    # Owned by later work: stored raw until typed.
    streams: Annotated[dict[str, StreamConfig], BeforeValidator(_streams)] = Field(default_factory=dict)
    exports: Annotated[list[ExportSchedule], BeforeValidator(_exports)] = Field(default_factory=list)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)

    _source: Path | None = PrivateAttr(default=None)
    _label: str = PrivateAttr(default=DEFAULT_CONFIG)

    @field_validator("exports", mode="after")
    @classmethod
    def _unique_exports(cls, value: list[ExportSchedule]) -> list[ExportSchedule]:
        names = [e.name for e in value]
        for position, name in enumerate(names):
            if name in names[:position]:
                raise _fail(f"[{position}].name: {name!r} is used twice")
        return value

    @model_validator(mode="before")
    @classmethod
    def _null_sections(cls, data: Any) -> Any:
        # ``masking:`` with nothing under it means "defaults", like leaving it out.
        if isinstance(data, dict):
            return {k: v for k, v in data.items()
                    if not (v is None and k in ("masking", "reference", "notifications", "retention"))}
        return data

    @property
    def source(self) -> Path | None:
        """The file this was loaded from (absolute), or ``None`` for the defaults."""
        return self._source

    def where(self, location: str) -> str:
        """``"activitylog.yaml: retention.default"``: the prefix for errors about a raw section's entry."""
        return f"{self._label}: {location}"


# ----------------------------------------------------------------------------------------------
# Validation errors → one line
# ----------------------------------------------------------------------------------------------


def _loc_text(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _unwrap(annotation: Any) -> list[Any]:
    """The candidate types inside Annotated/Optional/Union."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin is Union or (origin is not None and type(annotation).__name__ == "UnionType"):
        return [t for arg in get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class validating the value at ``loc`` (for listing allowed keys), if it can be found."""
    candidates: list[Any] = [root]
    for part in loc:
        following: list[Any] = []
        for candidate in candidates:
            for kind in _unwrap(candidate):
                origin, args = get_origin(kind), get_args(kind)
                if isinstance(part, str) and isinstance(kind, type) and issubclass(kind, BaseModel):
                    field = kind.model_fields.get(part)
                    if field is not None:
                        following.append(field.annotation)
                elif isinstance(part, int) and origin in (list, tuple, set, frozenset) and args:
                    following.append(args[0])
                elif isinstance(part, str) and origin is dict and len(args) == 2:
                    following.append(args[1])
        candidates = following
    for candidate in candidates:
        for kind in _unwrap(candidate):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                return kind
    return None


def _problem(error: dict[str, Any], root: type[BaseModel]) -> tuple[str, str]:
    """(location, message) for one pydantic error."""
    loc = tuple(error["loc"])
    kind = error["type"]
    given = error.get("input")
    if kind == "activitylog":
        message = error["ctx"]["message"]
    elif kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        allowed = ", ".join(model.model_fields) if model is not None else ""
        what = "unknown section" if model is ActivityLogConfig else "unknown key"
        message = f"{what} (allowed: {allowed})" if allowed else what
    elif kind == "missing":
        message = "is required"
    elif kind in ("model_type", "model_attributes_type", "dict_type", "dataclass_type"):
        message = f"must be a mapping, not {_kind(given)}"
    elif kind in ("list_type", "tuple_type", "set_type"):
        message = f"must be a list, not {_kind(given)}"
    elif kind == "string_type":
        message = f"must be a string, not {_kind(given)}"
    elif kind == "value_error" and "error" in error.get("ctx", {}):
        message = str(error["ctx"]["error"])
    else:
        text = error["msg"]
        message = text[:1].lower() + text[1:]
    return _loc_text(loc), message


def _one_line(exc: ValidationError, root: type[BaseModel], head: str, *, nested: bool) -> str:
    """All problems on one line. ``head`` is the file (``nested=False``: ``file: loc: msg``) or a
    location already (``nested=True``: ``file: section.loc: msg``)."""
    seen: list[str] = []
    for error in exc.errors():
        location, message = _problem(error, root)
        if not location:
            text = f"{head}: {message}"
        elif nested:
            text = f"{head}{'' if location.startswith('[') else '.'}{location}: {message}"
        else:
            text = f"{head}: {location}: {message}"
        if text not in seen:
            seen.append(text)
    if not seen:
        return f"{head}: invalid"
    return "; ".join(seen)


def validate_model(model: type[BaseModel], data: Any, *, where: str, base_dir: Path | None = None) -> Any:
    """Validate ``data`` (e.g. a raw section) with ``model``; errors → :class:`ConfigError` whose
    locations continue ``where`` (``"activitylog.yaml: notifications"`` → ``...notifications.x[0]: ...``)."""
    try:
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, model, where, nested=True)) from None


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses a key repeated in one mapping (the later one would silently win)."""

    def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML's signature
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping", node.start_mark,
                            f"found duplicate key {key!r}", key_node.start_mark,
                        )
                    seen.add(key)
                except TypeError:  # unhashable key: let PyYAML report it
                    pass
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node):  # noqa: ANN001 - PyYAML's signature
        """An unquoted date that is no date (``2024-13-45``) is a YAML error at its line, not a crash."""
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a date ({exc})", node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _yaml_error(label: str, exc: yaml.YAMLError) -> ConfigError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if mark is not None:
        context_mark = getattr(exc, "context_mark", None)
        if context and context_mark is not None and context_mark.line != mark.line:
            context = f"{context} at line {context_mark.line + 1}"
        detail = problem if not context else f"{problem} ({context})"
        return ConfigError(f"{label}: invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {detail}")
    return ConfigError(f"{label}: invalid YAML: {problem}")


def _resolve_path(path: str | Path | None) -> tuple[Path, str, str]:
    """(path, label for messages, origin: "arg" | "env" | "default")."""
    if path is not None and str(path) != "":
        return Path(path).expanduser(), str(path), "arg"
    env = os.environ.get(CONFIG_ENV, "").strip()
    if env:
        return Path(env).expanduser(), env, "env"
    return Path(DEFAULT_CONFIG), DEFAULT_CONFIG, "default"


def load_config(path: str | Path | None = None) -> ActivityLogConfig:
    """Read and validate the configuration file (see the module docstring for where it is found).

    Raises :class:`ConfigError` with a one-line message naming the file and the offending entry.
    """
    file, label, origin = _resolve_path(path)
    if not file.exists():
        if origin == "default":
            return ActivityLogConfig()
        if origin == "env":
            raise ConfigError(f"{CONFIG_ENV}={label} does not exist")
        raise ConfigError(f"config file {label} does not exist")
    if file.is_dir():
        raise ConfigError(f"{label}: is a directory, not a YAML file")
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{label}: cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{label}: not valid UTF-8 at line {line}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise _yaml_error(label, exc) from None

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: must be a mapping of sections ({', '.join(SECTIONS)}), not {_kind(data)}")
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        raise ConfigError(f"{label}: section names must be strings, not {_kind(odd[0])} {odd[0]!r} "
                          f"(allowed: {', '.join(SECTIONS)})")

    source = file.resolve()
    try:
        config = ActivityLogConfig.model_validate(data, context={"base_dir": source.parent})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, ActivityLogConfig, label, nested=False)) from None
    config._source = source
    config._label = label
    return config
