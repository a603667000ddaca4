"""What every page route shares: the templates, the request's page context (:class:`Page`), the
feed's filter from the query string, rows as the templates show them, the query slots, the filter
form's choices, forms, and the error page.

Every route that shows rows depends on :func:`pipelines.api.deps.require_access` (the API's one access
rule: a page's session cookie or ``?token=`` resolves to the same key) and reads them through the API's
query code: :func:`pipelines.api.params.advanced_filter` (PostHog's query parameters, bounded),
:func:`transforms.query.query_page`, :func:`transforms.history.item_history`, the export run of
``pipelines/api/routes/exports.py``. Sign-in and sign-out show no rows and take no access.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import jinja2
import polars as pl
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from pipelines.api import params
from pipelines.api.deps import Access, ApiError
from pipelines.api.state import ServerState
from pipelines.web.sessions import PageIdentity
from transforms.filters import ActivityFilter
from transforms.query import available_filters

TEMPLATES = Path(__file__).resolve().parent / "templates"
environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                 undefined=jinja2.StrictUndefined)
environment.filters["segment"] = lambda value: quote(str(value), safe="")  # one path segment of a URL
templates = Jinja2Templates(env=environment)

PAGE_ROWS = 50
MAX_FORM = 16_384
PRESETS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
PRESET_LABELS = [("", "Any time"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"),
                 ("90d", "Last 90 days"), ("custom", "Custom range")]
FILTER_PARAMETERS = ("preset", "start_date", "end_date", "users", "scopes", "activities", "was_impersonated",
                     "is_system", "item_ids", "search_text", "include_organization")
SIGNIN_REASONS = {"ended": "The session ended: sign in again.",
                  "revoked": "The key of this session was revoked: sign in with another key.",
                  "signed-out": "Signed out."}


def identity_of(request: Request) -> PageIdentity:
    return request.state.page_identity


class Page:
    """What a template needs of the request: its access, links that keep the project and token."""

    def __init__(self, request: Request, access: Access | None, embed: bool = False) -> None:
        self.request, self.access, self.embed = request, access, embed
        self.identity: PageIdentity | None = getattr(request.state, "page_identity", None) if access else None

    @property
    def token(self) -> str | None:
        return self.identity.token if self.identity else None

    @property
    def csrf(self) -> str:
        return self.identity.session.csrf if self.identity and self.identity.session else ""

    def context_items(self) -> list[tuple[str, str]]:
        items = []
        if self.access is not None and self.access.project_id is not None and not self.token:
            items.append(("project", str(self.access.project_id)))
        if self.token:
            items.append(("token", self.token))
        return items

    def url(self, path: str, items: list[tuple[str, str]] | None = None, **named: Any) -> str:
        pairs = self.context_items() + list(items or []) + [(k, str(v)) for k, v in named.items() if v is not None]
        text = urlencode(pairs)
        return path + (f"?{text}" if text else "")

    def filter_items(self, without: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.request.query_params.multi_items()
                if k in FILTER_PARAMETERS and k not in without and v != ""]


def render(request: Request, name: str, context: dict, status: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status)


def page_filter(request: Request, access: Access) -> ActivityFilter:
    """The feed's filter: the query string as ``advanced_activity_logs/`` reads it (a date preset turned
    into ``start_date``), limited to the page's project."""
    query_items = [(k, v) for k, v in request.query_params.multi_items() if k in FILTER_PARAMETERS]
    preset = request.query_params.get("preset", "")
    if preset and preset != "custom" and preset not in PRESETS:
        raise ApiError(400, f"must be one of {', '.join(p for p, _ in PRESET_LABELS if p)}", "preset")
    if preset in PRESETS:  # a preset wins over dates left in the form; without one, the dates are the range
        query_items = [(k, v) for k, v in query_items if k not in ("start_date", "end_date")]
        query_items.append(("start_date", (datetime.now(timezone.utc) - PRESETS[preset]).isoformat()))
    query_items = [(k, v) for k, v in query_items if k != "preset"]
    scoped = Request({**request.scope, "query_string": urlencode(query_items).encode()})
    fixed = {"team_ids": [access.project_id]} if access.project_id is not None else {}
    return params.advanced_filter(scoped, whole_day_end=True, **fixed)


def time_of(value: datetime) -> dict:
    moment = value.astimezone(timezone.utc)
    return {"iso": moment.isoformat().replace("+00:00", "Z"), "utc": moment.strftime("%Y-%m-%d %H:%M:%S UTC")}


def view_row(row: dict) -> dict:
    first, last = row.get("actor_first_name"), row.get("actor_last_name")
    name = row.get("actor_name") or " ".join(p for p in (first, last) if p) or None
    return {"id": row["id"], "time": time_of(row["created_at"]), "actor_name": name, "actor_email": row.get("actor_email"),
            "actor_uuid": row.get("actor_uuid"), "is_system": bool(row.get("is_system")),
            "was_impersonated": bool(row.get("was_impersonated")), "activity": row.get("activity"),
            "scope": row.get("scope"), "item_id": row.get("item_id"),
            "target": row.get("resource_name") or row.get("detail_name") or row.get("item_id"),
            "summary": row.get("summary"), "project_id": row.get("team_id")}


async def slot(state: ServerState, work):
    def run():
        with state.query_slots:
            return work()
    return await run_in_threadpool(run)


class PickerCache:
    """(activity_log version, visibility) → the filter form's choices, per app (``app.state.page_pickers``)."""

    def __init__(self) -> None:
        self.values: OrderedDict = OrderedDict()
        self.lock = threading.Lock()


def pickers(state: ServerState, access: Access, cache: PickerCache) -> dict:
    """What the filter form offers (the API's ``available_filters``), once per table version and visibility."""
    cache_key = (state.log_version(), access.visibility)
    with cache.lock:
        found = cache.values.get(cache_key)
    if found is not None:
        return found
    where = access.rows
    if access.project_id is not None:
        where = where & (pl.col("team_id") == access.project_id).fill_null(False)
    found = available_filters(state.lake, where)
    with cache.lock:
        cache.values[cache_key] = found
        while len(cache.values) > 256:
            cache.values.popitem(last=False)
    return found


def safe_next(target: str | None) -> str:
    """A path of this server to go to after signing in; anything else (another host, a scheme) is /."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 32 for c in target) or len(target) > 4000):
        return "/"
    return target


async def read_form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        raise ApiError(400, f"the form is at most {MAX_FORM:,} bytes", "body")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "not a form", "body") from None


def secure(state: ServerState) -> bool:
    return state.base_url.lower().startswith("https://")


def session_only(request: Request) -> PageIdentity:
    identity = identity_of(request)
    if identity.session is None:
        raise ApiError(403, "exports need a signed-in session (a viewer token only reads)")
    return identity


def page_error(request: Request, exc: ApiError) -> Response:
    """An error on a page: the sign-in form for a missing session, else the page of the error."""
    from pipelines.web.sessions import SignInRequired

    if isinstance(exc, SignInRequired) and not request.url.path.startswith("/embed/"):
        reason = "revoked" if "revoked" in exc.detail else ("ended" if "ended" in exc.detail else "")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = "/signin?" + urlencode([("next", target)] + ([("reason", reason)] if reason else []))
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": location})
        return RedirectResponse(location, status_code=303)
    response = render(request, "error.html", {"page": Page(request, None, request.url.path.startswith("/embed/")),
                                              "status": exc.status, "detail": exc.detail, "attr": exc.attr},
                      status=exc.status)
    response.headers.update(exc.headers)
    return response
