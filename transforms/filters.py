"""The filter language: one model for the notebook API, the CLI, subscriptions, exports and streams.

Written the same way everywhere (YAML, JSON, Python keyword arguments); every key is optional::

    start: 2024-01-01                 # a date (its whole day) or an ISO-8601 timestamp; inclusive, UTC
    end: 2024-01-31T12:00:00Z
    users: [jane@example.com, 0188…]  # actor uuid or email (emails compare case-insensitively)
    scopes: [FeatureFlag]             # unknown scope names are allowed, with a warning
    activities: [updated]
    item_ids: ["123"]
    team_ids: [1]
    include_organization: true        # with team_ids: also the organization-level rows of their organizations
    was_impersonated: false
    is_system: false
    clients: [web, "api*"]            # ``*`` is a wildcard
    ip_addresses: ["203.0.113.*"]
    search: checkout                  # case-insensitive text over the detail and the summary
    detail_filters:
      "changes[].field": {operation: exact, value: active}
      "changes[].after": {operation: in, value: [true, 50]}
      "trigger.job_type": {operation: contains, value: export}

Lists match any element; different keys must all match. ``ActivityFilter.from_dict`` validates a mapping
and raises :class:`FilterError` naming the field before anything is read.

Detail paths walk the event's ``detail`` JSON: ``name``, ``trigger.job_type``, ``changes[].field``;
``[]`` means "any element" (no limit on the array's length) and ``[N]`` the N-th (from 0).
Operations:

* ``exact`` compares JSON values: ``1`` matches ``1`` and ``1.0`` but not ``"1"``; ``true`` is not
  ``1``; lists and objects compare element by element. (The types stay apart because ``before``/``after``
  keep them apart: a flag's rollout changing to the string ``"50"`` is a different change.)
* ``contains`` is a case-insensitive substring of the value's text form (a string is itself; anything
  else is its compact JSON).
* ``in`` takes a list and matches when the value equals (as ``exact``) any element.

Masked fields read ``"masked"`` here, as in ``activity_log``: a filter cannot reveal a secret.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Iterator, Mapping, Sequence

import polars as pl

from transforms.durations import Duration
from transforms.values import kind_of


class FilterError(ValueError):
    """A filter cannot be used; the message names the field."""


#: Scopes PostHog writes to its activity log, plus ``ActivityLog`` (this pipeline's own system events).
KNOWN_SCOPES = frozenset({
    "Action", "ActivityLog", "AlertConfiguration", "Annotation", "BatchExport", "BatchImport", "Cohort",
    "Comment", "CustomerProfileConfig", "Dashboard", "DashboardTemplate", "DataManagement",
    "DataWarehouseSavedQuery", "EarlyAccessFeature", "Endpoint", "ErrorTrackingIssue", "EventDefinition",
    "Experiment", "ExperimentHoldout", "ExperimentSavedMetric", "ExternalDataSchema", "ExternalDataSource",
    "FeatureFlag", "Group", "HogFlow", "HogFunction", "Insight", "Integration", "LLMTrace", "Log",
    "LogsAlertConfiguration", "Notebook", "Organization", "OrganizationDomain", "OrganizationInvite",
    "OrganizationMembership", "Person", "PersonalAPIKey", "Plugin", "PluginConfig", "ProductTour", "Project",
    "ProjectSecretAPIKey", "PropertyDefinition", "Replay", "Role", "SessionRecordingPlaylist", "Subscription",
    "Survey", "Tag", "TaggedItem", "Team", "Threshold", "Ticket", "User", "UserGroup",
    "WebAnalyticsFilterPreset",
})

OPERATIONS = ("exact", "contains", "in")


def closest_scope(name: str) -> str | None:
    """The known scope closest to ``name`` (case-insensitive, :mod:`difflib`), or None if none is close."""
    import difflib

    by_lower = {scope.lower(): scope for scope in KNOWN_SCOPES}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    found = difflib.get_close_matches(name.lower(), sorted(by_lower), n=1, cutoff=0.75)
    return by_lower[found[0]] if found else None

# Other spellings accepted on input (PostHog's API parameter names); the canonical key is the value.
_ALIASES = {"start_date": "start", "end_date": "end", "search_text": "search", "user": "users",
            "scope": "scopes", "activity": "activities", "item_id": "item_ids", "team_id": "team_ids",
            "client": "clients", "ip_address": "ip_addresses"}


# ----------------------------------------------------------------------------------------------
# Moments
# ----------------------------------------------------------------------------------------------


def parse_moment(value: Any, field_name: str) -> date | datetime:
    """``2024-01-15`` (a whole day) or an ISO-8601 timestamp (UTC unless it says otherwise)."""
    if isinstance(value, (date, datetime)):
        return value
    if not isinstance(value, str):
        raise FilterError(f"{field_name}: must be a date (2024-01-15) or ISO-8601 timestamp, not {kind_of(value)}")
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise FilterError(f"{field_name}: {value!r} is not a date (2024-01-15) or ISO-8601 timestamp") from None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _as_start(value: date | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return _utc(value)
    return datetime.combine(value, time.min, tzinfo=timezone.utc)


def _as_end(value: date | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return _utc(value)
    return datetime.combine(value, time.max, tzinfo=timezone.utc)  # an end date includes its whole day


# ----------------------------------------------------------------------------------------------
# JSON values
# ----------------------------------------------------------------------------------------------


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values: numbers by value (1 == 1.0), booleans apart from numbers, strings apart
    from everything else, lists and objects element by element."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return False


def text_form(value: Any) -> str:
    """What ``contains`` searches: a string as is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ----------------------------------------------------------------------------------------------
# Detail paths and detail filters
# ----------------------------------------------------------------------------------------------

_SEGMENT = re.compile(r"^([^.\[\]]+)((?:\[\d*\])*)$")
ANY = "[]"


def parse_path(path: Any, where: str = "detail_filters") -> tuple[str | int, ...]:
    """``changes[].field`` → ("changes", ANY, "field"); ``items[2].id`` → ("items", 2, "id")."""
    if not isinstance(path, str) or not path.strip():
        raise FilterError(f"{where}: a path must be a non-empty string like changes[].field, not {kind_of(path)}")
    steps: list[str | int] = []
    for segment in path.strip().split("."):
        match = _SEGMENT.match(segment)
        if not match:
            raise FilterError(
                f"{where}: path {path!r} is malformed at {segment!r} "
                "(write keys separated by dots, [] for any element, [N] for the N-th: changes[].field)")
        steps.append(match.group(1))
        for index in re.findall(r"\[(\d*)\]", match.group(2)):
            steps.append(ANY if index == "" else int(index))
    return tuple(steps)


def values_at(document: Any, steps: Sequence[str | int]) -> Iterator[Any]:
    """Every value at the path (``[]`` fans out over a list; a missing key yields nothing)."""
    if not steps:
        yield document
        return
    step, rest = steps[0], steps[1:]
    if step == ANY:
        if isinstance(document, list):
            for element in document:
                yield from values_at(element, rest)
    elif isinstance(step, int):
        if isinstance(document, list) and step < len(document):
            yield from values_at(document[step], rest)
    elif isinstance(document, dict) and step in document:
        yield from values_at(document[step], rest)


# A literal that appears verbatim in the stored JSON text whenever a string value equals/contains it:
# printable ASCII without the characters JSON may escape or reformat.
_VERBATIM = re.compile(r'^[\x20-\x7e]+$')
_REFORMATTED = set('"\\/:,{}[]')
_NUMBER_CHARS = set("0123456789.+-eEinfaINFA")


def _verbatim(text: str) -> bool:
    return bool(_VERBATIM.match(text)) and not (_REFORMATTED & set(text))


@dataclass(frozen=True)
class DetailFilter:
    """One ``{path: {operation, value}}`` entry."""

    path: str
    operation: str
    value: Any

    def __post_init__(self) -> None:
        where = f"detail_filters[{self.path!r}]"
        object.__setattr__(self, "steps", parse_path(self.path, "detail_filters"))
        if self.operation not in OPERATIONS:
            raise FilterError(f"{where}.operation: {self.operation!r} is not one of {', '.join(OPERATIONS)}")
        if self.operation == "in" and not isinstance(self.value, (list, tuple)):
            raise FilterError(f"{where}.value: operation 'in' takes a list, not {kind_of(self.value)}")
        if self.operation == "in":
            object.__setattr__(self, "value", list(self.value))
        if self.operation == "contains":
            if isinstance(self.value, (list, dict)) or self.value is None:
                raise FilterError(f"{where}.value: operation 'contains' takes text, not {kind_of(self.value)}")
            if not isinstance(self.value, str):
                object.__setattr__(self, "value", text_form(self.value))
            if self.value == "":
                raise FilterError(f"{where}.value: operation 'contains' needs non-empty text")

    steps: tuple = field(init=False, repr=False, compare=False, default=())

    def matches(self, detail: Any) -> bool:
        """Whether a parsed detail object matches."""
        found = values_at(detail, self.steps)
        if self.operation == "exact":
            return any(json_equal(v, self.value) for v in found)
        if self.operation == "in":
            return any(json_equal(v, option) for v in found for option in self.value)
        needle = self.value.lower()
        return any(needle in text_form(v).lower() for v in found)

    def to_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "value": self.value}

    # -- compilation -------------------------------------------------------------------------

    def expression(self) -> pl.Expr:
        fast = self._changed_fields_expression()
        if fast is not None:
            return fast
        return pl.col("detail").map_batches(self._match_batch, return_dtype=pl.Boolean, is_elementwise=True)

    def _changed_fields_expression(self) -> pl.Expr | None:
        """``changes[].field`` is also the ``changed_fields`` list column: no JSON parsing needed."""
        if self.steps != ("changes", ANY, "field"):
            return None
        element = pl.col("changed_fields").list
        if self.operation == "exact" and isinstance(self.value, str):
            return element.contains(pl.lit(self.value)).fill_null(False)
        if self.operation == "in" and all(isinstance(v, str) for v in self.value):
            return element.eval(pl.element().is_in(list(self.value))).list.any().fill_null(False)
        if self.operation == "contains":
            needle = self.value.lower()
            return (element.eval(pl.element().str.to_lowercase().str.contains(needle, literal=True))
                    .list.any().fill_null(False))
        return None

    def _prefilter(self, text: pl.Series) -> pl.Series:
        """Rows whose JSON text can possibly match (a necessary condition, checked without parsing)."""
        mask = text.is_not_null()
        keys = [s for s in self.steps if isinstance(s, str) and s != ANY]
        if keys and _verbatim(keys[-1]):
            mask = mask & text.str.contains(f'"{keys[-1]}"', literal=True)
        if self.operation == "exact" and isinstance(self.value, str) and self.value and _verbatim(self.value):
            mask = mask & text.str.contains(self.value, literal=True)
        elif self.operation == "in" and self.value and all(
                isinstance(v, str) and v and _verbatim(v) for v in self.value):
            mask = mask & text.str.contains("|".join(re.escape(v) for v in self.value))
        elif self.operation == "contains" and _verbatim(self.value) and not set(self.value) <= _NUMBER_CHARS:
            mask = mask & text.str.contains("(?i)" + re.escape(self.value))
        return mask.fill_null(False)

    def _match_batch(self, text: pl.Series) -> pl.Series:
        mask = self._prefilter(text)
        result = [False] * text.len()
        for position, candidate in zip(mask.arg_true().to_list(), text.filter(mask).to_list()):
            try:
                result[position] = self.matches(json.loads(candidate))
            except ValueError:  # not JSON: cannot match a path
                pass
        return pl.Series(text.name, result, dtype=pl.Boolean)


# ----------------------------------------------------------------------------------------------
# The filter
# ----------------------------------------------------------------------------------------------


def _wildcard(values: Sequence[str], column: str) -> pl.Expr:
    """Exact values with ``is_in``; values with ``*`` as anchored patterns."""
    plain = [v for v in values if "*" not in v]
    patterns = [v for v in values if "*" in v]
    conditions = [pl.col(column).is_in(plain)] if plain else []
    if patterns:
        regex = "|".join("^" + ".*".join(re.escape(part) for part in v.split("*")) + "$" for v in patterns)
        conditions.append(pl.col(column).str.contains(regex))
    return pl.any_horizontal(conditions).fill_null(False)


@dataclass(frozen=True)
class ActivityFilter:
    """Every set field must match; list fields match any of their elements. Empty means everything."""

    start: date | datetime | None = None
    end: date | datetime | None = None
    users: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    activities: tuple[str, ...] = ()
    item_ids: tuple[str, ...] = ()
    team_ids: tuple[int, ...] = ()
    include_organization: bool = False
    was_impersonated: bool | None = None
    is_system: bool | None = None
    clients: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    search: str | None = None
    detail_filters: tuple[DetailFilter, ...] = ()

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (date, datetime)):
                object.__setattr__(self, name, parse_moment(value, name))
        for name in ("users", "scopes", "activities", "item_ids", "clients", "ip_addresses"):
            object.__setattr__(self, name, _strings(getattr(self, name), name))
        object.__setattr__(self, "team_ids", _team_ids(self.team_ids))
        for name in ("include_organization", "was_impersonated", "is_system"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise FilterError(f"{name}: must be true or false, not {kind_of(value)}")
        if self.include_organization is None:
            object.__setattr__(self, "include_organization", False)
        if self.search is not None and not isinstance(self.search, str):
            raise FilterError(f"search: must be text, not {kind_of(self.search)}")
        if self.search is not None and not self.search.strip():
            object.__setattr__(self, "search", None)
        detail = self.detail_filters
        if isinstance(detail, Mapping):
            detail = _detail_filters(detail)
        object.__setattr__(self, "detail_filters", tuple(detail))
        start, end = _as_start(self.start), _as_end(self.end)
        if start and end and end < start:
            raise FilterError(f"end: {self.end} is before start {self.start}")

    # -- input and output --------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "filter") -> "ActivityFilter":
        """The YAML/JSON shape; errors are prefixed with ``where`` (e.g. ``activitylog.yaml: exports[0].filter``)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise FilterError(f"{where}: must be a mapping of filter fields, not {kind_of(data)}")
        allowed = [f.name for f in fields(cls)]
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = _ALIASES.get(key, key)
            if name not in allowed:
                raise FilterError(f"{where}: unknown field {key!r} (allowed: {', '.join(allowed)})")
            if name in values:
                raise FilterError(f"{where}: {key!r} given twice (also as {name!r})")
            values[name] = value
        try:
            return cls(**values)
        except FilterError as exc:
            raise FilterError(f"{where}: {exc}" if where else str(exc)) from None

    @classmethod
    def from_json(cls, text: str, where: str = "filter") -> "ActivityFilter":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise FilterError(f"{where}: not valid JSON ({exc})") from None
        return cls.from_dict(data, where)

    def to_dict(self) -> dict[str, Any]:
        """The YAML/JSON shape with only the set fields (``from_dict(to_dict())`` is the same filter)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == () or (f.name == "include_organization" and not value):
                continue
            if f.name in ("start", "end"):
                out[f.name] = value.isoformat()
            elif f.name == "detail_filters":
                out[f.name] = {d.path: d.to_dict() for d in value}
            elif isinstance(value, tuple):
                out[f.name] = list(value)
            else:
                out[f.name] = value
        return out

    def warnings(self) -> list[str]:
        """Things that are allowed but probably a mistake (unknown scope names, with the closest known one)."""
        out = []
        for scope in self.scopes:
            if scope in KNOWN_SCOPES:
                continue
            message = f"scopes: {scope!r} is not a known scope (it matches only events that use exactly this name)"
            suggestion = closest_scope(scope)
            out.append(message + (f"; did you mean {suggestion!r}?" if suggestion else ""))
        return out

    # -- compilation -------------------------------------------------------------------------

    def time_bounds(self, *, read_window: Duration | None = None, now: datetime | None = None,
                    ) -> tuple[datetime | None, datetime | None]:
        """Inclusive UTC bounds on ``created_at``; the read window raises the lower bound."""
        start, end = _as_start(self.start), _as_end(self.end)
        if read_window is not None:
            floor = read_window.before(now or datetime.now(timezone.utc))
            start = floor if start is None else max(start, floor)
        return start, end

    def day_bounds(self, *, read_window: Duration | None = None, now: datetime | None = None,
                   ) -> tuple[date | None, date | None]:
        start, end = self.time_bounds(read_window=read_window, now=now)
        return (start.date() if start else None, end.date() if end else None)

    def expression(self, *, read_window: Duration | None = None, now: datetime | None = None,
                   team_organizations: Mapping[int, Iterable[str]] | None = None) -> pl.Expr:
        """One Boolean expression over ``activity_log`` columns, partition bounds (on ``day``) first.

        ``team_organizations`` (team id → organization ids) is needed for ``include_organization``;
        :func:`transforms.query.query` looks it up.
        """
        conditions: list[pl.Expr] = []
        start, end = self.time_bounds(read_window=read_window, now=now)
        if start is not None:  # on the partition column first: the Delta scan skips whole days
            conditions += [pl.col("day") >= start.date(), pl.col("created_at") >= start]
        if end is not None:
            conditions += [pl.col("day") <= end.date(), pl.col("created_at") <= end]
        if self.scopes:
            conditions.append(pl.col("scope").is_in(list(self.scopes)))
        if self.activities:
            conditions.append(pl.col("activity").is_in(list(self.activities)))
        if self.item_ids:
            conditions.append(pl.col("item_id").is_in(list(self.item_ids)))
        if self.team_ids:
            condition = pl.col("team_id").is_in(list(self.team_ids))
            if self.include_organization:
                organizations = sorted({o for t in self.team_ids for o in (team_organizations or {}).get(t, ())})
                condition = condition | (
                    (pl.col("level") == "organization") & pl.col("organization_id").is_in(organizations))
            conditions.append(condition.fill_null(False))
        if self.users:
            emails = [u.lower() for u in self.users]
            conditions.append((pl.col("actor_uuid").is_in(list(self.users))
                               | pl.col("actor_email").str.to_lowercase().is_in(emails)).fill_null(False))
        if self.was_impersonated is not None:
            conditions.append(pl.col("was_impersonated") == self.was_impersonated)
        if self.is_system is not None:
            conditions.append(pl.col("is_system") == self.is_system)
        if self.clients:
            conditions.append(_wildcard(self.clients, "client"))
        if self.ip_addresses:
            conditions.append(_wildcard(self.ip_addresses, "ip_address"))
        if self.search:
            pattern = "(?i)" + re.escape(self.search)
            conditions.append((pl.col("detail").str.contains(pattern).fill_null(False)
                               | pl.col("summary").str.contains(pattern).fill_null(False)))
        conditions += [d.expression() for d in self.detail_filters]
        return pl.all_horizontal(conditions) if conditions else pl.lit(True)

    def with_bounds(self, start: date | datetime | None, end: date | datetime | None) -> "ActivityFilter":
        return replace(self, start=start, end=end)


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise FilterError(f"{name}: must be a list of text values, not {kind_of(value)}")
    out = []
    for position, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise FilterError(f"{name}[{position}]: must be text, not {kind_of(item)}")
        text = str(item).strip()
        if not text:
            raise FilterError(f"{name}[{position}]: must not be empty")
        out.append(text)
    return tuple(out)


def _team_ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise FilterError(f"team_ids: must be a list of project ids, not {kind_of(value)}")
    out = []
    for position, item in enumerate(value):
        if isinstance(item, bool):
            raise FilterError(f"team_ids[{position}]: must be a project id (an integer), not a boolean")
        try:
            out.append(int(item))
        except (TypeError, ValueError):
            raise FilterError(f"team_ids[{position}]: must be a project id (an integer), not {item!r}") from None
    return tuple(out)


def _detail_filters(data: Mapping[str, Any]) -> list[DetailFilter]:
    out = []
    for path, spec in data.items():
        where = f"detail_filters[{path!r}]"
        if not isinstance(spec, Mapping):  # shorthand: {path: value} means exact
            spec = {"operation": "exact", "value": spec}
        unknown = set(spec) - {"operation", "value"}
        if unknown:
            raise FilterError(f"{where}: unknown key {sorted(unknown)[0]!r} (allowed: operation, value)")
        if "value" not in spec:
            raise FilterError(f"{where}: missing 'value'")
        out.append(DetailFilter(path, spec.get("operation", "exact"), spec["value"]))
    return out


# ----------------------------------------------------------------------------------------------
# Cursors: stable pagination in the order created_at desc, id desc
# ----------------------------------------------------------------------------------------------


def encode_cursor(created_at: datetime, event_id: str) -> str:
    micros = int((_utc(created_at) - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(microseconds=1))
    return base64.urlsafe_b64encode(f"{micros}:{event_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, event_id = text.split(":", 1)
        moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(micros))
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise FilterError(f"after: {cursor!r} is not a cursor printed by a previous page") from None
    if not event_id:
        raise FilterError(f"after: {cursor!r} is not a cursor printed by a previous page")
    return moment, event_id


def after_cursor(cursor: str) -> pl.Expr:
    """Rows strictly after the cursor's row in the order ``created_at desc, id desc``."""
    moment, event_id = decode_cursor(cursor)
    return (pl.col("day") <= moment.date()) & (
        (pl.col("created_at") < moment) | ((pl.col("created_at") == moment) & (pl.col("id") < event_id)))
