"""The filter from what each caller is given: the read API's query parameters (:func:`filter_from_query`,
as PostHog reads them), a JSON text, the CLI's flags on top of a ``--filter`` document
(:func:`filter_from_flags`) and an export's body (:func:`export_body`).

Callers keep their transport: reading an argparse namespace or a request, and turning the
:class:`FilterError`'s :class:`~transforms.problems.Problem` into a usage error naming the flag or a 400
naming the parameter (:meth:`~transforms.problems.Problem.renamed`).
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping, Sequence

from transforms.problems import Problem

from .errors import FilterError, fail
from .model import ActivityFilter, detail_filters_from

# ----------------------------------------------------------------------------------------------
# Query parameters (the read API, the page)
# ----------------------------------------------------------------------------------------------

#: The list parameters of the read API (PostHog's ``JSONTolerantListField`` ones).
QUERY_LISTS = ("users", "scopes", "activities", "item_ids", "clients", "ip_addresses", "team_ids")
#: The query parameter of each field named otherwise there (PostHog's names).
QUERY_NAMES = {"start": "start_date", "end": "end_date", "search": "search_text"}


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
    raise fail((name,), f"must be true or false, not {value[:40]!r}")


def query_detail_filters(text: str) -> dict[str, Any]:
    """``detail_filters`` as the read API takes it: a JSON object. As in PostHog, every entry is
    validated and an entry whose value is null (or missing) is then dropped: it filters nothing."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise fail(("detail_filters",), "must be a JSON object of {path: {operation, value}}") from None
    if not isinstance(data, dict):
        raise fail(("detail_filters",), "detail_filters must be an object.")
    def stand_in(operation: Any) -> Any:  # a valid value, to check the rest of a null-valued entry
        return {"in": [0], "contains": "x"}.get(operation, 0) if isinstance(operation, str) else 0

    detail_filters_from({path: {**spec, "value": stand_in(spec.get("operation"))}
                         if isinstance(spec, dict) and spec.get("value") is None else spec
                         for path, spec in data.items()})
    return {path: spec for path, spec in data.items() if spec.get("value") is not None}


def filter_from_query(params: Iterable[tuple[str, str]], **fixed: Any) -> ActivityFilter:
    """The read API's query parameters (``request.query_params.multi_items()``), as PostHog reads
    them: ``start_date``, ``end_date``, ``search_text``, the list parameters (repeated,
    comma-separated or one JSON-encoded array: ``scopes=["FeatureFlag","Insight"]``), the booleans
    (``true``/``1``/``yes``, ``false``/``0``/``no``; empty means unset) and ``detail_filters`` (a
    JSON object). Other parameters (paging, schema, ordering) are not the filter's and are left
    alone. ``fixed`` fields override the parameters (e.g. the project of the URL). A
    :class:`FilterError` starts with the field's name (``ip_addresses[0]: …``, ``start: …``); its
    problem's path is in the fields' names (:data:`QUERY_NAMES` has the parameters named otherwise)."""
    multi: dict[str, list[str]] = {}
    for name, value in params:
        multi.setdefault(name, []).append(value)
    data: dict[str, Any] = {}
    for canonical, name in QUERY_NAMES.items():
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
        data["detail_filters"] = query_detail_filters(multi["detail_filters"][-1])
    data.update(fixed)
    return ActivityFilter.from_dict(data, where="")


#: ``2024-01-31``: a date without a time.
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def posthog_end(value: Any) -> Any:
    """PostHog's ``end_date``: a date without a time is that day's 00:00 UTC (DRF reads ``2024-01-31``
    as a datetime at midnight, and PostHog compares ``created_at <=`` it)."""
    return f"{value.strip()}T00:00:00Z" if isinstance(value, str) and _DATE_ONLY.fullmatch(value.strip()) else value


# ----------------------------------------------------------------------------------------------
# A JSON text, an export's body
# ----------------------------------------------------------------------------------------------


def filter_from_json(text: str, where: str = "filter") -> ActivityFilter:
    """The YAML/JSON shape as JSON text; errors are prefixed with ``where`` as by ``from_dict``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise FilterError(Problem((), f"not valid JSON ({exc})"), where) from None
    return ActivityFilter.from_dict(data, where)


#: Fields an export's body cannot set: the access it is made with decides them.
ACCESS_FIELDS = ("team_ids", "include_organization")


def export_body(filters: Mapping[str, Any], project_id: int | None) -> dict[str, Any]:
    """The filter of an export's body (``{format, filters}``) in the YAML/JSON shape: without the
    fields the access decides (:data:`ACCESS_FIELDS`), ``end_date`` read as PostHog reads it
    (:func:`posthog_end`; ``end`` keeps the whole day), limited to ``project_id`` when there is one."""
    data = {k: v for k, v in filters.items() if k not in ACCESS_FIELDS}
    if "end_date" in data:
        data["end_date"] = posthog_end(data["end_date"])
    forced = {"team_ids": [project_id]} if project_id is not None else {}
    return {**data, **forced}


# ----------------------------------------------------------------------------------------------
# The CLI's flags
# ----------------------------------------------------------------------------------------------


def detail_value(operation: str, text: str) -> Any:
    """A ``--detail PATH OP VALUE``'s value: JSON (``1``, ``true``, ``"1"``, ``["a","b"]``) or else the
    plain text; for ``in``, a JSON list or ``a,b,c``."""
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if operation == "in" and not isinstance(value, list):
        value = [part.strip() for part in text.split(",")] if isinstance(value, str) else [value]
    return value


def filter_from_flags(document: Mapping[str, Any] | None, *, lists: Iterable[tuple[str, Sequence[Any]]] = (),
                      values: Iterable[tuple[str, Any]] = (),
                      details: Iterable[tuple[str, str, str]] = ()) -> ActivityFilter:
    """A filter document (``--filter``) with flags on top: each of ``lists`` (field, values) adds to
    the document's list, each of ``values`` (field, value; None: not given) replaces its field, and
    each of ``details`` (path, operation, value text) is a detail filter. The problem of a
    :class:`FilterError` has the field's path (for the flag that set it)."""
    merged = dict(document or {})
    for name, given in lists:
        if given:
            existing = merged.get(name) or []
            merged[name] = (existing if isinstance(existing, list) else [existing]) + list(given)
    for name, value in values:
        if value is not None:
            merged[name] = value
    details = list(details)
    if details:
        detail = dict(merged.get("detail_filters") or {})
        for path, operation, text in details:
            detail[path] = {"operation": operation, "value": detail_value(operation, text)}
        merged["detail_filters"] = detail
    return ActivityFilter.from_dict(merged, where="")
