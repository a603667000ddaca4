"""The filter model: :class:`ActivityFilter` (every field of the filter language) and its
:class:`DetailFilter` entries, validated when built, with their YAML/JSON shape (:meth:`ActivityFilter.from_dict`,
:meth:`ActivityFilter.to_dict`) and their time bounds. Every rejection is a :class:`FilterError` whose
:class:`~transforms.problems.Problem` has the path of the offending value in the filter's fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timezone
from typing import Any, Iterable, Mapping

import polars as pl

from transforms.durations import Duration
from transforms.problems import Key, Problem
from transforms.values import kind_of

from .compile import detail_expression, filter_expression
from .errors import FilterError, fail
from .fields import (KNOWN_SCOPES, as_end, as_start, check_ip_filter, closest_scope, parse_moment, team_id_values,
                     text_values)
from .paths import MAX_DETAIL_FILTERS, check_path, json_equal, parse_path, text_form, type_variants, values_at

OPERATIONS = ("exact", "contains", "in")

# Other spellings accepted on input (PostHog's API parameter names); the canonical key is the value.
ALIASES = {"start_date": "start", "end_date": "end", "search_text": "search", "user": "users",
           "scope": "scopes", "activity": "activities", "item_id": "item_ids", "team_id": "team_ids",
           "client": "clients", "ip_address": "ip_addresses"}


@dataclass(frozen=True)
class DetailFilter:
    """One ``{path: {operation, value}}`` entry."""

    path: str
    operation: str
    value: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", parse_path(self.path, ("detail_filters",)))
        at = ("detail_filters", Key(self.path))
        if self.operation not in OPERATIONS:
            raise fail(at + ("operation",), f"{self.operation!r} is not one of {', '.join(OPERATIONS)}")
        if self.value is None:
            raise fail(at + ("value",), "must not be null (PostHog ignores such a filter; remove it)")
        if self.operation == "in" and not isinstance(self.value, (list, tuple)):
            raise fail(at + ("value",), f"operation 'in' takes a list, not {kind_of(self.value)}")
        if self.operation == "in":
            object.__setattr__(self, "value", list(self.value))
        if self.operation == "contains":
            if isinstance(self.value, (list, dict)):
                raise fail(at + ("value",), f"operation 'contains' takes text, not {kind_of(self.value)}")
            if not isinstance(self.value, str):
                object.__setattr__(self, "value", text_form(self.value))
            if self.value == "":
                raise fail(at + ("value",), "operation 'contains' needs non-empty text")

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

    def expression(self) -> pl.Expr:
        """True for the ``activity_log`` rows it matches (:func:`.compile.detail_expression`)."""
        return detail_expression(self)


def detail_filters_from(data: Mapping[str, Any]) -> list[DetailFilter]:
    """``detail_filters`` in the YAML/JSON shape (``{path: {operation, value}}``), checked as PostHog checks it."""
    out = []
    if len(data) > MAX_DETAIL_FILTERS:
        raise fail(("detail_filters",), f"detail_filters accepts at most {MAX_DETAIL_FILTERS} entries.")
    for path, spec in data.items():
        check_path(path)
        at = ("detail_filters", Key(path))
        if not isinstance(spec, Mapping):  # PostHog has no {path: value} shorthand
            raise fail(at, f"Detail filter '{path}' must be an object "
                       "({\"operation\": \"exact\", \"value\": ...}).", named=True)
        unknown = set(spec) - {"operation", "value"}
        if unknown:
            first = sorted(unknown)[0]
            raise fail(at + (first,), f"unknown key {first!r} (allowed: operation, value)", named=True)
        if "value" not in spec:
            raise fail(at, "missing 'value'")
        out.append(DetailFilter(path, spec.get("operation", "exact"), spec["value"]))
    return out


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
            object.__setattr__(self, name, text_values(getattr(self, name), name))
        object.__setattr__(self, "team_ids", team_id_values(self.team_ids))
        for position, address in enumerate(self.ip_addresses):
            check_ip_filter(address, ("ip_addresses", position))
        for name in ("include_organization", "was_impersonated", "is_system"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise fail((name,), f"must be true or false, not {kind_of(value)}")
        if self.include_organization is None:
            object.__setattr__(self, "include_organization", False)
        if self.search is not None and not isinstance(self.search, str):
            raise fail(("search",), f"must be text, not {kind_of(self.search)}")
        if self.search is not None and not self.search.strip():
            object.__setattr__(self, "search", None)
        detail = self.detail_filters
        if isinstance(detail, Mapping):
            detail = detail_filters_from(detail)
        object.__setattr__(self, "detail_filters", tuple(detail))
        start, end = as_start(self.start), as_end(self.end)
        if start and end and end < start:
            raise fail(("end",), f"{self.end} is before start {self.start}")

    # -- input and output --------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "filter") -> "ActivityFilter":
        """The YAML/JSON shape; errors are prefixed with ``where`` (e.g. ``activitylog.yaml: exports[0].filter``),
        their :class:`~transforms.problems.Problem` has the path in the filter's fields (canonical names:
        ``start``, not ``start_date``)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise FilterError(Problem((), f"must be a mapping of filter fields, not {kind_of(data)}"), where)
        allowed = [f.name for f in fields(cls)]
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = ALIASES.get(key, key)
            if name not in allowed:
                raise FilterError(Problem((key,), f"unknown field {key!r} (allowed: {', '.join(allowed)})",
                                          named=True), where)
            if name in values:
                raise FilterError(Problem((key,), f"{key!r} given twice (also as {name!r})", named=True), where)
            values[name] = value
        try:
            return cls(**values)
        except FilterError as exc:
            raise FilterError(exc.problem, where) from None

    @classmethod
    def from_query(cls, params: Iterable[tuple[str, str]], **fixed: Any) -> "ActivityFilter":
        """The read API's query parameters, as PostHog reads them (:func:`.adapters.filter_from_query`)."""
        from .adapters import filter_from_query

        return filter_from_query(params, **fixed)

    @classmethod
    def from_json(cls, text: str, where: str = "filter") -> "ActivityFilter":
        """A JSON text of the YAML/JSON shape (:func:`.adapters.filter_from_json`)."""
        from .adapters import filter_from_json

        return filter_from_json(text, where)

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

    # -- bounds and compilation --------------------------------------------------------------

    def time_bounds(self, *, read_window: Duration | None = None, now: datetime | None = None,
                    ) -> tuple[datetime | None, datetime | None]:
        """Inclusive UTC bounds on ``created_at``; the read window raises the lower bound."""
        start, end = as_start(self.start), as_end(self.end)
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
        start, end = self.time_bounds(read_window=read_window, now=now)
        return filter_expression(self, start, end, team_organizations)

    def with_bounds(self, start: date | datetime | None, end: date | datetime | None) -> "ActivityFilter":
        return replace(self, start=start, end=end)
