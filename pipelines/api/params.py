"""Query parameters and bodies → values the routes use, with every bound a 400 naming the parameter.

User input never causes a 500: page numbers, dates, nesting depth, text length and body size are
bounded here, before anything is parsed recursively or reaches the lake.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from pipelines.api.deps import ApiError
from transforms import jsontext
from transforms.filters import ActivityFilter, FilterError, filter_from_query, posthog_end

MAX_PAGE = 1000                 # rows of one page (page_size)
MAX_PAGE_NUMBER = 100_000       # activity_log/?page=
MAX_TEXT = 1_000                # search_text, user, scope, item_id … (characters of one value)
MAX_VALUES = 1_000              # values of one list parameter
MAX_JSON_DEPTH = 32             # nesting of detail_filters and of an export's body
MAX_PARAMETER_JSON = 65_536     # characters of detail_filters
MAX_BODY = 65_536               # bytes of an export's body

def text(value: str | None, name: str) -> str | None:
    if value is not None and len(value) > MAX_TEXT:
        raise ApiError(400, f"at most {MAX_TEXT:,} characters, not {len(value):,}", name)
    return value


def values(given: list[str] | None, name: str = "") -> list[str]:
    """Repeated parameters and comma-separated ones alike (``scopes=A,B`` or ``scopes=A&scopes=B``)."""
    found = [v.strip() for value in given or [] for v in value.split(",") if v.strip()]
    if len(found) > MAX_VALUES:
        raise ApiError(400, f"at most {MAX_VALUES:,} values, not {len(found):,}", name)
    for value in found:
        text(value, name)
    return found


def page_size(value: int) -> int:
    if value < 1 or value > MAX_PAGE:
        raise ApiError(400, f"must be between 1 and {MAX_PAGE}", "page_size")
    return value


def to_filter(data: dict[str, Any], attr_of: dict[str, str] | None = None, where: str = "") -> ActivityFilter:
    """``ActivityFilter.from_dict`` with every failure a 400: a date out of range (``9999-12-31T23:59:59-23:59``
    lies past year 9999 in UTC) names its parameter too."""
    attr_of = attr_of or {}
    for field, value in data.items():
        if field in ("start", "end"):
            try:
                ActivityFilter.from_dict({field: value}, where="")
            except (OverflowError, ValueError) as exc:
                if not isinstance(exc, FilterError):
                    raise ApiError(400, f"{str(value)[:60]!r} is out of range (years 1 to 9999, in UTC)",
                                   attr_of.get(field, field)) from None
    try:
        return ActivityFilter.from_dict(data, where=where)
    except FilterError as exc:
        raise bad_filter(exc, attr_of) from None
    except (OverflowError, ValueError, RecursionError, TypeError) as exc:
        raise ApiError(400, f"not a valid filter ({type(exc).__name__})", attr_of.get("", "filters")) from None


def bad_filter(exc: FilterError, attr_of: dict[str, str]) -> ApiError:
    """The 400 of a filter's problem: its place in the filter and what (``scopes[0]: must not be
    empty``, after the filter's origin if it was given one), naming the parameter of the field
    (``attr_of``: field → parameter, else the field)."""
    field = exc.problem.field if exc.problem.path else ""
    return ApiError(400, str(exc) if exc.origin else str(exc.problem), attr_of.get(field, field))


LIST_PARAMETERS = ("users", "scopes", "activities", "item_ids", "clients", "ip_addresses", "team_ids")


def advanced_filter(request: Request, *, whole_day_end: bool = False, **fixed: Any) -> ActivityFilter:
    """The filter language from the query string of ``advanced_activity_logs/``, as PostHog reads it
    (:func:`transforms.filters.filter_from_query`: JSON-encoded lists too), after the bounds on each parameter.

    A date-only ``end_date`` is read as PostHog reads it, that day's 00:00 UTC (``created_at <=``
    midnight: the day itself is not included); ``whole_day_end`` (the page's date fields) reads it as
    the whole day, as the CLI and the configuration do."""
    params = request.query_params
    for name in ("start_date", "end_date", "search_text"):
        text(params.get(name), name)
    for name in LIST_PARAMETERS:
        given = params.getlist(name)
        count = sum(value.count(",") + 1 for value in given)
        if count > MAX_VALUES:
            raise ApiError(400, f"at most {MAX_VALUES:,} values, not {count:,}", name)
        for value in given:
            if len(value) > MAX_TEXT * 10:
                raise ApiError(400, f"at most {MAX_TEXT * 10:,} characters", name)
    raw = params.get("detail_filters")
    if raw:
        if len(raw) > MAX_PARAMETER_JSON:
            raise ApiError(400, f"at most {MAX_PARAMETER_JSON:,} characters", "detail_filters")
        if jsontext.depth(raw) > MAX_JSON_DEPTH:
            raise ApiError(400, f"nested deeper than {MAX_JSON_DEPTH} levels", "detail_filters")
    attr_of = {"search": "search_text"}
    for name, field in (("start_date", "start"), ("end_date", "end")):
        if params.get(name):  # a date past year 9999 once in UTC is a 400 naming it, not an overflow
            to_filter({field: params[name]})
    items = params.multi_items()
    if not whole_day_end:
        items = [(k, posthog_end(v) if k == "end_date" else v) for k, v in items]
    try:
        return filter_from_query(items, **fixed)
    except FilterError as exc:
        raise bad_filter(exc, attr_of) from None
    except (OverflowError, ValueError, RecursionError, TypeError) as exc:
        raise ApiError(400, f"not a valid filter ({type(exc).__name__})", "detail_filters") from None
