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
Operations (PostHog's, see the README's "Filter language"):

* ``exact`` matches a value equal to any of PostHog's type variants of the filter value
  (:func:`type_variants`): ``"42"`` matches ``"42"``, ``42`` and ``42.0``; ``"true"`` matches ``true``;
  ``"1"`` matches ``1`` and ``true``; ``true`` matches ``"true"``, ``"True"`` and ``"1"``. Variants
  compare as ``jsonb`` does: the JSON types apart, numbers by value.
* ``contains`` is a case-insensitive substring of the value's text form (a string is itself; anything
  else is its compact JSON; ``null`` has none).
* ``in`` takes a list and matches when ``exact`` matches for any element.

Paths follow PostHog's rules (:func:`check_path`): no ``__``, no lookup-named segment, at most three
``[]``. Each filter is ``{operation, value}``; the value must not be null.

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
# Detail paths and detail filters
# ----------------------------------------------------------------------------------------------

_SEGMENT = re.compile(r"^([^.\[\]]+)((?:\[\d*\])*)$")
ANY = "[]"

#: PostHog's limits and reserved names for detail filters (``posthog/api/advanced_activity_logs/filters.py``).
MAX_DETAIL_FILTERS = 100
MAX_PATH_LENGTH = 500
MAX_ARRAY_LEVELS = 3  # PostHog: 5 ** count("[]") <= 125
#: Segment names PostHog rejects: Django's lookups on a JSON field and on a key of it (``regex`` would
#: turn ``name.regex`` into a regular expression run against every row there).
RESERVED_SEGMENTS = frozenset({
    "contained_by", "contains", "endswith", "exact", "gt", "gte", "has_any_keys", "has_key", "has_keys",
    "icontains", "iendswith", "iexact", "in", "iregex", "isnull", "istartswith", "lt", "lte", "range",
    "regex", "startswith",
})


def check_path(path: Any, where: str = "detail_filters") -> None:
    """PostHog's rules for a detail path, with PostHog's messages: non-empty text of at most 500
    characters, no ``__``, at most three ``[]``, no empty segment, no segment named like a lookup."""
    if not isinstance(path, str) or not path:
        raise FilterError(f"{where}: Detail filter field paths must be non-empty strings.")
    if len(path) > MAX_PATH_LENGTH:
        raise FilterError(f"{where}: Detail filter field paths must be at most {MAX_PATH_LENGTH} characters.")
    if "__" in path:
        raise FilterError(f"{where}: Detail filter field path '{path}' contains '__'.")
    if path.count("[]") > MAX_ARRAY_LEVELS:
        raise FilterError(f"{where}: Detail filter field path '{path}' nests too many arrays.")
    for segment in path.replace("[]", "").split("."):
        if not segment:
            raise FilterError(f"{where}: Detail filter field path '{path}' has an empty segment.")
        if segment in RESERVED_SEGMENTS:
            raise FilterError(f"{where}: Detail filter field path '{path}' uses reserved segment '{segment}'.")


def parse_path(path: Any, where: str = "detail_filters") -> tuple[str | int, ...]:
    """``changes[].field`` → ("changes", ANY, "field"); ``items[2].id`` → ("items", 2, "id")."""
    check_path(path, where)
    steps: list[str | int] = []
    for segment in path.split("."):
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


def type_variants(value: Any) -> list[Any]:
    """PostHog's ``_get_type_variants``: the values an ``exact`` filter for ``value`` matches.

    A string adds the integer it spells (``"42"`` → 42, only when ``str(int)`` gives it back), the
    float it spells (``"4.5"``, ``"42.0"``), and ``True``/``False`` for ``"true"``/``"1"`` and
    ``"false"``/``"0"`` (any case); a boolean adds ``"true"``, ``"True"``, ``"1"`` (or the false ones);
    a number adds ``str(number)``. The original value always comes first."""
    variants: list[Any] = [value]
    if isinstance(value, str) and value.strip():
        stripped = value.strip()
        try:
            if str(int(stripped)) == stripped:
                variants.append(int(stripped))
        except ValueError:
            pass
        try:
            number = float(stripped)
            if str(number) == stripped or (stripped.endswith(".0") and str(number) == stripped[:-2]):
                variants.append(number)
        except ValueError:
            pass
        if stripped.lower() in ("true", "1"):
            variants.append(True)
        elif stripped.lower() in ("false", "0"):
            variants.append(False)
    elif isinstance(value, bool):
        variants.extend([str(value).lower(), str(value), "1" if value else "0"])
    elif isinstance(value, (int, float)):
        variants.append(str(value))
    unique: list[Any] = []
    for variant in variants:
        if not any(type(variant) is type(seen) and variant == seen for seen in unique):
            unique.append(variant)
    return unique


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values as PostgreSQL's ``jsonb`` has it: numbers by value (1 == 1.0), booleans
    apart from numbers, strings apart from everything else, lists and objects element by element."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return float(left) == float(right)
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


# A literal that appears verbatim in the stored JSON text whenever a string value equals/contains it:
# printable ASCII without the characters JSON may escape or reformat.
_VERBATIM = re.compile(r"^[\x20-\x7e]+$")
_REFORMATTED = set('"\\/:,{}[]')


def _verbatim(text: str) -> bool:
    return bool(_VERBATIM.match(text)) and not (_REFORMATTED & set(text))


# One JSON token: a key with its colon (``"name":``), a string (escapes included), a structural
# character, or a bare scalar (number, true, false, null). Outside strings JSON has no quotes, so a
# left-to-right scan cuts exactly these; a colon only ever follows a key.
_TOKEN = r'"(?:[^"\\]|\\.)*"\s*:|"(?:[^"\\]|\\.)*"|[{}\[\],]|[^\s{}\[\]:,"]+'


def _annotate() -> pl.Expr:
    """Each JSON token of a row (inside ``list.eval``) with what the path walk needs, computed once:
    the token ``t``; its ``level`` (how many containers are open around it); whether it ``open``s or
    ``close``s one or is a ``key``; and ``name``, a key's or a string's text (null for other tokens)."""
    t = pl.element()
    opens = t.is_in(["{", "["])
    closes = t.is_in(["}", "]"])
    level = (opens.cast(pl.Int32) - closes.cast(pl.Int32)).cum_sum() - opens.cast(pl.Int32)
    is_key = t.str.ends_with(":")
    quoted = pl.when(is_key).then(t.str.strip_chars_end(": \t\r\n")).when(t.str.starts_with('"')).then(t)
    # A string's text lies between its quotes (no quote is inside unless escaped); only one holding an
    # escape is decoded (few are, and the decoder is the costly part: a null costs it nothing).
    escaped = quoted.str.contains("\\", literal=True)
    name = pl.when(escaped).then(pl.when(escaped).then(quoted).str.json_decode(pl.String)).otherwise(
        quoted.str.strip_chars('"'))
    return pl.struct(t.alias("t"), level.alias("level"), opens.alias("open"), closes.alias("close"),
                     is_key.alias("key"), name.alias("name"))


def _scalars(variants: Iterable[Any]) -> tuple[list[str], list[float], list[bool], list[str]]:
    """Variants split by JSON type: strings, numbers (as floats), booleans, containers (compact text)."""
    strings, numbers, booleans, containers = [], [], [], []
    for variant in variants:
        if isinstance(variant, bool):
            booleans.append(variant)
        elif isinstance(variant, (int, float)):
            try:
                numbers.append(float(variant))
            except OverflowError:  # an integer beyond float range equals no stored number
                pass
        elif isinstance(variant, str):
            strings.append(variant)
        elif isinstance(variant, (list, dict)):
            containers.append(text_form(variant))
    return strings, numbers, booleans, containers


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
        if self.value is None:
            raise FilterError(f"{where}.value: must not be null (PostHog ignores such a filter; remove it)")
        if self.operation == "in" and not isinstance(self.value, (list, tuple)):
            raise FilterError(f"{where}.value: operation 'in' takes a list, not {kind_of(self.value)}")
        if self.operation == "in":
            object.__setattr__(self, "value", list(self.value))
        if self.operation == "contains":
            if isinstance(self.value, (list, dict)):
                raise FilterError(f"{where}.value: operation 'contains' takes text, not {kind_of(self.value)}")
            if not isinstance(self.value, str):
                object.__setattr__(self, "value", text_form(self.value))
            if self.value == "":
                raise FilterError(f"{where}.value: operation 'contains' needs non-empty text")

    steps: tuple = field(init=False, repr=False, compare=False, default=())

    def variants(self) -> list[Any]:
        """The values ``exact``/``in`` accept (PostHog's type variants of each)."""
        options = self.value if self.operation == "in" else [self.value]
        out: list[Any] = []
        for option in options:
            for variant in type_variants(option):
                if not any(type(variant) is type(seen) and variant == seen for seen in out):
                    out.append(variant)
        return out

    def matches(self, detail: Any) -> bool:
        """Whether a parsed detail object matches (the rule the Polars expression follows)."""
        found = values_at(detail, self.steps)
        if self.operation == "contains":
            needle = self.value.lower()
            return any(v is not None and needle in text_form(v).lower() for v in found)
        variants = self.variants()
        return any(json_equal(v, variant) for v in found for variant in variants)

    def to_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "value": self.value}

    # -- compilation -------------------------------------------------------------------------

    def expression(self) -> pl.Expr:
        fast = self._changed_fields_expression()
        if fast is not None:
            return fast
        # Only rows whose text can match are cut into tokens (the others are null, which costs nothing).
        candidates = pl.when(self._prefilter()).then(pl.col("detail"))
        if self._needs_text():
            # Comparing whole containers (or ``contains``, which reads them as text) by tokens would join
            # every row's tokens once per token: memory quadratic in the size of ``detail``. Such filters
            # read the candidate rows in Python, by the same rule (:meth:`matches`), in linear memory.
            # Not marked elementwise: Polars would then also evaluate it on Parquet statistics, whose
            # strings are cut short (not JSON).
            return candidates.map_batches(self._match_texts, return_dtype=pl.Boolean).fill_null(False)
        return (candidates.str.extract_all(_TOKEN).list.eval(_annotate()).list.eval(self._token_condition())
                .list.any().fill_null(False))

    def _needs_text(self) -> bool:
        return self.operation == "contains" or bool(_scalars(self.variants())[3])

    def _match_texts(self, texts: pl.Series) -> pl.Series:
        return pl.Series([None if text is None else self.matches(json.loads(text)) for text in texts],
                         dtype=pl.Boolean)

    def _prefilter(self) -> pl.Expr:
        """A necessary condition on the stored JSON text, checked without cutting it into tokens: the
        last key appears as written, and a text value (or a ``contains`` needle) appears verbatim
        when it is printable ASCII that JSON never escapes or reformats."""
        text = pl.col("detail")
        condition = text.is_not_null()
        keys = [step for step in self.steps if isinstance(step, str) and step != ANY]
        if keys and _verbatim(keys[-1]):
            condition = condition & text.str.contains(f'"{keys[-1]}"', literal=True)
        if self.operation == "contains":
            if _verbatim(self.value):
                condition = condition & text.str.contains("(?i)" + re.escape(self.value))
        else:
            variants = self.variants()
            if variants and all(isinstance(v, str) and v and _verbatim(v) for v in variants):
                condition = condition & text.str.contains("|".join(re.escape(v) for v in variants))
            elif variants and all(isinstance(v, (bool, str)) for v in variants) and all(
                    isinstance(v, bool) or (v and _verbatim(v)) for v in variants):
                words = [("true" if v else "false") if isinstance(v, bool) else v for v in variants]
                condition = condition & text.str.contains("|".join(re.escape(w) for w in words))
        return condition.fill_null(False)

    def _changed_fields_expression(self) -> pl.Expr | None:
        """``changes[].field`` is also the ``changed_fields`` list column: no JSON parsing needed,
        as long as every variant is text (field names are)."""
        if self.steps != ("changes", ANY, "field"):
            return None
        element = pl.col("changed_fields").list
        if self.operation in ("exact", "in"):
            variants = self.variants()
            if not all(isinstance(v, str) for v in variants):
                return None
            return element.eval(pl.element().is_in(variants)).list.any().fill_null(False)
        needle = self.value.lower()
        return (element.eval(pl.element().str.to_lowercase().str.contains(needle, literal=True))
                .list.any().fill_null(False))

    def _token_condition(self) -> pl.Expr:
        """Over one row's annotated tokens (:func:`_annotate`): True at each value the path reaches.

        A value at path step ``k`` sits at level ``k``; for each step ``j`` its container is the last
        ``{``/``[`` opened at level ``j-1`` and, in an object, its key the last key at level ``j`` (in an
        array, its index the commas at level ``j`` since that ``[``)."""
        token = pl.element().struct
        t, level, name = token.field("t"), token.field("level"), token.field("name")
        opens, closes, is_key = token.field("open"), token.field("close"), token.field("key")
        is_string = name.is_not_null() & ~is_key
        first = t.str.slice(0, 1)
        depth = len(self.steps)
        selected = (level == depth) & ~is_key & ~closes & (t != ",")
        for j, step in enumerate(self.steps, start=1):
            opened = opens & (level == j - 1)
            if step == ANY:
                selected = selected & (pl.when(opened).then(t).forward_fill() == "[")
            elif isinstance(step, int):
                commas = ((t == ",") & (level == j)).cast(pl.Int32).cum_sum()
                at_open = pl.when(opened).then(commas).forward_fill()
                selected = (selected & (pl.when(opened).then(t).forward_fill() == "[")
                            & ((commas - at_open) == step))
            else:
                # The last key at level j, reset by each container opened at level j - 1: an array's
                # elements never see a key of an earlier object.
                key = pl.when(is_key & (level == j)).then(pl.lit("k") + name).when(opened).then(pl.lit("o"))
                selected = selected & (key.forward_fill() == "k" + step)
        decoded_value = name
        is_number = first.is_in(list("-0123456789"))
        if self.operation == "contains":
            needs_text = True
        else:
            strings, numbers, booleans, containers = _scalars(self.variants())
            needs_text = bool(containers)
        if needs_text:  # a container's compact JSON text: its tokens joined, from its ``{``/``[`` to its close
            compact = pl.when(is_key).then(t.str.strip_chars_end(": \t\r\n") + ":").otherwise(t)
            lengths = compact.str.len_chars()
            ends = lengths.cum_sum()
            close_end = pl.when(closes & (level == depth)).then(ends).backward_fill()
            container_text = compact.str.join("").str.slice(ends - lengths, close_end - ends + lengths)
        if self.operation == "contains":
            text = (pl.when(is_string).then(decoded_value).when(opens).then(container_text)
                    .when(t == "null").then(pl.lit(None, dtype=pl.String)).otherwise(t))
            return selected & text.str.to_lowercase().str.contains(self.value.lower(), literal=True).fill_null(False)
        condition = pl.lit(False)
        if strings:
            condition = condition | (is_string & decoded_value.is_in(strings))
        if numbers:
            condition = condition | (is_number & t.cast(pl.Float64, strict=False).is_in(numbers))
        for flag in sorted(set(booleans)):
            condition = condition | (t == ("true" if flag else "false"))
        if containers:
            condition = condition | (opens & container_text.is_in(containers))
        return selected & condition.fill_null(False)


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
        for position, address in enumerate(self.ip_addresses):
            check_ip_filter(address, f"ip_addresses[{position}]")
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
    def from_query(cls, params: Iterable[tuple[str, str]], **fixed: Any) -> "ActivityFilter":
        """The read API's query parameters (``request.query_params.multi_items()``), as PostHog reads
        them: ``start_date``, ``end_date``, ``search_text``, the list parameters (repeated,
        comma-separated or one JSON-encoded array: ``scopes=["FeatureFlag","Insight"]``), the booleans
        (``true``/``1``/``yes``, ``false``/``0``/``no``; empty means unset) and ``detail_filters`` (a
        JSON object). Other parameters (paging, schema, ordering) are not the filter's and are left
        alone. ``fixed`` fields override the parameters (e.g. the project of the URL). A
        :class:`FilterError` starts with the field's name (``ip_addresses[0]: …``, ``start: …``)."""
        multi: dict[str, list[str]] = {}
        for name, value in params:
            multi.setdefault(name, []).append(value)
        data: dict[str, Any] = {}
        for name, canonical in (("start_date", "start"), ("end_date", "end"), ("search_text", "search")):
            if multi.get(name) and multi[name][-1]:
                data[canonical] = multi[name][-1]
        for name in QUERY_LISTS:
            if name in multi:
                values = query_list(multi[name], name)
                if values:
                    data[name] = values
        for name in ("was_impersonated", "is_system", "include_organization"):
            value = query_bool(multi[name][-1], name) if name in multi else None
            if value is not None:
                data[name] = value
        if multi.get("detail_filters") and multi["detail_filters"][-1]:
            data["detail_filters"] = _query_detail_filters(multi["detail_filters"][-1])
        data.update(fixed)
        return cls.from_dict(data, where="")

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


_IP_FILTER = re.compile(r"^[0-9a-fA-F:.*]+$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def check_ip_filter(value: str, where: str = "ip_addresses") -> None:
    """PostHog's rule for an ``ip_addresses`` entry: only hex digits, ``:``, ``.`` and ``*``; then a
    pattern with ``*``, an IPv4 address (octets up to 255) or an IPv6 address (it has a ``:``)."""
    text = (value or "").strip()
    valid = bool(text) and bool(_IP_FILTER.match(text))
    if valid and "*" not in text:
        if _IPV4.match(text):
            valid = all(int(octet) <= 255 for octet in text.split("."))
        else:
            valid = ":" in text
    if not valid:
        raise FilterError(f"{where}: Invalid IP address format. Use a valid IPv4/IPv6 address or a wildcard "
                          f"like `203.0.113.*` (not {value[:60]!r}).")


#: The list parameters of the read API (PostHog's ``JSONTolerantListField`` ones).
QUERY_LISTS = ("users", "scopes", "activities", "item_ids", "clients", "ip_addresses", "team_ids")


def query_list(values: Sequence[str], name: str = "") -> list[Any]:
    """One list parameter's values: a single JSON-encoded array (``["FeatureFlag","Insight"]``, as
    PostHog's ``JSONTolerantListField`` reads it: the one value, stripped, starts with ``[``, ends with
    ``]`` and parses as a JSON array), else every value split on commas, blanks dropped. A blank
    ``ip_addresses`` stays, so that it is rejected as PostHog rejects it."""
    if len(values) == 1:
        candidate = values[0].strip()
        if candidate.startswith("[") and candidate.endswith("]"):
            try:
                parsed = json.loads(candidate)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                return parsed
    out: list[Any] = []
    for value in values:
        parts = [part.strip() for part in value.split(",") if part.strip()]
        out += parts if parts or name != "ip_addresses" else [value]
    return out


def query_bool(value: str | None, name: str) -> bool | None:
    """``true``/``1``/``yes`` or ``false``/``0``/``no`` (any case); empty or absent is None."""
    if value is None or value == "":
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise FilterError(f"{name}: must be true or false, not {value[:40]!r}")


def _query_detail_filters(text: str) -> dict[str, Any]:
    """``detail_filters`` as the read API takes it: a JSON object. As in PostHog, every entry is
    validated and an entry whose value is null (or missing) is then dropped: it filters nothing."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise FilterError("detail_filters: must be a JSON object of {path: {operation, value}}") from None
    if not isinstance(data, dict):
        raise FilterError("detail_filters: detail_filters must be an object.")
    stand_in = {"in": [0], "contains": "x"}  # a valid value, to check the rest of a null-valued entry
    _detail_filters({path: {**spec, "value": stand_in.get(spec.get("operation"), 0)}
                     if isinstance(spec, dict) and spec.get("value") is None else spec
                     for path, spec in data.items()})
    return {path: spec for path, spec in data.items() if spec.get("value") is not None}


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
    if len(data) > MAX_DETAIL_FILTERS:
        raise FilterError(f"detail_filters: detail_filters accepts at most {MAX_DETAIL_FILTERS} entries.")
    for path, spec in data.items():
        where = f"detail_filters[{path!r}]"
        check_path(path)
        if not isinstance(spec, Mapping):  # PostHog has no {path: value} shorthand
            raise FilterError(f"detail_filters: Detail filter '{path}' must be an object "
                              "({\"operation\": \"exact\", \"value\": ...}).")
        unknown = set(spec) - {"operation", "value"}
        if unknown:
            raise FilterError(f"{where}: unknown key {sorted(unknown)[0]!r} (allowed: operation, value)")
        if "value" not in spec:
            raise FilterError(f"{where}: missing 'value'")
        out.append(DetailFilter(path, spec.get("operation", "exact"), spec["value"]))
    return out


# ----------------------------------------------------------------------------------------------
# Cursors: stable pagination in the order created_at, id (descending, or ascending)
# ----------------------------------------------------------------------------------------------


def encode_cursor(created_at: datetime, event_id: str, *, descending: bool = True) -> str:
    """The position of a row; a cursor of the oldest-first order is marked (``+``) so that it is never
    read in the other order."""
    micros = int((_utc(created_at) - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(microseconds=1))
    mark = "" if descending else "+"
    return base64.urlsafe_b64encode(f"{mark}{micros}:{event_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, descending: bool = True) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ascending = text.startswith("+")
        micros, event_id = text.lstrip("+").split(":", 1)
        moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(micros))
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise FilterError(f"after: {cursor!r} is not a cursor printed by a previous page") from None
    if not event_id:
        raise FilterError(f"after: {cursor!r} is not a cursor printed by a previous page")
    if ascending == descending:
        raise FilterError(f"after: {cursor!r} was printed by a page in the other order "
                          f"(ordering={'created_at' if ascending else '-created_at'})")
    return moment, event_id


def after_cursor(cursor: str, *, descending: bool = True) -> pl.Expr:
    """Rows strictly after the cursor's row in the order ``created_at, id`` (both descending by default,
    both ascending with ``descending=False``)."""
    moment, event_id = decode_cursor(cursor, descending=descending)
    if descending:
        return (pl.col("day") <= moment.date()) & (
            (pl.col("created_at") < moment) | ((pl.col("created_at") == moment) & (pl.col("id") < event_id)))
    return (pl.col("day") >= moment.date()) & (
        (pl.col("created_at") > moment) | ((pl.col("created_at") == moment) & (pl.col("id") > event_id)))
