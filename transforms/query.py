"""Reading ``activity_log`` with the filter language: partition bounds first, then one expression.

    from transforms.query import query_page
    page = query_page(Lake.at("data/lake"), ActivityFilter(scopes=["FeatureFlag"]), limit=50)
    page.rows, page.next_cursor   # newest first; pass next_cursor as ``after`` for the next page
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from transforms.durations import Duration
from transforms.filters import ActivityFilter, FilterError, after_cursor, encode_cursor, parse_moment
from transforms.problems import Problem
from transforms.lake import ACTIVITY_LOG, Lake

ORDER = ["created_at", "id"]  # newest first: created_at desc, id desc (stable when timestamps tie)
#: PostHog's ``ordering`` choices: newest first (the default) or oldest first, ``id`` breaking ties the same way.
ORDERINGS = ("-created_at", "created_at")


def descending(ordering: str | None) -> bool:
    """Whether ``ordering`` (PostHog's ``-created_at``, the default, or ``created_at``) is newest first;
    any other value is a :class:`FilterError` naming ``ordering``."""
    if ordering is None:
        return True
    if ordering not in ORDERINGS:
        raise FilterError(Problem(("ordering",),
                                  f'"{str(ordering)[:40]}" is not a valid choice (-created_at or created_at)'))
    return ordering == "-created_at"


__all__ = ["ORDER", "ORDERINGS", "ActivityFilter", "FilterError", "QueryPage", "parse_moment", "query",
           "query_page", "descending", "team_organizations"]


def team_organizations(lake: Lake, team_ids: tuple[int, ...], frame: pl.LazyFrame | None = None,
                       ) -> dict[int, set[str]]:
    """team id → organization ids, from the reference ``projects`` table under the lake and from the
    project-level rows of ``activity_log`` that carry an organization id."""
    from transforms.reference import lake_reference_uris, load_references

    mapping: dict[int, set[str]] = {t: set() for t in team_ids}
    try:
        projects = load_references(lake_reference_uris(lake.root)).get("projects")
    except Exception:  # unreadable reference data must not break a read; the log rows still count
        projects = None
    if projects is not None and projects.height:
        for team_id, organization_id in projects.filter(pl.col("team_id").is_in(list(team_ids))).select(
                "team_id", "organization_id").iter_rows():
            if organization_id:
                mapping[team_id].add(organization_id)
    if frame is not None:
        seen = (frame.filter(pl.col("team_id").is_in(list(team_ids)) & pl.col("organization_id").is_not_null())
                .select("team_id", "organization_id").unique().collect())
        for team_id, organization_id in seen.iter_rows():
            mapping[team_id].add(organization_id)
    return mapping


def query(lake: Lake, activity_filter: ActivityFilter, *, limit: int | None = None, after: str | None = None,
          read_window: Duration | None = None, now: datetime | None = None,
          where: pl.Expr | None = None, ordering: str | None = None) -> pl.LazyFrame | None:
    """Matching rows of ``activity_log``, newest first (``ordering="created_at"``: oldest first, as
    PostHog's ``ordering``); None when the table does not exist yet.

    ``after``: a cursor from :func:`query_page` (rows strictly after that row). ``read_window``: the
    look-back applied to every read (e.g. ``Duration(months=2)``), on top of the filter's own bounds.
    ``where``: one more row condition (e.g. the read API's visibility rules).
    """
    newest_first = descending(ordering)
    frame = lake.scan(ACTIVITY_LOG)
    if frame is None:
        return None
    organizations = None
    if activity_filter.team_ids and activity_filter.include_organization:
        low, high = activity_filter.day_bounds(read_window=read_window, now=now)
        bounded = frame
        if low is not None:
            bounded = bounded.filter(pl.col("day") >= low)
        if high is not None:
            bounded = bounded.filter(pl.col("day") <= high)
        organizations = team_organizations(lake, activity_filter.team_ids, bounded)
    condition = activity_filter.expression(read_window=read_window, now=now, team_organizations=organizations)
    if after:
        condition = condition & after_cursor(after, descending=newest_first)
    if where is not None:
        condition = condition & where
    frame = frame.filter(condition).sort(ORDER, descending=newest_first)
    return frame.head(limit) if limit else frame


@dataclass(frozen=True)
class QueryPage:
    rows: pl.DataFrame
    next_cursor: str | None  # None: this was the last page


def query_page(lake: Lake, activity_filter: ActivityFilter, *, limit: int = 100, after: str | None = None,
               read_window: Duration | None = None, now: datetime | None = None,
               where: pl.Expr | None = None, ordering: str | None = None) -> QueryPage | None:
    """One page of at most ``limit`` rows and the cursor of the next page (None on the last page);
    ``ordering`` as for :func:`query` (a cursor is valid only in the order that printed it)."""
    if limit <= 0:
        raise FilterError(Problem(("limit",), "must be a positive number of rows"))
    frame = query(lake, activity_filter, limit=limit + 1, after=after, read_window=read_window, now=now, where=where,
                  ordering=ordering)
    if frame is None:
        return None
    rows = frame.collect()
    if rows.height <= limit:
        return QueryPage(rows, None)
    rows = rows.head(limit)
    last = rows.row(limit - 1, named=True)
    return QueryPage(rows, encode_cursor(last["created_at"], last["id"], descending=descending(ordering)))


# Detail paths a filter can use, and the activity_log column that shows an event has one.
_DETAIL_PATHS = {"name": "detail_name", "short_id": "detail_short_id", "type": "detail_type",
                 "trigger.job_type": "trigger_job_type"}
_CHANGE_PATHS = ["changes[].field", "changes[].action", "changes[].before", "changes[].after"]


def available_filters(lake: Lake, where: pl.Expr) -> dict:
    """What the rows matching ``where`` hold, for filter pickers: users, scopes, activities, clients,
    the detail paths seen in them and the changed fields, in two queries collected together."""
    frame = lake.scan(ACTIVITY_LOG)
    if frame is None:
        return {"users": [], "scopes": [], "activities": [], "clients": [], "detail_paths": [], "changed_fields": []}
    rows = frame.filter(where)
    users, seen = pl.collect_all([
        rows.filter(pl.col("actor_uuid").is_not_null()).group_by("actor_uuid").agg(
            pl.col("actor_email").last(), pl.col("actor_first_name").last(), pl.col("actor_last_name").last())
        .sort("actor_email"),
        rows.select(
            *(pl.col(c).drop_nulls().unique().sort().implode() for c in ("scope", "activity", "client")),
            pl.col("changed_fields").explode().drop_nulls().unique().sort().implode(),
            *(pl.col(column).is_not_null().any().alias(path) for path, column in _DETAIL_PATHS.items()),
        ),
    ])
    row = seen.row(0, named=True)
    paths = [path for path in _DETAIL_PATHS if row[path]] + (_CHANGE_PATHS if row["changed_fields"] else [])
    return {"users": [{"uuid": u, "email": e, "first_name": f, "last_name": l} for u, e, f, l in users.iter_rows()],
            "scopes": row["scope"], "activities": row["activity"], "clients": row["client"],
            "detail_paths": paths, "changed_fields": row["changed_fields"]}
