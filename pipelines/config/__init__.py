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
    retention:     {default: 5y, organizations: {ORG_ID: 2mo}, projects: {TEAM_ID: 7d}, vacuum_grace: 7d,
                    holds: {organizations: [ORG_ID], projects: [TEAM_ID]}}
    publish:       {max_events: 1000, max_bytes: 5MiB, idempotency_ttl: 24h}
    ask:           {model: {url: https://api.example/v1, model: NAME, api_key: {env: NAME}, timeout: 20}}
    audit:         {reads: false, exports: true, keys: true, flush_seconds: 1}

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

Every section has its model; any other top-level key is an error listing the allowed sections, and
unknown keys inside a section are errors naming the key.

Conventions for every section:

* **Durations** (:func:`parse_duration`, or the pydantic type :data:`DurationValue`): ``12h``, ``7d``,
  ``2w``, ``2mo``, ``5y`` (one number and one unit; ``mo`` and ``y`` are calendar months/years, so
  :meth:`Duration.before` of 2024-03-31 by ``1mo`` is 2024-02-29), or ``none``/``forever`` (→ ``None``).
* **Secrets** are never literal: ``{env: NAME}`` only (:class:`SecretRef`, :func:`resolve_secret`); a
  variable that is not set is a load error naming it.

No Dagster import here: the read-only CLI commands load this package (a cron schedule is checked
with Dagster's parser only when one is configured).

Layout, one module per concern; imports only run downward (base ← fields, secrets ← sections ←
root ← errors ← loader):

* :mod:`.base`: the strict :class:`Section` model every section derives from, :class:`ConfigError`,
  :func:`fail` (the error a validator raises);
* :mod:`.fields`: validators shared by sections (durations, paths, cron, filters, names);
* :mod:`.secrets`: ``{env: NAME}``;
* one module per section: :mod:`.notifications` (with :mod:`.destinations`), :mod:`.streams`,
  :mod:`.exports`, :mod:`.retention`, :mod:`.masking`, :mod:`.reference`, :mod:`.publish`, :mod:`.ask`, :mod:`.audit`;
* :mod:`.root`: :class:`ActivityLogConfig`, the whole file;
* :mod:`.errors`: pydantic's errors → one line, :func:`validate_model`;
* :mod:`.loader`: finding and reading the file, :func:`load_config`.

To add a section: a module with its :class:`Section` model, a field on :class:`ActivityLogConfig`,
its name in :data:`SECTIONS`, and its names re-exported here.
"""

from transforms.durations import Duration, DurationError, duration_or_problem

from .base import ConfigError, Section
from .destinations import Destination, FileDestination, SlackDestination, WebhookDestination
from .errors import validate_model
from .exports import ExportSchedule
from .fields import DurationValue, parse_duration
from .loader import load_config
from .masking import DEFAULT_MASKED_FIELDS, MaskingConfig
from .notifications import NotificationsConfig, Subscription
from .ask import AskConfig, AskModelConfig
from .audit import AuditConfig
from .publish import PublishConfig
from .reference import ReferenceConfig
from .retention import RetentionConfig
from .root import CONFIG_ENV, DEFAULT_CONFIG, SECTIONS, ActivityLogConfig
from .secrets import SecretRef, resolve_secret
from .streams import SINK_TYPES, DatadogSink, S3Sink, Sink, SplunkSink, StreamConfig, SyslogSink
from .visibility import VisibilityConfig

__all__ = [
    "AskConfig", "AskModelConfig",
    "AuditConfig",
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "DEFAULT_MASKED_FIELDS",
    "SECTIONS",
    "SINK_TYPES",
    "ActivityLogConfig",
    "ConfigError",
    "DatadogSink",
    "Destination",
    "Duration",
    "DurationError",
    "DurationValue",
    "ExportSchedule",
    "FileDestination",
    "MaskingConfig",
    "NotificationsConfig",
    "PublishConfig",
    "ReferenceConfig",
    "RetentionConfig",
    "S3Sink",
    "SecretRef",
    "Section",
    "Sink",
    "SlackDestination",
    "SplunkSink",
    "StreamConfig",
    "Subscription",
    "SyslogSink",
    "VisibilityConfig",
    "WebhookDestination",
    "duration_or_problem",
    "load_config",
    "parse_duration",
    "resolve_secret",
    "validate_model",
]
